"""The console report and the tables of ``garrison rules list`` and ``garrison findings`` (rich).

Everything from a report reaches rich as :class:`rich.text.Text`, never as markup, and passes
through :func:`~garrison.report.common.printable` first: a finding message cannot inject console
markup, ANSI escapes or bidi overrides into a terminal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from io import StringIO

from rich import box
from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from garrison.core.assets import Asset
from garrison.core.findings import Finding
from garrison.core.results import ScanReport
from garrison.core.rules import Rule
from garrison.core.severity import Severity
from garrison.report.common import (
    SEVERITIES,
    AssetGroup,
    count_text,
    duration_text,
    evidence_text,
    finding_order_key,
    group_by_asset,
    iso_utc,
    location_text,
    printable,
    short_digest,
    size_text,
)

__all__ = ["SEVERITY_STYLES", "render_console", "render_findings_table", "render_rules_table"]

#: The rich style of each severity.
SEVERITY_STYLES: dict[Severity, str] = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}

#: How many skipped items the console lists before summarising the rest.
SKIPPED_SHOWN = 5


def render_console(report: ScanReport, *, color: bool = False, width: int | None = None) -> str:
    """The report for a terminal: summary, findings by asset, then what was incomplete."""
    console = _console(color, width)
    console.print(_header(report))
    console.print(_summary(report))
    if report.findings:
        layout = _Layout.fit(report.findings, console.width)
        for group in group_by_asset(report.findings):
            console.print()
            console.print(_asset_heading(group))
            console.print(Padding(_group_table(group.findings, layout), (0, 0, 0, _INDENT)))
    else:
        console.print()
        if report.complete:
            console.print(Text("✔ No findings.", style="bold green"))
        else:
            console.print(
                Text.assemble(
                    ("No findings in what could be scanned, ", "bold"),
                    ("but the scan is incomplete (see below).", "bold yellow"),
                )
            )
    if report.errors or report.skipped:
        console.print()
        console.print(_incomplete(report))
    return _text(console)


def render_rules_table(rules: Iterable[Rule], *, color: bool = False, width: int | None = None) -> str:
    """A table of rules (``garrison rules list``): id, name, default severity, title, references."""
    table = _table()
    table.add_column("Rule", no_wrap=True)
    table.add_column("Name", overflow="fold")
    table.add_column("Severity", no_wrap=True)
    table.add_column("Title", ratio=3, overflow="fold")
    table.add_column("References", ratio=2, overflow="fold")
    rows = sorted(rules, key=lambda r: r.id)
    for rule in rows:
        refs = [*rule.cwe, *rule.owasp_llm, *rule.owasp_ml, *rule.atlas]
        table.add_row(
            Text(rule.id, style="bold"),
            Text(rule.name),
            _severity_text(rule.severity),
            Text(printable(rule.title)),
            Text(", ".join(refs), style="dim"),
        )
    console = _console(color, width)
    if rows:
        console.print(table)
    console.print(Text(count_text(len(rows), "rule"), style="dim"))
    return _text(console)


def render_findings_table(
    findings: Iterable[Finding], *, color: bool = False, width: int | None = None
) -> str:
    """A flat table of findings (``garrison findings``), most severe first."""
    rows = sorted(findings, key=finding_order_key)
    console = _console(color, width)
    if not rows:
        console.print(Text("No findings.", style="bold green"))
        return _text(console)
    table = _table()
    table.add_column("Severity", no_wrap=True)
    table.add_column("Rule", no_wrap=True)
    table.add_column("Asset", ratio=2, overflow="fold")
    table.add_column("Location", ratio=1, overflow="fold")
    table.add_column("Message", ratio=4, overflow="fold")
    table.add_column("Fingerprint", no_wrap=True, style="dim")
    for finding in rows:
        table.add_row(
            _severity_text(finding.severity),
            Text(finding.rule.id),
            Text(printable(finding.asset.locator)),
            Text(printable(location_text(finding.location))),
            Text(printable(finding.message)),
            Text(finding.fingerprint[:12]),
        )
    console.print(table)
    counts = Counter(f.severity for f in rows)
    parts = [f"{counts[s]} {s.label}" for s in SEVERITIES if counts[s]]
    console.print(Text(f"{count_text(len(rows), 'finding')}: " + ", ".join(parts), style="dim"))
    return _text(console)


def _console(color: bool, width: int | None) -> Console:
    return Console(
        file=StringIO(),
        force_terminal=color,
        color_system="standard" if color else None,
        width=width or 120,
        highlight=False,
        emoji=False,
        markup=False,
        legacy_windows=False,
    )


def _table(*, expand: bool = False) -> Table:
    return Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False, show_edge=False, expand=expand)


def _text(console: Console) -> str:
    """What was printed; without colour, also without the padding rich adds at the end of lines."""
    output = console.file
    assert isinstance(output, StringIO)
    text = output.getvalue()
    if console.is_terminal:
        return text
    return "\n".join(line.rstrip() for line in text.split("\n"))


def _severity_text(severity: Severity) -> Text:
    return Text(f" {severity.label.upper()} ", style=SEVERITY_STYLES[severity])


def _header(report: ScanReport) -> Text:
    when = f"{iso_utc(report.started_at)} ({duration_text(report.started_at, report.finished_at)})"
    return Text.assemble(
        ("Garrison ", "bold"),
        (report.tool_version, "dim"),
        " · scan of ",
        (printable(report.target), "bold"),
        (f" · run {printable(report.run_id)} · {when}", "dim"),
    )


def _summary(report: ScanReport) -> Text:
    counts = report.severity_counts()
    text = Text(f"{count_text(len(report.assets), 'asset')} scanned, ")
    text.append(count_text(len(report.findings), "finding"), style="bold")
    text.append(": ")
    for i, severity in enumerate(SEVERITIES):
        if i:
            text.append(", ")
        n = counts[severity]
        text.append(f"{n} {severity.label}", style=_marker_style(severity) if n else "dim")
    text.append(" · ")
    text.append(count_text(len(report.errors), "error"), style="bold yellow" if report.errors else "dim")
    text.append(" · ")
    text.append(f"{len(report.skipped)} skipped", style="" if report.skipped else "dim")
    text.append(" · ")
    text.append(f"{len(report.baselined)} baselined", style="" if report.baselined else "dim")
    return text


def _asset_heading(group: AssetGroup) -> Text:
    asset: Asset = group.asset
    text = Text.assemble(("▌ ", _marker_style(group.worst)), (printable(asset.locator), "bold"))
    details = [d for d in (asset.format, size_text(asset.size), short_digest(asset.digest)) if d]
    if details:
        text.append("  " + " · ".join(printable(d) for d in details), style="dim")
    text.append(f"  ({count_text(len(group.findings), 'finding')})", style="dim")
    return text


def _marker_style(severity: Severity) -> str:
    return SEVERITY_STYLES[severity].replace("white on ", "")


@dataclass(frozen=True, slots=True)
class _Layout:
    """Column widths of the per-asset tables, shared so every table lines up."""

    rule: int
    message: int
    location: int

    @classmethod
    def fit(cls, findings: Sequence[Finding], width: int) -> _Layout:
        """Widths for ``findings`` in ``width`` columns: rule and location get what they need, up to
        a share of the line; the message (with its evidence line) gets the rest."""
        rest = width - _INDENT - _SEVERITY_WIDTH - 3 * _GAP
        longest_rule = max(max(len(f.rule.id), len(f.rule.name)) for f in findings)
        longest_location = max(len(location_text(f.location)) for f in findings)
        rule = max(min(longest_rule, rest // 3), 12)
        location = max(min(longest_location, rest // 5), 8)
        return cls(rule=rule, message=max(rest - rule - location, 16), location=location)


_INDENT = 2
_SEVERITY_WIDTH = 10
_GAP = 3


def _group_table(findings: Iterable[Finding], layout: _Layout) -> Table:
    table = _table()
    table.add_column("Severity", no_wrap=True, width=_SEVERITY_WIDTH)
    table.add_column("Rule", width=layout.rule, overflow="fold")
    table.add_column("Message and evidence", width=layout.message, overflow="fold")
    table.add_column("Location", width=layout.location, overflow="fold")
    for finding in findings:
        rule = Text.assemble((finding.rule.id, "bold"), "\n", (finding.rule.name, "dim"))
        message = Text(printable(finding.message))
        if finding.evidence:
            message.append("\n↳ " + printable(evidence_text(finding.evidence[0])), style="dim")
            if len(finding.evidence) > 1:
                message.append(f" (+{len(finding.evidence) - 1} more)", style="dim")
        table.add_row(
            _severity_text(finding.severity),
            rule,
            message,
            Text(printable(location_text(finding.location)) or "—", style="dim"),
        )
    return table


def _incomplete(report: ScanReport) -> Group:
    parts: list[RenderableType] = []
    if report.errors:
        parts.append(
            Text(
                f"Incomplete: {count_text(len(report.errors), 'error')} — these were not fully scanned",
                style="bold yellow",
            )
        )
        table = _table(expand=True)
        table.add_column("Asset", ratio=2, overflow="fold")
        table.add_column("Detector", no_wrap=True)
        table.add_column("Error", ratio=4, overflow="fold")
        for error in sorted(report.errors, key=lambda e: (e.locator, e.detector or "")):
            table.add_row(
                Text(printable(error.locator)),
                Text(printable(error.detector or "—"), style="dim"),
                Text(printable(error.message)),
            )
        parts.append(Padding(table, (0, 0, 0, 2)))
    if report.skipped:
        skipped = sorted(report.skipped, key=lambda s: (s.locator, s.reason))
        reasons = Counter(s.reason for s in skipped)
        summary = "; ".join(f"{printable(reason)} ({n})" for reason, n in reasons.most_common(3))
        if len(reasons) > 3:
            summary += f"; {len(reasons) - 3} other reasons"
        parts.append(Text(f"Skipped {count_text(len(skipped), 'item')}: {summary}", style="bold"))
        for item in skipped[:SKIPPED_SHOWN]:
            parts.append(Text(f"  - {printable(item.locator)}: {printable(item.reason)}", style="dim"))
        if len(skipped) > SKIPPED_SHOWN:
            parts.append(Text(f"  … and {len(skipped) - SKIPPED_SHOWN} more", style="dim"))
    return Group(*parts)
