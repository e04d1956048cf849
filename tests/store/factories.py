"""Test data for store tests: rules, assets, findings with every kind of evidence, reports, events.

Imported by the store tests as ``tests.store.factories``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from garrison.core.assets import Asset, AssetKind
from garrison.core.events import Event
from garrison.core.evidence import ByteRange, Exchange, Metric, Observation, OpcodeRef, TextSpan
from garrison.core.findings import Finding, Location
from garrison.core.results import ErrorRecord, ScanReport, SkippedRecord
from garrison.core.rules import Rule
from garrison.core.severity import Confidence, Severity

RULE_PICKLE = Rule(
    id="GAR-TST-001",
    name="test-rule-thing",
    title="A test rule matched",
    severity=Severity.HIGH,
    description="Matches whatever the tests say it matches.",
    remediation="Nothing to do; this is a test.",
    cwe=("CWE-502",),
)
RULE_SECRET = Rule(
    id="GAR-TST-002",
    name="test-secret-thing",
    title="A test secret was found",
    severity=Severity.MEDIUM,
    description="A secret-looking string, for tests.",
    remediation="Rotate it.",
    cwe=("CWE-798",),
)
RULE_INFO = Rule(
    id="GAR-TST-003",
    name="test-info-thing",
    title="Something worth knowing",
    severity=Severity.INFO,
    description="An informational observation, for tests.",
    remediation="Read it.",
    owasp_ml=("ML06",),
)
RULES = (RULE_PICKLE, RULE_SECRET, RULE_INFO)

T0 = datetime(2026, 11, 25, 21, 58, 0, 123456, tzinfo=UTC)


def asset(locator: str, *, digest: str | None = "auto", kind: AssetKind = AssetKind.FILE) -> Asset:
    """A test asset; ``digest='auto'`` derives a digest from the locator."""
    if digest == "auto":
        digest = "sha256:" + uuid.uuid5(uuid.NAMESPACE_URL, locator).hex * 2
    return Asset(kind=kind, locator=locator, digest=digest, size=len(locator), format="pickle")


def finding(
    where: Asset,
    *,
    rule: Rule = RULE_PICKLE,
    severity: Severity | None = None,
    message: str = "os.system is imported",
    member: str | None = None,
) -> Finding:
    """A test finding carrying one piece of every kind of evidence."""
    return Finding.create(
        rule=rule,
        asset=where,
        message=message,
        detector="test-detector",
        severity=severity,
        confidence=Confidence.MEDIUM,
        location=Location(member=member, offset=12, row=3, column="text", request_id="req-1"),
        evidence=(
            OpcodeRef(index=4, offset=12, opcode="STACK_GLOBAL", argument="os.system"),
            ByteRange(start=0, end=16, description="header"),
            TextSpan(start=1, end=9, excerpt="sk-****cdef", value_hash="abc123", score=0.93),
            Metric(name="robust-accuracy", value=0.41, threshold=0.7, comparison="<"),
            Observation(name="content-format", actual="pickle", expected="safetensors"),
            Exchange(request_id="req-1", request="hello", response="wörld ✓"),
        ),
    )


def make_report(
    run_id: str = "run-1",
    *,
    started_at: datetime = T0,
    findings: tuple[Finding, ...] | None = None,
    baselined: tuple[Finding, ...] = (),
    errors: tuple[ErrorRecord, ...] = (),
    skipped: tuple[SkippedRecord, ...] = (),
    assets: tuple[Asset, ...] | None = None,
    target: str = "models/",
) -> ScanReport:
    """A scan report; by default two assets and three findings of different severities."""
    a, b = asset("models/a.pkl"), asset("models/sub/b.bin")
    if findings is None:
        findings = (
            finding(a),
            finding(a, rule=RULE_SECRET, member="archive/data.pkl"),
            finding(b, rule=RULE_INFO, message="format mismatch"),
        )
    if assets is None:
        assets = (a, b)
    return ScanReport(
        run_id=run_id,
        target=target,
        tool_version="0.1.0",
        started_at=started_at,
        finished_at=started_at + timedelta(seconds=2, microseconds=5),
        assets=assets,
        findings=findings,
        errors=errors,
        skipped=skipped,
        baselined=baselined,
    )


def make_events(count: int, *, prefix: str = "e") -> list[Event]:
    """``count`` distinct events with nested, non-ASCII and numeric data."""
    return [
        Event(
            type="gateway.request.denied" if i % 2 else "scan.completed",
            actor=f"key-{i % 3}",
            subject=f"{prefix}-subject-{i}",
            data={"i": i, "ratio": i / 7, "nested": {"ok": i % 2 == 0, "names": ["ä", "b"]}, "none": None},
            occurred_at=T0 + timedelta(seconds=i),
            id=f"{prefix}{i:04d}{uuid.uuid4().hex[:8]}",
        )
        for i in range(count)
    ]
