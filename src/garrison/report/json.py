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
    """The report as JSON text (indented by two spaces, ending in a newline).

    The text is exactly ``json.dumps(report_to_dict(report), indent=2, ensure_ascii=True,
    allow_nan=False)``, written by :func:`_encode`, which is several times faster than the standard
    library's indenting encoder, and with each rule's references encoded once per report rather than
    once per finding (a scan of many files repeats a handful of rules hundreds of times).
    """
    parts: list[str] = []
    try:
        _encode(_report_data(report, {}), 0, parts)
    except _UnusualValueError:  # a value the fast encoder does not spell: let the standard library do it all
        return json.dumps(report_to_dict(report), indent=2, ensure_ascii=True, allow_nan=False) + "\n"
    parts.append("\n")
    return "".join(parts)


def report_to_dict(report: ScanReport) -> dict[str, Any]:
    """The report as JSON-compatible data, in the schema's key order."""
    return _report_data(report, None)


def _report_data(report: ScanReport, encoded_refs: dict[int, tuple[Rule, _Encoded]] | None) -> dict[str, Any]:
    """:func:`report_to_dict`; with ``encoded_refs``, each finding's references are pre-encoded text."""
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
        "findings": [
            finding_to_dict(f) if encoded_refs is None else _finding_data(f, encoded_refs)
            for f in report.sorted_findings()
        ],
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
    return _finding_data(finding, None)


def _finding_data(finding: Finding, encoded_refs: dict[int, tuple[Rule, _Encoded]] | None) -> dict[str, Any]:
    rule = finding.rule
    references: list[dict[str, Any]] | _Encoded
    if encoded_refs is None:
        references = [_reference_to_dict(r) for r in rule.references()]
    else:
        known = encoded_refs.get(id(rule))
        if known is None or known[0] is not rule:
            parts: list[str] = []
            _encode([_reference_to_dict(r) for r in rule.references()], _FINDING_FIELD_LEVEL, parts)
            known = (rule, _Encoded("".join(parts)))
            encoded_refs[id(rule)] = known
        references = known[1]
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
        "references": references,
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


# -- the encoder ---------------------------------------------------------------------------------------
_FINDING_FIELD_LEVEL = 3
"""Nesting level of a finding's fields: report (0) > ``findings`` list (1) > finding (2) > field (3)."""
_ASCII = json.encoder.encode_basestring_ascii
_PADS = ["\n" + "  " * level for level in range(16)]


class _Encoded(str):
    """JSON text already encoded at the level where it is placed, written as it is."""

    __slots__ = ()


class _UnusualValueError(Exception):
    """A value :func:`_encode` leaves to the standard library (a non-string key, an unknown type)."""


def _encode(value: object, level: int, out: list[str]) -> None:
    """Append ``value`` as ``json.dumps(..., indent=2, ensure_ascii=True, allow_nan=False)`` writes it
    ``level`` levels deep (the opening bracket is already in place; nested lines are indented)."""
    if type(value) is _Encoded:
        out.append(value)
    elif isinstance(value, str):
        out.append(_ASCII(value))
    elif isinstance(value, dict):
        if not value:
            out.append("{}")
            return
        pad = _PADS[level + 1] if level + 1 < len(_PADS) else "\n" + "  " * (level + 1)
        sep = "{" + pad
        for key, item in value.items():
            if not isinstance(key, str):
                raise _UnusualValueError
            out.append(sep)
            out.append(_ASCII(key))
            out.append(": ")
            _encode(item, level + 1, out)
            sep = "," + pad
        out.append(_PADS[level] if level < len(_PADS) else "\n" + "  " * level)
        out.append("}")
    elif isinstance(value, list | tuple):
        if not value:
            out.append("[]")
            return
        pad = _PADS[level + 1] if level + 1 < len(_PADS) else "\n" + "  " * (level + 1)
        sep = "[" + pad
        for item in value:
            out.append(sep)
            _encode(item, level + 1, out)
            sep = "," + pad
        out.append(_PADS[level] if level < len(_PADS) else "\n" + "  " * level)
        out.append("]")
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(json.dumps(value, allow_nan=False))  # NaN and infinities raise, as they would there
    else:
        raise _UnusualValueError
