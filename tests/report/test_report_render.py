"""The package entry point: dispatch, format names, cheap import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from garrison.core.errors import ConfigError
from garrison.core.results import ScanReport
from garrison.report import RENDERERS, render


def test_renderers_lists_the_four_formats() -> None:
    assert RENDERERS == ("console", "json", "sarif", "html")


@pytest.mark.parametrize("fmt", RENDERERS)
def test_every_format_renders_text_that_names_the_target(sample_report: ScanReport, fmt: str) -> None:
    text = render(sample_report, fmt)
    assert isinstance(text, str)
    assert "./project" in text


def test_json_and_sarif_dispatch_to_their_formats(sample_report: ScanReport) -> None:
    assert json.loads(render(sample_report, "json"))["schema_version"] == sample_report.schema_version
    assert json.loads(render(sample_report, "sarif"))["version"] == "2.1.0"
    assert render(sample_report, "html").startswith("<!DOCTYPE html>")


def test_color_and_width_reach_the_console(sample_report: ScanReport) -> None:
    assert "\x1b[" in render(sample_report, "console", color=True)
    assert "\x1b[" not in render(sample_report, "console")
    narrow = render(sample_report, "console", width=70)
    assert max(len(line) for line in narrow.splitlines()) <= 70


def test_unknown_format_is_a_config_error_listing_the_choices(sample_report: ScanReport) -> None:
    with pytest.raises(ConfigError) as info:
        render(sample_report, "xml")
    assert "xml" in info.value.message
    assert info.value.hint is not None
    assert "sarif" in info.value.hint


def test_importing_the_package_does_not_import_rich_or_jinja2() -> None:
    code = "import sys, garrison.report; print(sorted(m for m in ('rich', 'jinja2') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
