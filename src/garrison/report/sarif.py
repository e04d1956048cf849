"""SARIF 2.1.0, shaped for GitHub code scanning and other SARIF consumers.

Choices (documented in docs/report-format.md):

- One run. ``tool.driver.rules`` holds every rule of a finding or a baselined finding, sorted by id,
  and each result points at its rule by ``ruleId`` and ``ruleIndex``.
- An asset is an artifact (``run.artifacts``) with its SHA-256; a result's ``physicalLocation``
  points at it relative to ``%SRCROOT%`` (the scan target). Endpoints keep their URL.
- A byte offset becomes ``region.byteOffset``, but only when it is an offset in the artifact
  itself. An offset inside an archive member is not an offset in the archive, so for a member the
  physical location has no region and the member is a ``logicalLocation`` whose
  ``fullyQualifiedName`` is ``<artifact>!<member>``; the full Garrison location is in the location's
  ``message`` and in ``result.properties.location``.
- ``partialFingerprints["garrisonFingerprint/v1"]`` carries Garrison's fingerprint, so a SARIF file
  can be a baseline and code scanning tracks a finding across runs.
- Baselined findings are results with ``suppressions: [{"kind": "external", "status":
  "accepted"}]``: still in the file for auditors, closed for consumers that honour suppressions.
- Each error is a ``toolExecutionNotification`` at level ``error`` and makes
  ``executionSuccessful`` false; skipped items are listed in ``invocation.properties.skipped``.
"""

from __future__ import annotations

import json
from typing import Any

from garrison.core.assets import Asset, AssetKind
from garrison.core.evidence import ByteRange
from garrison.core.findings import FINGERPRINT_VERSION, Finding
from garrison.core.results import ErrorRecord, ScanReport
from garrison.core.rules import Rule, rule_markdown
from garrison.core.severity import Confidence
from garrison.report.common import (
    TOOL_NAME,
    TOOL_URI,
    asset_uri,
    is_web_url,
    iso_utc,
    location_text,
)

__all__ = ["FINGERPRINT_KEY", "SARIF_SCHEMA_URI", "SARIF_VERSION", "render_sarif", "report_to_sarif"]

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
#: The key of Garrison's fingerprint in ``result.partialFingerprints``.
FINGERPRINT_KEY = f"garrisonFingerprint/{FINGERPRINT_VERSION}"
#: The base id every relative artifact URI is resolved against: the scan target.
SRCROOT = "%SRCROOT%"


def render_sarif(report: ScanReport) -> str:
    """The report as a SARIF 2.1.0 log (JSON text, indented by two spaces, ending in a newline)."""
    return json.dumps(report_to_sarif(report), indent=2, ensure_ascii=True) + "\n"


def report_to_sarif(report: ScanReport) -> dict[str, Any]:
    """The report as a SARIF 2.1.0 log object."""
    rules = report.rules()
    rule_index = {rule.id: i for i, rule in enumerate(rules)}
    artifacts = _Artifacts(report)
    results = [_result(f, rule_index, artifacts) for f in report.sorted_findings()]
    baselined = sorted(report.baselined, key=lambda f: (f.asset.locator, -int(f.severity), f.fingerprint))
    results += [_result(f, rule_index, artifacts, baselined=True) for f in baselined]
    confidences: dict[str, list[int]] = {}
    for finding in (*report.findings, *report.baselined):
        confidences.setdefault(finding.rule.id, []).append(int(finding.confidence))
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": TOOL_NAME,
                "version": report.tool_version,
                "semanticVersion": report.tool_version,
                "informationUri": TOOL_URI,
                "rules": [_rule(r, max(confidences[r.id])) for r in rules],
            }
        },
        "invocations": [_invocation(report, artifacts)],
        "originalUriBaseIds": {
            SRCROOT: {"description": {"text": f"The scan target: {report.target}"}},
        },
        "artifacts": artifacts.entries,
        "results": results,
        "properties": {
            "garrison": {
                "runId": report.run_id,
                "target": report.target,
                "reportSchemaVersion": report.schema_version,
            }
        },
    }
    return {"$schema": SARIF_SCHEMA_URI, "version": SARIF_VERSION, "runs": [run]}


class _Artifacts:
    """The run's artifacts, one per asset, and the index of each asset's entry."""

    def __init__(self, report: ScanReport) -> None:
        self.entries: list[dict[str, Any]] = []
        self._index: dict[str, int] = {}
        every = {a.key: a for a in (*report.assets, *(f.asset for f in report.findings))}
        every |= {a.key: a for a in (f.asset for f in report.baselined) if a.key not in every}
        for key in sorted(every, key=lambda k: (every[k].locator, k)):
            self._index[key] = len(self.entries)
            self.entries.append(_artifact(every[key]))

    def location(self, asset: Asset) -> dict[str, Any]:
        """An ``artifactLocation`` pointing at the asset's artifact."""
        location = _artifact_location(asset)
        location["index"] = self._index[asset.key]
        return location


def _artifact_location(asset: Asset) -> dict[str, Any]:
    uri, relative = asset_uri(asset)
    return {"uri": uri, "uriBaseId": SRCROOT} if relative else {"uri": uri}


def _artifact(asset: Asset) -> dict[str, Any]:
    entry: dict[str, Any] = {"location": _artifact_location(asset)}
    if asset.size is not None:
        entry["length"] = asset.size
    if asset.digest:
        algorithm, _, value = asset.digest.partition(":")
        if algorithm == "sha256" and value:
            entry["hashes"] = {"sha-256": value}
    properties = {"kind": asset.kind.value}
    if asset.format:
        properties["format"] = asset.format
    entry["properties"] = properties
    return entry


def _rule(rule: Rule, confidence: int) -> dict[str, Any]:
    urls = [ref.url for ref in rule.references() if is_web_url(ref.url)]
    entry: dict[str, Any] = {
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.description.strip()},
        "help": {"text": _help_text(rule), "markdown": rule_markdown(rule)},
        "defaultConfiguration": {"level": rule.severity.sarif_level},
    }
    if urls:
        entry["helpUri"] = urls[0]
    entry["properties"] = {
        "tags": _tags(rule),
        "security-severity": rule.severity.security_severity,
        "precision": Confidence(confidence).sarif_precision,
    }
    return entry


def _help_text(rule: Rule) -> str:
    lines = [rule.description.strip(), "", "What to do: " + rule.remediation.strip()]
    refs = [f"{ref.id} {ref.url}" if ref.url else f"{ref.framework} {ref.id}" for ref in rule.references()]
    if refs:
        lines += ["", "References: " + "; ".join(refs)]
    return "\n".join(lines)


def _tags(rule: Rule) -> list[str]:
    """``security``, the rule's family and tags, then one tag per external reference."""
    tags = ["security", f"garrison/{rule.family.lower()}", *rule.tags]
    tags += [f"external/cwe/cwe-{int(c.split('-')[1]):03d}" for c in rule.cwe]
    tags += [f"external/owasp-llm-2025/{c.lower()}" for c in rule.owasp_llm]
    tags += [f"external/owasp-ml-2023/{c.lower()}" for c in rule.owasp_ml]
    tags += [f"external/mitre-atlas/{t.lower()}" for t in rule.atlas]
    return list(dict.fromkeys(tags))


def _result(
    finding: Finding, rule_index: dict[str, int], artifacts: _Artifacts, *, baselined: bool = False
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": finding.rule.id,
        "ruleIndex": rule_index[finding.rule.id],
        "level": finding.severity.sarif_level,
        "message": {"text": finding.message or finding.rule.title},
        "locations": [_location(finding, artifacts)],
        "partialFingerprints": {FINGERPRINT_KEY: finding.fingerprint},
    }
    if baselined:
        result["suppressions"] = [
            {"kind": "external", "status": "accepted", "justification": "In the Garrison baseline."}
        ]
    properties: dict[str, Any] = {
        "severity": finding.severity.label,
        "confidence": finding.confidence.label,
        "detector": finding.detector,
    }
    if loc := finding.location.to_dict():
        properties["location"] = loc
    result["properties"] = properties
    return result


def _location(finding: Finding, artifacts: _Artifacts) -> dict[str, Any]:
    loc = finding.location
    physical: dict[str, Any] = {"artifactLocation": artifacts.location(finding.asset)}
    location: dict[str, Any] = {"physicalLocation": physical}
    if loc.member is not None:
        uri, _ = asset_uri(finding.asset)
        location["logicalLocations"] = [
            {"name": loc.member.rsplit("!", 1)[-1], "fullyQualifiedName": f"{uri}!{loc.member}"}
        ]
    elif loc.offset is not None:
        region: dict[str, Any] = {"byteOffset": loc.offset}
        length = _byte_length(finding)
        if length is not None:
            region["byteLength"] = length
        physical["region"] = region
    if text := location_text(loc):
        location["message"] = {"text": text}
    return location


def _byte_length(finding: Finding) -> int | None:
    """The length of the byte-range evidence that starts at the location's offset, if any."""
    for evidence in finding.evidence:
        if isinstance(evidence, ByteRange) and evidence.start == finding.location.offset:
            return max(evidence.end - evidence.start, 0)
    return None


def _invocation(report: ScanReport, artifacts: _Artifacts) -> dict[str, Any]:
    invocation: dict[str, Any] = {
        "executionSuccessful": report.complete,
        "startTimeUtc": iso_utc(report.started_at),
        "endTimeUtc": iso_utc(report.finished_at),
        "toolExecutionNotifications": [
            _notification(e) for e in sorted(report.errors, key=lambda e: (e.locator, e.detector or ""))
        ],
    }
    invocation["properties"] = {
        "skipped": [
            {"locator": s.locator, "reason": s.reason}
            for s in sorted(report.skipped, key=lambda s: (s.locator, s.reason))
        ],
    }
    return invocation


def _notification(error: ErrorRecord) -> dict[str, Any]:
    who = f" ({error.detector})" if error.detector else ""
    notification: dict[str, Any] = {
        "level": "error",
        "message": {"text": f"{error.locator}{who}: {error.message}"},
    }
    if error.locator:
        artifact = _artifact_location(Asset(kind=AssetKind.FILE, locator=error.locator))
        notification["locations"] = [{"physicalLocation": {"artifactLocation": artifact}}]
    if error.detector:
        notification["properties"] = {"detector": error.detector}
    return notification
