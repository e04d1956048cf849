"""Scanning many files on several cores: forked workers, results merged in order.

Workers are forked from the scanning process, so they start with every detector already imported
and share nothing afterwards. Each batch of files is scanned by one worker and its records come
back pickled; the caller merges them in batch order, so a parallel scan reports exactly what a
sequential one does. Where ``fork`` is unavailable or unsafe (Windows, macOS), or a worker dies,
the remaining batches run in this process: parallelism can make a scan faster, never less complete.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

AUTO_MAX_JOBS = 8
"""Most workers ``jobs = 0`` picks."""
AUTO_MIN_FILES = 64
"""Fewer files than this are scanned in-process when ``jobs = 0``: forking would cost more."""


class _Work(Generic[T, R]):
    def __init__(self, batches: Sequence[T], work: Callable[[T], R]) -> None:
        self.batches, self.work = batches, work


_INHERITED: _Work[Any, Any] | None = None
"""The batches and the work function, set before forking and inherited by the workers."""


def _run(index: int) -> Any:
    assert _INHERITED is not None  # set by run_batches before the pool forks
    return _INHERITED.work(_INHERITED.batches[index])


def _unblock_interrupt() -> None:
    """In each worker: take Ctrl-C again (the mask was inherited from the forking parent)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def choose_jobs(requested: int, files: int) -> int:
    """Workers to use: ``requested`` when positive, else one per core (at most 8) for many files."""
    if requested > 0:
        return requested
    if files < AUTO_MIN_FILES:
        return 1
    return max(1, min(AUTO_MAX_JOBS, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))


def fork_available() -> bool:
    """Whether workers can be forked safely here (Linux and other non-macOS POSIX systems)."""
    return sys.platform != "darwin" and "fork" in multiprocessing.get_all_start_methods()


def run_batches(
    batches: Sequence[T], work: Callable[[T], R], *, jobs: int, done: Callable[[int, R], None]
) -> None:
    """Run ``work`` on every batch, calling ``done(index, result)`` as each finishes (any order)."""
    global _INHERITED  # noqa: PLW0603 - handed to forked workers through the module, never pickled
    remaining = set(range(len(batches)))
    if jobs > 1 and len(batches) > 1 and fork_available():
        _INHERITED = _Work(batches, work)
        try:
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(
                max_workers=min(jobs, len(batches)), mp_context=context, initializer=_unblock_interrupt
            ) as pool:
                # The workers are forked during the first submit. A Ctrl-C that lands inside fork()
                # would interrupt the interpreter's after-fork hooks and print their traceback; held
                # back until the forks are done, it interrupts the scan cleanly instead.
                masked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
                try:
                    pending: dict[Future[Any], int] = {pool.submit(_run, i): i for i in sorted(remaining)}
                finally:
                    signal.pthread_sigmask(signal.SIG_SETMASK, masked)
                while pending:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        index = pending.pop(future)
                        if future.exception() is not None:
                            continue  # rerun here below, where the error surfaces as it would alone
                        remaining.discard(index)
                        done(index, future.result())
        except BrokenProcessPool:
            pass  # a worker died (killed for memory, a crash in a C extension): finish here
        finally:
            _INHERITED = None
    for index in sorted(remaining):
        done(index, work(batches[index]))


def split(count: int, sizes: Sequence[int], jobs: int) -> list[range]:
    """Contiguous index ranges, about four per worker, balanced by bytes and by count."""
    if count == 0:
        return []
    parts = max(1, min(count, jobs * 4))
    total = sum(sizes) + count * 65536  # a file costs at least a head read and a detector pass
    target = total / parts
    ranges: list[range] = []
    start, acc = 0, 0.0
    for index in range(count):
        cost = sizes[index] + 65536
        if acc and acc + cost > target and len(ranges) < parts - 1:
            ranges.append(range(start, index))  # a big file starts a batch of its own
            start, acc = index, 0.0
        acc += cost
        if acc >= target and len(ranges) < parts - 1:
            ranges.append(range(start, index + 1))
            start, acc = index + 1, 0.0
    ranges.append(range(start, count))
    return [r for r in ranges if len(r)]


__all__ = ["AUTO_MAX_JOBS", "AUTO_MIN_FILES", "choose_jobs", "fork_available", "run_batches", "split"]
