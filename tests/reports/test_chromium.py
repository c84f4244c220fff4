"""The report in a real browser: headless Chromium loads it with no console message, every
embedded image decodes, and a screenshot shows the verdict table's green and red cells.

Skipped when Debian's `chromium` is not installed (`apt-get install -y chromium`).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

from reports import build_campaign_report, write_report
from reports.preview import preview_runs

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium: apt-get install -y chromium"
)

# The report's verdict cells (template.py's --ok and --bad backgrounds).
CELL_OK = (0xE8, 0xF5, 0xE9)
CELL_BAD = (0xFF, 0xEB, 0xEE)

IMAGE_PROBE = """<script>window.addEventListener("load", () => {
  const images = [...document.images];
  document.body.dataset.images = images.length;
  document.body.dataset.broken = images.filter(i => !i.complete || i.naturalWidth === 0).length;
});</script>"""


def chromium(page: Path, profile: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium on `page`; its whole process group is killed if it hangs."""
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
               "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
               f"--user-data-dir={profile}", *arguments, page.as_uri()]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def console_messages(stderr: str) -> list[str]:
    # Chromium logs every console message (log, warning, error, uncaught exception) as
    # ":CONSOLE"; the report has no script, so any one of them is a fault.
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    html = build_campaign_report(preview_runs(3, 4), campaign_seed=7, max_timelines=2)
    return write_report(html, tmp_path_factory.mktemp("report"))


def test_the_console_check_sees_a_console_error(tmp_path):
    # The check below would pass vacuously if Chromium's log format changed: prove it bites.
    page = tmp_path / "bad.html"
    page.write_text("<!doctype html><title>bad</title><script>console.error('boom')</script>")
    result = chromium(page, tmp_path / "profile", "--dump-dom")
    assert any("boom" in line for line in console_messages(result.stderr)), result.stderr


def test_the_report_loads_without_console_messages_and_shows_the_verdict_table(
    report, tmp_path
):
    screenshot = tmp_path / "report.png"
    result = chromium(report, tmp_path / "profile", f"--screenshot={screenshot}",
                      "--window-size=1300,1100")
    assert result.returncode == 0, result.stderr[-2000:]
    assert console_messages(result.stderr) == []
    pixels = (image.imread(screenshot)[..., :3] * 255).round().astype(int)
    for colour, name in ((CELL_OK, "green"), (CELL_BAD, "red")):
        matching = np.all(np.abs(pixels - colour) <= 2, axis=-1).sum()
        assert matching > 500, f"no {name} verdict cells in the screenshot {screenshot}"


def test_every_embedded_image_decodes(report, tmp_path):
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text().replace("</body>", IMAGE_PROBE + "</body>"))
    result = chromium(probe, tmp_path / "profile", "--virtual-time-budget=5000", "--dump-dom")
    body = re.search(r"<body[^>]*>", result.stdout)
    assert body, result.stderr[-2000:]
    images = int(re.search(r'data-images="(\d+)"', body.group()).group(1))
    broken = int(re.search(r'data-broken="(\d+)"', body.group()).group(1))
    assert images == report.read_text().count("data:image/png;base64,") > 0
    assert broken == 0
