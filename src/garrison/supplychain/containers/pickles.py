"""The one place containers hand pickle bytes to the pickle engine (:mod:`garrison.supplychain.pickle`)."""

from __future__ import annotations

import mmap

from garrison.core.assets import Asset
from garrison.core.findings import Finding
from garrison.core.rules import Rule
from garrison.supplychain.pickle import PickleAnalysis, analyze_stream, pickle_findings
from garrison.supplychain.pickle.rules import RULES as PICKLE_RULES

Buffer = bytes | memoryview | mmap.mmap


def pickle_rules() -> tuple[Rule, ...]:
    """The rules the pickle engine emits (declared by the container detectors, which emit them too)."""
    return PICKLE_RULES


def analyses_of(data: Buffer, *, max_pickles: int | None = None) -> list[PickleAnalysis]:
    """The pickle engine's analyses of the pickles in ``data`` (at most ``max_pickles``)."""
    return analyze_stream(data, max_pickles=max_pickles)


def scan_pickles(
    data: Buffer,
    *,
    asset: Asset,
    detector: str,
    member: str | None,
    route: str,
    max_pickles: int | None = None,
    expected: int = 1,
    allow_trailing: bool = False,
) -> list[Finding]:
    """Findings of the pickle engine's policy on the pickles a loader reads from ``data``.

    ``max_pickles`` is how many the loader reads back to back (the rest is never unpickled),
    ``expected`` how many the format normally holds, ``allow_trailing`` whether raw bytes may
    follow them (legacy storages, the zip after a legacy prefix).
    """
    analyses = analyses_of(data, max_pickles=max_pickles)
    return list(
        pickle_findings(
            analyses,
            asset=asset,
            detector=detector,
            member=member,
            path=route,
            expected_pickles=expected,
            allow_trailing=allow_trailing,
        )
    )
