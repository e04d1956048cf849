"""When a scan refuses a load, and how a refusal is worded.

The rule: any finding of severity :data:`REFUSE_AT` (medium) or above refuses, whatever its family,
except GAR-PKL-002 findings for globals the caller trusts by name. A scan with errors, a file the
scan skipped, or bytes that differ from the bytes opened also refuse.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from garrison.core.severity import Severity
from garrison.core.text import visible
from garrison.supplychain.safeload.errors import LoadRefusedError
from garrison.supplychain.safeload.unpickler import Gate

if TYPE_CHECKING:
    from garrison.core.findings import Finding
    from garrison.core.results import ScanReport

REFUSE_AT = Severity.MEDIUM
"""Lowest finding severity that refuses a load.

Medium and above covers code execution and unknown globals (critical, high), and every structural
problem the scanners report at medium: malformed or truncated pickles, several pickles in one
stream, zip CRC and header mismatches, tampered npz members, archive and scan limits. Those are
exactly the places where the scanner and a loader can read different things (parser differentials),
so a file that has one is not loaded. Low findings (a pickle-based format, an extension that does not
match the content) describe ordinary model files and do not refuse.
"""

UNLISTED_GLOBAL = "GAR-PKL-002"
"""The one rule a caller's ``allow`` list can waive: an unknown (not critical) global it names."""


def check_scan(label: str, target: Path, report: ScanReport, digest: str, gate: Gate) -> str:
    """The format id the scan gave the file, or raise :class:`LoadRefusedError`."""
    if report.errors:
        problems = "; ".join(f"{e.locator}: {e.message}" for e in report.errors[:3])
        raise LoadRefusedError(
            label,
            f"the scan was incomplete ({problems})",
            findings=[f for f in report.findings if f.severity >= REFUSE_AT],
            hint="a file that cannot be scanned completely is not loaded",
        )
    own = [a for a in report.assets if a.locator == visible(target.name)]  # as Asset writes it
    if len(own) != 1 or own[0].format is None:
        reasons = "; ".join(s.reason for s in report.skipped) or "it is not in the scan report"
        raise LoadRefusedError(label, f"the file was not scanned: {reasons}")
    if own[0].digest != digest:
        raise LoadRefusedError(
            label,
            "the file changed while it was being checked (the bytes scanned are not the bytes opened)",
            hint="make sure nothing writes to the file while it is loaded, and try again",
        )
    trusted = {f"{module}.{name}" for module, name in gate.trusted}
    refusing = [f for f in report.findings if f.severity >= REFUSE_AT and not _waived(f, trusted)]
    if refusing:
        named = _globals_named(refusing)
        only_unlisted = all(f.rule.id == UNLISTED_GLOBAL for f in refusing)
        raise LoadRefusedError(
            label,
            f"the scan found {len(refusing)} problem(s) of severity {REFUSE_AT.label} or above",
            findings=refusing,
            refused_globals=named,
            hint=_allow_hint(named)
            if only_unlisted and named
            else f"run `garrison scan {label}` for the full report; do not load this file another way",
        )
    return own[0].format


def _allow_hint(names: list[str]) -> str:
    listed = ", ".join(repr(n) for n in names)
    flags = " ".join(f"--allow {n}" for n in names)
    return (
        "if these are classes of your own that you trust, allow them by name: "
        f"allow=[{listed}] (command line: {flags})"
    )


def _imported_global(finding: Finding) -> str | None:
    for evidence in finding.evidence:
        argument = getattr(evidence, "argument", None)
        if evidence.kind == "opcode" and isinstance(argument, str):
            return argument
    return None


def _waived(finding: Finding, trusted: set[str]) -> bool:
    return finding.rule.id == UNLISTED_GLOBAL and _imported_global(finding) in trusted


def _globals_named(findings: Iterable[Finding]) -> list[str]:
    named = {
        g for f in findings if f.rule.family == "PKL" and (g := _imported_global(f)) is not None and "." in g
    }
    return sorted(named)


def unpickler_refusal(label: str, gate: Gate) -> LoadRefusedError:
    """The refusal for what the restricted unpickler refused through ``gate``."""
    targets = list(dict.fromkeys(r.target for r in gate.refusals))
    first = gate.refusals[0]
    trusted_would_help = all(r.reason.startswith("unknown") for r in gate.refusals)
    return LoadRefusedError(
        label,
        f"the restricted unpickler refused {first.target} ({first.reason})",
        refused_globals=targets,
        hint=_allow_hint(targets)
        if trusted_would_help
        else "the file asks for something no model file needs; do not load it another way",
    )
