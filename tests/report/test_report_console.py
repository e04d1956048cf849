"""The console report and the tables for ``rules list`` and ``findings``."""

from __future__ import annotations

import re
from dataclasses import replace

from garrison.core.results import ScanReport
from garrison.report.console import render_console, render_findings_table, render_rules_table


def _lines(text: str) -> list[str]:
    return text.splitlines()


def test_summary_line_counts_everything(sample_report: ScanReport) -> None:
    summary = _lines(render_console(sample_report))[1]
    assert "7 assets scanned" in summary
    assert "7 findings: 2 critical, 2 high, 1 medium, 1 low, 1 info" in summary
    assert "1 error" in summary
    assert "7 skipped" in summary
    assert "1 baselined" in summary


def test_header_names_target_run_and_version(sample_report: ScanReport) -> None:
    header = _lines(render_console(sample_report))[0]
    assert "./project" in header
    assert "run-2024-0001" in header
    assert "0.1.0" in header


def test_assets_are_grouped_most_severe_first(sample_report: ScanReport) -> None:
    text = render_console(sample_report)
    headings = [line for line in _lines(text) if line.startswith("▌ ")]
    locators = [h.split()[1] for h in headings]
    assert locators == [
        "models/bundle.pt",
        "models/evil.pkl",
        "https://llm.example.test/v1/chat",
        "data/customers.csv",
        "models/classifier.onnx",
    ]
    assert "models/clean.safetensors" not in text.split("Incomplete")[0]


def test_findings_inside_a_group_are_ordered_by_severity(sample_report: ScanReport) -> None:
    text = render_console(sample_report)
    section = text.split("▌ models/evil.pkl")[1].split("▌ ")[0]
    assert section.index("CRITICAL") < section.index("MEDIUM")
    assert section.index("GAR-PKL-001") < section.index("GAR-FMT-101")


def test_rows_show_rule_message_location_and_evidence(sample_report: ScanReport) -> None:
    text = render_console(sample_report, width=250)
    assert "unsafe-pickle-global" in text
    assert "Pickle imports os.system, which runs a shell command when loaded." in text
    assert "member archive/data.pkl, offset 112 (0x70)" in text
    assert "row 3, column email" in text
    assert "STACK_GLOBAL os.system (opcode #3 at byte 26) (+1 more)" in text
    assert "membership-auc = 0.531 > 0.5" in text
    assert "content-format: zip (expected pickle)" in text


def test_baselined_findings_are_not_listed(sample_report: ScanReport) -> None:
    assert "GAR-SEC-001" not in render_console(sample_report)


def test_incomplete_section_lists_errors_and_summarises_skipped(sample_report: ScanReport) -> None:
    text = render_console(sample_report, width=160)
    incomplete = text.split("Incomplete: 1 error")[1]
    assert "models/broken.gguf" in incomplete
    assert "gguf-scanner" in incomplete
    assert "GGUF header is truncated at byte 12" in incomplete
    assert "Skipped 7 items: not a model, dataset or archive (6); excluded by --exclude (1)" in incomplete
    assert incomplete.count("  - ") == 5
    assert "… and 2 more" in incomplete


def test_no_findings_is_said_clearly(empty_report: ScanReport) -> None:
    text = render_console(empty_report)
    assert "No findings." in text
    assert "Incomplete" not in text


def test_no_findings_in_an_incomplete_run_is_not_called_clean(error_report: ScanReport) -> None:
    text = render_console(error_report)
    assert "No findings." not in text
    assert "the scan is incomplete" in text
    assert "Incomplete: 2 errors" in text
    assert "permission denied" in text


def test_report_text_cannot_inject_markup_or_escape_sequences(sample_report: ScanReport) -> None:
    finding = replace(sample_report.findings[0], message="[bold red]boom[/] \x1b[2J\u202egnp.exe")
    report = replace(sample_report, findings=(finding,))
    for color in (False, True):
        text = render_console(report, color=color, width=200)
        assert "[bold red]boom[/]" in text
        assert "\\x1b[2J" in text
        assert "\\u202e" in text
        assert "\x1b[2J" not in text
        assert "\u202e" not in text


def test_plain_output_has_no_ansi_and_no_trailing_spaces(sample_report: ScanReport) -> None:
    text = render_console(sample_report)
    assert "\x1b" not in text
    assert all(line == line.rstrip() for line in _lines(text))


def test_color_output_colours_severities(sample_report: ScanReport) -> None:
    text = render_console(sample_report, color=True)
    assert re.search(r"\x1b\[[0-9;]*41m CRITICAL ", text)


def test_output_is_deterministic(sample_report: ScanReport) -> None:
    shuffled = replace(sample_report, findings=tuple(reversed(sample_report.findings)))
    assert render_console(sample_report) == render_console(shuffled)


def test_rules_table_lists_each_rule_once_sorted(sample_report: ScanReport) -> None:
    text = render_rules_table(reversed(sample_report.rules()), width=160)
    ids = re.findall(r"^GAR-[A-Z]+-\d{3}", text, flags=re.MULTILINE)
    assert ids == sorted(r.id for r in sample_report.rules())
    assert "CWE-502, LLM03, ML06, AML.T0010.001" in text
    assert text.rstrip().endswith("7 rules")


def test_findings_table_is_flat_and_most_severe_first(sample_report: ScanReport) -> None:
    text = render_findings_table(sample_report.findings, width=200)
    severities = re.findall(r"^\s*(CRITICAL|HIGH|MEDIUM|LOW|INFO)\s", text, flags=re.MULTILINE)
    assert severities == ["CRITICAL", "CRITICAL", "HIGH", "HIGH", "MEDIUM", "LOW", "INFO"]
    assert sample_report.findings[0].fingerprint[:12] in text
    assert "7 findings: 2 critical, 2 high, 1 medium, 1 low, 1 info" in text


def test_findings_table_says_when_there_is_nothing() -> None:
    assert render_findings_table([]).strip() == "No findings."
