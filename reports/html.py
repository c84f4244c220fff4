"""Rendering: figures to embedded PNGs, and the report context through the jinja2 template."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import Any

import jinja2
from matplotlib.figure import Figure

from reports.template import CAMPAIGN_TEMPLATE

_ENVIRONMENT = jinja2.Environment(
    autoescape=True,  # histories carry error strings; they must not become markup
    undefined=jinja2.StrictUndefined,  # a missing field is a bug in the context, not a blank
    trim_blocks=True,
    lstrip_blocks=True,
)


def png_data_uri(figure: Figure, *, dpi: int = 110) -> str:
    """The figure as a `data:image/png;base64,...` URI, so the page needs no other file."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def render_campaign(context: Mapping[str, Any]) -> str:
    """The campaign page for `context` (built by `reports.campaign`)."""
    return _ENVIRONMENT.from_string(CAMPAIGN_TEMPLATE).render(**context)
