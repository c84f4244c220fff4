"""The study report in a real browser: no console message, every figure decodes.

Skipped when Debian's `chromium` is not installed (`apt-get install -y chromium`).
"""

from __future__ import annotations

import re

import pytest

from tests.reports.test_chromium import CHROMIUM, IMAGE_PROBE, chromium, console_messages

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium: apt-get install -y chromium"
)


def test_the_study_report_renders_cleanly_in_chromium(finished, tmp_path):
    report = finished[3].report
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text().replace("</body>", IMAGE_PROBE + "</body>"))
    result = chromium(probe, tmp_path / "profile", "--virtual-time-budget=5000", "--dump-dom")
    assert console_messages(result.stderr) == []
    body = re.search(r"<body[^>]*>", result.stdout)
    assert body, result.stderr[-2000:]
    images = int(re.search(r'data-images="(\d+)"', body.group()).group(1))
    broken = int(re.search(r'data-broken="(\d+)"', body.group()).group(1))
    assert images == report.read_text().count("data:image/png;base64,") >= 5
    assert broken == 0
    assert "recommendation-table" in result.stdout
