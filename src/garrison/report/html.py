"""The HTML report: one self-contained page (inline CSS, a little inline JavaScript, no fetches).

The page is rendered by Jinja2 with autoescaping on, and every string passes through
:func:`~garrison.report.common.printable` on its way out, so nothing in a report can become markup.
A Content-Security-Policy in the page allows no network access at all and only the page's own
script (by hash), so even a mistake in escaping could not run injected script. Without JavaScript
the page is complete; the script only adds the severity filter and opens every group for printing.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from garrison.core.evidence import Evidence
from garrison.core.findings import Finding
from garrison.core.results import ScanReport
from garrison.core.severity import Severity
from garrison.report.common import (
    EVIDENCE_COLUMNS,
    EVIDENCE_TITLES,
    SEVERITIES,
    count_text,
    duration_text,
    evidence_cells,
    group_by_asset,
    is_web_url,
    iso_utc,
    location_text,
    printable,
    short_digest,
    size_text,
)

__all__ = ["render_html"]

TEMPLATE = "report.html.j2"


def render_html(report: ScanReport) -> str:
    """The report as one self-contained HTML page."""
    script = _asset_text("report.js")
    script_hash = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    template = _environment().get_template(TEMPLATE)
    return template.render(
        page=_page(report),
        css=Markup(_asset_text("report.css")),  # noqa: S704 - our own stylesheet, shipped in the package
        script=Markup(script),  # noqa: S704 - our own script, shipped in the package
        script_hash=script_hash,
    )


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("garrison.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=_finalize,
    )


def _finalize(value: Any) -> Any:
    """Applied to every ``{{ }}`` before escaping: control and bidi characters become visible."""
    if isinstance(value, str) and not hasattr(value, "__html__"):
        return printable(value)
    return value


@cache
def _asset_text(name: str) -> str:
    return resources.files("garrison.report").joinpath("templates", name).read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class _SeverityCount:
    label: str
    count: int
    percent: float


@dataclass(frozen=True, slots=True)
class _EvidenceTable:
    kind: str
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class _Reference:
    framework: str
    label: str
    title: str
    url: str | None


@dataclass(frozen=True, slots=True)
class _Finding:
    severity: str
    rule_id: str
    rule_name: str
    rule_title: str
    message: str
    location: str
    confidence: str
    detector: str
    fingerprint: str
    evidence: list[_EvidenceTable]
    remediation: str
    references: list[_Reference]
    asset: str


@dataclass(frozen=True, slots=True)
class _Group:
    locator: str
    kind: str
    details: list[str]
    digest: str
    worst: str
    counts: list[_SeverityCount]
    findings: list[_Finding]


@dataclass(frozen=True, slots=True)
class _Page:
    title: str
    target: str
    run_id: str
    started: str
    finished: str
    duration: str
    version: str
    schema_version: str
    assets: int
    total: int
    complete: bool
    severities: list[_SeverityCount]
    groups: list[_Group]
    errors: list[dict[str, str]]
    skipped: list[dict[str, str]]
    baselined: list[_Finding]
    words: dict[str, str] = field(default_factory=dict)


def _page(report: ScanReport) -> _Page:
    counts = report.severity_counts()
    total = len(report.findings)
    return _Page(
        title=f"Garrison report: {report.target}",
        target=report.target,
        run_id=report.run_id,
        started=iso_utc(report.started_at),
        finished=iso_utc(report.finished_at),
        duration=duration_text(report.started_at, report.finished_at),
        version=report.tool_version,
        schema_version=report.schema_version,
        assets=len(report.assets),
        total=total,
        complete=report.complete,
        severities=_severity_counts(counts, total),
        groups=[
            _Group(
                locator=g.asset.locator,
                kind=g.asset.kind.value,
                details=[d for d in (g.asset.format, size_text(g.asset.size)) if d],
                digest=short_digest(g.asset.digest),
                worst=g.worst.label,
                counts=[
                    c
                    for c in _severity_counts(
                        {s: sum(1 for f in g.findings if f.severity is s) for s in SEVERITIES},
                        len(g.findings),
                    )
                    if c.count
                ],
                findings=[_finding(f) for f in g.findings],
            )
            for g in group_by_asset(report.findings)
        ],
        errors=[
            {"locator": e.locator, "detector": e.detector or "", "message": e.message}
            for e in sorted(report.errors, key=lambda e: (e.locator, e.detector or ""))
        ],
        skipped=[
            {"locator": s.locator, "reason": s.reason}
            for s in sorted(report.skipped, key=lambda s: (s.locator, s.reason))
        ],
        baselined=[
            _finding(f)
            for f in sorted(report.baselined, key=lambda f: (-int(f.severity), f.asset.locator, f.rule.id))
        ],
        words={
            "findings": count_text(total, "finding"),
            "assets": count_text(len(report.assets), "asset"),
            "incomplete": count_text(len(report.errors), "asset") + " could not be scanned",
            "errors": count_text(len(report.errors), "error"),
            "skipped": f"{len(report.skipped)} skipped",
            "baselined": f"{len(report.baselined)} baselined",
        },
    )


def _severity_counts(counts: dict[Severity, int], total: int) -> list[_SeverityCount]:
    return [
        _SeverityCount(
            label=s.label,
            count=counts.get(s, 0),
            percent=round(100.0 * counts.get(s, 0) / total, 3) if total else 0.0,
        )
        for s in SEVERITIES
    ]


def _finding(finding: Finding) -> _Finding:
    references = []
    for ref in finding.rule.references():
        label = ref.id if ref.url else f"{ref.framework} {ref.id}"
        title = "" if ref.title in (ref.id, f"{ref.framework}:{ref.id}") else ref.title
        references.append(
            _Reference(
                framework=ref.framework,
                label=label,
                title=title,
                url=ref.url if is_web_url(ref.url) else None,
            )
        )
    return _Finding(
        severity=finding.severity.label,
        rule_id=finding.rule.id,
        rule_name=finding.rule.name,
        rule_title=finding.rule.title,
        message=finding.message,
        location=location_text(finding.location),
        confidence=finding.confidence.label,
        detector=finding.detector,
        fingerprint=finding.fingerprint,
        evidence=_evidence_tables(finding.evidence),
        remediation=finding.rule.remediation,
        references=references,
        asset=finding.asset.locator,
    )


def _evidence_tables(evidence: tuple[Evidence, ...]) -> list[_EvidenceTable]:
    tables: dict[str, _EvidenceTable] = {}
    for item in evidence:
        table = tables.get(item.kind)
        if table is None:
            table = tables[item.kind] = _EvidenceTable(
                kind=item.kind,
                title=EVIDENCE_TITLES[item.kind],
                columns=EVIDENCE_COLUMNS[item.kind],
                rows=[],
            )
        table.rows.append(evidence_cells(item))
    return list(tables.values())
