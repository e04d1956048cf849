"""From analyses to findings: the allowlist policy applied to what a pickle would import and call."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from garrison.core.assets import Asset
from garrison.core.evidence import ByteRange, Evidence, Observation, OpcodeRef
from garrison.core.findings import Finding, Location
from garrison.core.rules import Rule
from garrison.core.severity import Confidence, Severity
from garrison.supplychain.pickle.model import CallRef, GlobalRef, PickleAnalysis
from garrison.supplychain.pickle.rules import (
    DANGEROUS_CALLABLE,
    DYNAMIC_IMPORT,
    MALFORMED_PICKLE,
    MULTIPLE_PICKLES,
    NESTED_PICKLE,
    RESOURCE_LIMIT,
    UNLISTED_GLOBAL,
)
from garrison.supplychain.policy import Classification, verdict


def is_clean(analysis: PickleAnalysis) -> bool:
    """Whether a pickle imports only allowlisted globals and does nothing dynamic (nested included)."""
    if analysis.dynamic_imports or any(c.on_global for c in analysis.calls):
        return False
    if any(verdict(g.module, g.name).classification is not Classification.ALLOWED for g in analysis.globals):
        return False
    return all(is_clean(a) for a in analysis.inline) and all(is_clean(a) for _, a in analysis.nested_analyses)


class _Emitter:
    """Builds findings for one asset, one member, one nesting path."""

    def __init__(self, asset: Asset, detector: str, member: str | None, path: str, base: int) -> None:
        self.asset = asset
        self.detector = detector
        self.member = member
        self.path = path
        self.base = base

    def label(self) -> str:
        return f"[{self.path}] " if self.path else ""

    def finding(
        self,
        rule: Rule,
        message: str,
        offset: int,
        evidence: tuple[Evidence, ...],
        severity: Severity | None = None,
    ) -> Finding:
        return Finding.create(
            rule=rule,
            asset=self.asset,
            message=self.label() + message,
            detector=self.detector,
            severity=severity,
            confidence=Confidence.HIGH,
            location=Location(member=self.member, offset=self.base + offset),
            evidence=evidence,
        )

    def child(self, path: str, base: int) -> _Emitter:
        joined = f"{self.path} > {path}" if self.path else path
        return _Emitter(self.asset, self.detector, self.member, joined, self.base + base)


def _call_text(ref: GlobalRef, calls: Sequence[CallRef]) -> tuple[str, tuple[Evidence, ...]]:
    mine = [c for c in calls if c.callee is not None and c.callee.index == ref.index and c.callee == ref]
    if not mine:
        return "imported without a direct call (it can still be called through another object)", ()
    first = mine[0]
    text = f"called by {first.opcode} at opcode {first.index} (offset {first.offset})"
    if first.result_discarded:
        text += ", its result discarded (called only for its side effect)"
    if len(mine) > 1:
        text += f" and {len(mine) - 1} more time(s)"
    return text, (
        OpcodeRef(index=first.index, offset=first.offset, opcode=first.opcode, argument=ref.dotted),
    )


def _analysis_findings(analysis: PickleAnalysis, emit: _Emitter) -> Iterator[Finding]:
    seen: set[tuple[str, str]] = set()
    for ref in analysis.globals:
        judged = verdict(ref.module, ref.name)
        if judged.classification is Classification.ALLOWED:
            continue
        rule = DANGEROUS_CALLABLE if judged.classification is Classification.CRITICAL else UNLISTED_GLOBAL
        if (rule.id, ref.dotted) in seen:
            continue
        seen.add((rule.id, ref.dotted))
        called, call_evidence = _call_text(ref, analysis.calls)
        message = (
            f"pickle imports {ref.dotted} ({judged.reason}) with {ref.opcode} at opcode {ref.index} "
            f"(offset {ref.offset}), reached via {ref.via}; {called}."
        )
        imported = OpcodeRef(index=ref.index, offset=ref.offset, opcode=ref.opcode, argument=ref.dotted)
        yield emit.finding(rule, message, ref.offset, (imported, *call_evidence))
    for index, offset, why in analysis.dynamic_imports:
        if ("dyn", why) in seen:
            continue
        seen.add(("dyn", why))
        dyn = OpcodeRef(index=index, offset=offset, opcode=why.split(" ", 1)[0], argument=why)
        yield emit.finding(DYNAMIC_IMPORT, f"{why} (opcode {index}, offset {offset}).", offset, (dyn,))
    for call in analysis.calls:
        if call.on_global and call.callee is not None:
            name = call.callee.dotted
            message = (
                f"BUILD at opcode {call.index} (offset {call.offset}) sets attributes on the imported "
                f"global {name} itself, not on a new object: it patches shared interpreter state."
            )
            build = OpcodeRef(index=call.index, offset=call.offset, opcode="BUILD", argument=name)
            yield emit.finding(DYNAMIC_IMPORT, message, call.offset, (build,))
    for inner in analysis.inline:
        yield from _analysis_findings(inner, emit.child(f"joblib object array @{inner.start}", 0))
    for offset, inner in analysis.nested_analyses:
        if is_clean(inner):
            continue
        bad = sorted(
            {g.dotted for g in inner.globals if verdict(g.module, g.name).classification.value != "allowed"}
        )
        shown = ", ".join(bad[:5]) or "dynamic imports"
        message = f"constant at offset {offset} is a nested pickle that imports {shown}."
        evidence = (
            ByteRange(
                start=emit.base + offset, end=emit.base + inner.end + offset, description="nested pickle"
            ),
        )
        yield emit.finding(NESTED_PICKLE, message, offset, evidence)
        yield from _analysis_findings(inner, emit.child(f"nested pickle @{offset}", offset))
    if analysis.malformed is not None:
        at = analysis.malformed_offset if analysis.malformed_offset is not None else analysis.end
        message = (
            f"pickle starting at offset {analysis.start} is malformed at offset {at}: {analysis.malformed}."
        )
        if analysis.globals or analysis.calls:
            message += " The opcodes before the break still run when it is loaded."
        evidence = (ByteRange(start=emit.base + at, end=emit.base + at + 1, description=analysis.malformed),)
        yield emit.finding(MALFORMED_PICKLE, message, at, evidence)
    if analysis.limit_hit is not None:
        message = f"analysis stopped at offset {analysis.end}: the {analysis.limit_hit} bound was reached."
        limit = Observation(name="limit", actual=analysis.limit_hit)
        yield emit.finding(RESOURCE_LIMIT, message, analysis.end, (limit,))


def pickle_findings(
    analyses: Sequence[PickleAnalysis],
    *,
    asset: Asset,
    detector: str,
    member: str | None = None,
    path: str = "",
    expected_pickles: int = 1,
    allow_trailing: bool = False,
) -> Iterator[Finding]:
    """Findings for the pickles of one stream (from :func:`analyze_stream` or :func:`analyze_pickle`).

    ``path`` prefixes every message (a nesting path such as ``data.pkl > nested pickle @40``).
    ``expected_pickles`` is how many pickles the format stores back to back (5 for PyTorch's legacy
    layout); ``allow_trailing`` accepts raw data after them (legacy storages).
    """
    emit = _Emitter(asset, detector, member, path, 0)
    for analysis in analyses:
        yield from _analysis_findings(analysis, emit)
    if len(analyses) > expected_pickles:
        extra = analyses[expected_pickles:]
        dirty = [a for a in extra if not is_clean(a)]
        severity = Severity.HIGH if dirty else Severity.MEDIUM
        message = (
            f"{len(extra)} more pickle(s) follow the first {expected_pickles}, from offset {extra[0].start}"
            + ("; a later one imports globals outside the allowlist." if dirty else ".")
        )
        evidence = (ByteRange(start=extra[0].start, end=extra[-1].end, description="extra pickles"),)
        yield emit.finding(MULTIPLE_PICKLES, message, extra[0].start, evidence, severity)
    if analyses and analyses[-1].trailing and not allow_trailing:
        last = analyses[-1]
        message = f"{last.trailing} byte(s) after the pickle's STOP at offset {last.end} are not a pickle."
        evidence = (ByteRange(start=last.end, end=last.end + last.trailing, description="trailing data"),)
        yield emit.finding(MULTIPLE_PICKLES, message, last.end, evidence)
