"""What a verification found, for people and for the store: findings, a report, an event, text.

:func:`verification_findings` maps a :class:`~garrison.integrity.signing.Verification` onto the
integrity rules (GAR-INT-001 a signature that does not verify, 101 a changed file with its byte
ranges or rows, 102 an added file, 103 a removed one, 104 an unsafe path);
:func:`verification_report` wraps them in a report every renderer and the store take;
:func:`verification_event` is the ``integrity.verify.passed|failed`` event; :func:`describe` the
console text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from garrison.core.results import ScanReport
    from garrison.integrity.signing import Verification


def verification_findings(result: Verification, *, label: str) -> tuple[list[Any], list[Any]]:
    """Findings and assets for a verification; no finding when it passed."""
    from garrison.core.assets import Asset, AssetKind
    from garrison.core.evidence import ByteRange, Observation
    from garrison.core.findings import Finding, Location
    from garrison.integrity import rules

    detector = "integrity.verify"
    kind = AssetKind.DIRECTORY if result.target.is_dir() else AssetKind.FILE
    root = Asset(kind=kind, locator=label)
    findings: list[Finding] = []
    if result.failure is not None:
        findings.append(
            Finding.create(
                rule=rules.SIGNATURE_INVALID,
                asset=root,
                message=f"{result.signature}: {result.failure}",
                detector=detector,
                evidence=(Observation(name="signature", actual=str(result.signature)),),
            )
        )
        return findings, [root]

    def file_asset(rel: str) -> Asset:
        locator = label if result.target.is_file() else f"{label.rstrip('/')}/{rel}"
        return Asset(kind=AssetKind.FILE, locator=locator)

    diff = result.diff
    assert diff is not None
    for change in diff.changed:
        rows = result.rows.get(change.path)
        where = f"; {rows}" if rows else ""
        evidence: list[Any] = [
            ByteRange(start=s, end=e, description="differs from the signed digest") for s, e in change.ranges
        ]
        if rows:
            evidence.append(Observation(name="rows", actual=rows))
        findings.append(
            Finding.create(
                rule=rules.FILE_MODIFIED,
                asset=file_asset(change.path),
                message=f"{change.path} differs from the signed content{where}",
                detector=detector,
                location=Location(member=change.path),
                evidence=tuple(evidence),
            )
        )
    gone_or_new = [
        (rules.FILE_ADDED, p, "is not in the signed manifest: it appeared after signing") for p in diff.added
    ]
    gone_or_new += [(rules.FILE_REMOVED, p, "was signed but is missing now") for p in diff.removed]
    for rule, p, what in gone_or_new:
        findings.append(
            Finding.create(
                rule=rule,
                asset=file_asset(p),
                message=f"{p} {what}",
                detector=detector,
                location=Location(member=p),
            )
        )
    for problem in result.problems:
        findings.append(
            Finding.create(
                rule=rules.UNSAFE_PATH,
                asset=file_asset(problem.path),
                message=f"{problem.path}: {problem.detail}",
                detector=detector,
                location=Location(member=problem.path),
                evidence=(Observation(name="problem", actual=str(problem.kind)),),
            )
        )
    return findings, [root]


def verification_report(result: Verification, *, label: str, started_at: Any) -> ScanReport:
    """A report (for every renderer and the store) of one verification."""
    from garrison.core.results import ScanReport

    findings, assets = verification_findings(result, label=label)
    return ScanReport.of(label, assets=assets, findings=findings, started_at=started_at)


def verification_event(result: Verification, *, label: str, actor: str = "garrison") -> Any:
    """The event a verification appends to the log: passed or failed, with the counts."""
    from garrison.core.events import Event

    data: dict[str, Any] = {"signature": str(result.signature), "signer": result.signer}
    if result.failure is not None:
        data["failure"] = result.failure
    if result.diff is not None:
        data.update(
            changed=[c.path for c in result.diff.changed][:100],
            added=list(result.diff.added[:100]),
            removed=list(result.diff.removed[:100]),
            unchanged=result.diff.unchanged,
        )
    data["problems"] = [p.path for p in result.problems][:100]
    kind = "integrity.verify.passed" if result.ok else "integrity.verify.failed"
    return Event(type=kind, actor=actor, subject=label, data=data)


def describe(result: Verification) -> str:
    """Lines for a person: the verdict, then every change."""
    from garrison.integrity.manifest_diff import render_diff

    if result.failure is not None:
        return f"FAILED: {result.failure}"
    assert result.diff is not None
    lines = [f"signed by {result.signer}"]
    if not result.diff.is_empty:
        body = render_diff(result.diff).splitlines()
        for line in body[:-1]:
            lines.append(line)
            path = line.split(None, 1)[1].split(" (", 1)[0] if line.startswith("changed") else None
            if path and path in result.rows:
                lines.extend("         " + r for r in result.rows[path].splitlines())
        lines.append(body[-1])
    lines.extend(f"unsafe   {p.path}: {p.detail}" for p in result.problems)
    lines.append(
        "OK: every file matches the signature"
        if result.ok
        else "FAILED: the content differs from what was signed"
    )
    return "\n".join(lines)


__all__: Sequence[str] = ["describe", "verification_event", "verification_findings", "verification_report"]
