"""Change detection: compare a tree with its signed manifest, once or periodically.

:func:`watch` verifies ``path`` against a signature (:func:`~garrison.integrity.signing.verify_path`)
every ``interval`` seconds and hands each result to a callback, which records findings and
events. A periodic watch reports a *transition* (clean → changed, one change set → another,
changed → clean again) once, not on every cycle, so a cron job or a log does not fill with
repeats; the callback is told whether the state is new.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from garrison.core.errors import UsageError
from garrison.integrity.bundle import Trust
from garrison.integrity.signing import Verification, verify_path


@dataclass(frozen=True, slots=True, kw_only=True)
class Cycle:
    """One comparison of the tree with its baseline."""

    number: int
    """1 for the first comparison."""
    result: Verification
    """What the comparison found."""
    changed_state: bool
    """True when this result differs from the previous cycle's (always true for the first)."""


def state_key(result: Verification) -> tuple[object, ...]:
    """What identifies a state for transition detection: the failure or the set of differences."""
    if result.failure is not None:
        return ("failure", result.failure)
    diff = result.diff
    changed = tuple(c.path for c in diff.changed) if diff else ()
    return (
        changed,
        diff.added if diff else (),
        diff.removed if diff else (),
        tuple((p.path, p.kind) for p in result.problems),
    )


def watch(
    path: Path,
    signature: Path,
    trust: Trust,
    *,
    interval: float = 0.0,
    count: int | None = None,
    on_cycle: Callable[[Cycle], None],
    stop: threading.Event | None = None,
    ignore: Iterable[str] = (),
) -> list[Cycle]:
    """Compare ``path`` with ``signature`` once (``interval=0``), or every ``interval`` seconds.

    Runs ``count`` cycles (``None``: until ``stop`` is set). Returns every cycle. The signature is
    read and verified again on each cycle, so a replaced baseline is noticed too.
    """
    if interval < 0:
        raise UsageError(f"--interval must be zero or positive, got {interval}")
    if count is not None and count < 1:
        raise UsageError(f"--count must be at least 1, got {count}")
    if interval == 0:
        count = 1
    stop = stop or threading.Event()
    cycles: list[Cycle] = []
    previous: tuple[object, ...] | None = None
    ignored = tuple(ignore)
    number = 0
    while not stop.is_set():
        number += 1
        result = verify_path(path, signature, trust, ignore=ignored)
        key = state_key(result)
        cycle = Cycle(number=number, result=result, changed_state=key != previous)
        previous = key
        cycles.append(cycle)
        on_cycle(cycle)
        if count is not None and number >= count:
            break
        if stop.wait(interval):
            break
    return cycles


__all__ = ["Cycle", "state_key", "watch"]
