"""Renderers of a scan report: console (rich), JSON, SARIF 2.1.0 and a self-contained HTML page.

Every renderer is a pure function of a :class:`~garrison.core.results.ScanReport` that returns
text; writing it somewhere is the caller's business. The per-format modules are imported inside
:func:`render`, so importing this package does not import rich or Jinja2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from garrison.core.errors import ConfigError

if TYPE_CHECKING:
    from garrison.core.results import ScanReport

#: The format names :func:`render` accepts, in the order the CLI lists them.
RENDERERS: tuple[str, ...] = ("console", "json", "sarif", "html")

__all__ = ["RENDERERS", "render"]


def render(report: ScanReport, fmt: str, *, color: bool = False, width: int | None = None) -> str:
    """Render ``report`` in format ``fmt`` (one of :data:`RENDERERS`) and return the text.

    ``color`` and ``width`` apply to the console format only: ``color`` emits ANSI colours,
    ``width`` is the width in columns (120 by default). Raise ``ConfigError`` for an unknown format.
    """
    if fmt == "console":
        from garrison.report.console import render_console

        return render_console(report, color=color, width=width)
    if fmt == "json":
        from garrison.report.json import render_json

        return render_json(report)
    if fmt == "sarif":
        from garrison.report.sarif import render_sarif

        return render_sarif(report)
    if fmt == "html":
        from garrison.report.html import render_html

        return render_html(report)
    raise ConfigError(f"unknown report format {fmt!r}", hint="use one of: " + ", ".join(RENDERERS))
