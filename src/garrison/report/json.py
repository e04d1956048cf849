"""The JSON report: a versioned, documented schema (docs/report-format.md, docs/report-schema.json).

Key order is fixed by construction and lists are sorted, so the same report always renders to the
same bytes. Non-finite numbers (a metric that came out NaN) are written as ``null``, because JSON
has no spelling for them. Output is ASCII: anything else is escaped, so the file survives any
encoding a consumer assumes.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from typing import Any

from garrison.core.assets import Asset
from garrison.core.findings import Finding
from garrison.core.results import ErrorRecord, ScanReport, SkippedRecord
from garrison.core.rules import Reference, Rule
from garrison.report.common import SEVERITIES, TOOL_NAME, iso_utc

__all__ = [
    "asset_to_dict",
    "finding_to_dict",
    "render_json",
    "report_schema",
    "report_to_dict",
    "rule_to_dict",
]

#: The JSON Schema of the report, shipped inside the package (same file as docs/report-schema.json).
SCHEMA_RESOURCE = "schema/report.schema.json"


def render_json(report: ScanReport) -> str:
    """The report as JSON text (indented by two spaces, ending in a newline)."""
    return json.dumps(report_to_dict(report), indent=2, ensure_ascii=True, allow_nan=False) + "\n"


def report_to_dict(report: ScanReport) -> dict[str, Any]:
    """The report as JSON-compatible data, in the schema's key order."""
    counts = report.severity_counts()
    summary: dict[str, int] = {s.label: counts[s] for s in SEVERITIES}
    summary |= {
        "total": len(report.findings),
        "assets": len(report.assets),
        "errors": len(report.errors),
        "skipped": len(report.skipped),
        "baselined": len(report.baselined),
    }
    return {
        "schema_version": report.schema_version,
        "tool": {"name": TOOL_NAME, "version": report.tool_version},
        "run": {
            "id": report.run_id,
            "target": report.target,
            "started_at": iso_utc(report.started_at),
            "finished_at": iso_utc(report.finished_at),
            "complete": report.complete,
        },
        "summary": summary,
        "assets": [asset_to_dict(a) for a in sorted(report.assets, key=_asset_order)],
        "findings": [finding_to_dict(f) for f in report.sorted_findings()],
        "rules": [rule_to_dict(r) for r in report.rules()],
        "errors": [_error_to_dict(e) for e in sorted(report.errors, key=_error_order)],
        "skipped": [_skipped_to_dict(s) for s in sorted(report.skipped, key=_skipped_order)],
        "baselined": sorted({f.fingerprint for f in report.baselined}),
    }


def asset_to_dict(asset: Asset) -> dict[str, Any]:
    """An asset: kind, locator, digest, size and format (``null`` where unknown)."""
    return {
        "kind": asset.kind.value,
        "locator": asset.locator,
        "digest": asset.digest,
        "size": asset.size,
        "format": asset.format,
    }


def finding_to_dict(finding: Finding) -> dict[str, Any]:
    """A finding with its rule's identity, its asset, location, evidence, references and remedy."""
    rule = finding.rule
    return {
        "fingerprint": finding.fingerprint,
        "rule": {"id": rule.id, "name": rule.name, "title": rule.title},
        "severity": finding.severity.label,
        "confidence": finding.confidence.label,
        "message": finding.message,
        "detector": finding.detector,
        "asset": asset_to_dict(finding.asset),
        "location": finding.location.to_dict(),
        "evidence": [_finite(e.to_dict()) for e in finding.evidence],
        "references": [_reference_to_dict(r) for r in rule.references()],
        "remediation": rule.remediation,
    }


def rule_to_dict(rule: Rule) -> dict[str, Any]:
    """Every field of a rule's metadata, with its references resolved to titles and links."""
    return {
        "id": rule.id,
        "name": rule.name,
        "title": rule.title,
        "severity": rule.severity.label,
        "description": rule.description,
        "remediation": rule.remediation,
        "example": rule.example,
        "cwe": list(rule.cwe),
        "owasp_llm": list(rule.owasp_llm),
        "owasp_ml": list(rule.owasp_ml),
        "atlas": list(rule.atlas),
        "controls": list(rule.controls),
        "tags": list(rule.tags),
        "references": [_reference_to_dict(r) for r in rule.references()],
    }


def report_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) every report of this version validates against."""
    text = resources.files("garrison.report").joinpath(SCHEMA_RESOURCE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _reference_to_dict(ref: Reference) -> dict[str, Any]:
    return {"framework": ref.framework, "id": ref.id, "title": ref.title, "url": ref.url}


def _error_to_dict(error: ErrorRecord) -> dict[str, Any]:
    return {"locator": error.locator, "detector": error.detector, "message": error.message}


def _skipped_to_dict(skipped: SkippedRecord) -> dict[str, Any]:
    return {"locator": skipped.locator, "reason": skipped.reason}


def _finite(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with NaN and infinities replaced by ``None``."""
    return {
        k: None if isinstance(v, float) and not math.isfinite(v) else v  # JSON cannot spell NaN
        for k, v in data.items()
    }


def _asset_order(asset: Asset) -> tuple[str, str, str]:
    return (asset.locator, asset.kind.value, asset.digest or "")


def _error_order(error: ErrorRecord) -> tuple[str, str, str]:
    return (error.locator, error.detector or "", error.message)


def _skipped_order(skipped: SkippedRecord) -> tuple[str, str]:
    return (skipped.locator, skipped.reason)
