"""Prometheus metrics of the gateway, summed over every worker process.

Each process counts in plain dictionaries (a few hundred nanoseconds per update, no lock, no
syscall); a daemon thread writes a snapshot of them to ``<dir>/metrics-<pid>-<token>.json`` once a
second (atomically: temporary file, then rename). ``/metrics`` is answered by any worker: it adds
its own live numbers to the latest snapshot of every other process. A snapshot of a process that
died stays, so totals never go back; the launcher clears the folder before it starts workers
(:func:`clear_multiprocess_dir`), as Prometheus expects of a restart. The budget gauge shows the
newest value any process set.

Without a folder, the numbers are this process's only.

Metrics:

- ``garrison_gateway_requests_total{route,status}``
- ``garrison_gateway_decisions_total{step,outcome}``
- ``garrison_gateway_request_duration_seconds{route}`` (histogram)
- ``garrison_gateway_overhead_seconds`` (histogram): time spent in the gateway, upstream excluded
- ``garrison_gateway_upstream_errors_total{route,kind}``
- ``garrison_gateway_budget_remaining{limit}`` (gauge)
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from garrison.gateway.types import Decision, RequestFacts

#: Upper bounds (seconds) of the request duration histogram's buckets.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Upper bounds (seconds) of the gateway overhead histogram's buckets.
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
_PREFIX = "metrics-"
_SUFFIX = ".json"
_live: weakref.WeakSet[Metrics] = weakref.WeakSet()


def clear_multiprocess_dir(path: Path) -> None:
    """Create ``path`` and remove every snapshot in it; call before starting the workers."""
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob(f"{_PREFIX}*"):
        with contextlib.suppress(FileNotFoundError):
            old.unlink()


class _Counts:
    """One process's numbers. Histograms are lists: a count per bucket (+Inf last), then the sum."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.decisions: dict[tuple[str, str], int] = {}
        self.upstream: dict[tuple[str, str], int] = {}
        self.duration: dict[str, list[float]] = {}
        self.overhead: list[float] = [0.0] * (len(OVERHEAD_BUCKETS) + 2)
        self.budget: dict[str, tuple[float, float]] = {}

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready copy; each ``dict.copy()``/``list()`` is atomic under the GIL, so it is safe
        while the event loop thread keeps counting."""
        return {
            "requests": [[r, s, n] for (r, s), n in self.requests.copy().items()],
            "decisions": [[st, o, n] for (st, o), n in self.decisions.copy().items()],
            "upstream": [[r, k, n] for (r, k), n in self.upstream.copy().items()],
            "duration": [[r, list(h)] for r, h in self.duration.copy().items()],
            "overhead": list(self.overhead),
            "budget": [[name, v, t] for name, (v, t) in self.budget.copy().items()],
        }

    def add(self, snap: dict[str, Any]) -> None:
        """Add another process's snapshot to these numbers."""
        for route, status, n in snap.get("requests", ()):
            key = (str(route), int(status))
            self.requests[key] = self.requests.get(key, 0) + int(n)
        for step, outcome, n in snap.get("decisions", ()):
            key2 = (str(step), str(outcome))
            self.decisions[key2] = self.decisions.get(key2, 0) + int(n)
        for route, kind, n in snap.get("upstream", ()):
            key3 = (str(route), str(kind))
            self.upstream[key3] = self.upstream.get(key3, 0) + int(n)
        for route, hist in snap.get("duration", ()):
            if len(hist) == len(DURATION_BUCKETS) + 2:
                mine = self.duration.setdefault(str(route), [0.0] * (len(DURATION_BUCKETS) + 2))
                for i, v in enumerate(hist):
                    mine[i] += v
        over = snap.get("overhead", ())
        if len(over) == len(self.overhead):
            for i, v in enumerate(over):
                self.overhead[i] += v
        for name, value, at in snap.get("budget", ()):
            current = self.budget.get(str(name))
            if current is None or float(at) > current[1]:
                self.budget[str(name)] = (float(value), float(at))


class Metrics:
    """The gateway's counters and histograms; see the module docstring for the multi-process story."""

    def __init__(self, multiproc_dir: Path | str | None = None, *, flush_interval_s: float = 1.0) -> None:
        """Count in this process; with ``multiproc_dir``, share snapshots with the other workers there."""
        self._dir = Path(multiproc_dir) if multiproc_dir is not None else None
        self._interval = flush_interval_s
        self._counts = _Counts()
        self._file: Path | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._reset_identity()
        _live.add(self)

    def _reset_identity(self) -> None:
        self._pid = os.getpid()
        if self._dir is not None:
            self._file = self._dir / f"{_PREFIX}{self._pid}-{secrets.token_hex(4)}{_SUFFIX}"

    def _after_fork(self) -> None:
        """A forked child starts from zero under its own file; the parent's numbers stay the parent's."""
        self._counts = _Counts()
        self._thread = None
        self._stop = threading.Event()
        self._reset_identity()

    # -- the hot path ------------------------------------------------------------------------------

    def observe(
        self,
        *,
        route: str,
        status: int,
        duration_s: float,
        overhead_s: float,
        decisions: Iterable[Decision] = (),
    ) -> None:
        """Count one finished request: its status, each step's decision, its duration and overhead."""
        counts = self._counts
        key = (route, status)
        counts.requests[key] = counts.requests.get(key, 0) + 1
        tally = counts.decisions
        for decision in decisions:
            dkey = (decision.step, decision.outcome.value)
            tally[dkey] = tally.get(dkey, 0) + 1
        hist = counts.duration.get(route)
        if hist is None:
            hist = counts.duration[route] = [0.0] * (len(DURATION_BUCKETS) + 2)
        hist[bisect_left(DURATION_BUCKETS, duration_s)] += 1
        hist[-1] += duration_s
        over = counts.overhead
        over[bisect_left(OVERHEAD_BUCKETS, overhead_s)] += 1
        over[-1] += overhead_s

    def observe_request(
        self, facts: RequestFacts, *, status: int, duration_s: float, overhead_s: float
    ) -> None:
        """:meth:`observe` with route and decisions taken from ``facts`` (``unmatched`` without a route)."""
        self.observe(
            route=facts.route or "unmatched",
            status=status,
            duration_s=duration_s,
            overhead_s=overhead_s,
            decisions=facts.decisions,
        )

    def upstream_error(self, route: str, kind: str) -> None:
        """Count an upstream failure (``timeout``, ``connect``, ``status_5xx``, ``protocol``...)."""
        key = (route, kind)
        self._counts.upstream[key] = self._counts.upstream.get(key, 0) + 1

    def set_budget_remaining(self, name: str, value: float) -> None:
        """Set what is left of the budget or limit ``name``."""
        self._counts.budget[name] = (float(value), time.time())

    # -- sharing between processes -----------------------------------------------------------------

    def start(self) -> None:
        """Start the thread that writes this process's snapshot every ``flush_interval_s``.

        Call it in each worker (after the fork). Without a folder it does nothing.
        """
        if self._dir is None or (self._thread is not None and self._thread.is_alive()):
            return
        self._dir.mkdir(parents=True, exist_ok=True)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="garrison-metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread and write a last snapshot."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        self.flush()

    def flush(self) -> None:
        """Write this process's snapshot now (atomically)."""
        if self._file is None:
            return
        if os.getpid() != self._pid:
            self._after_fork()
        assert self._file is not None
        data = json.dumps(self._counts.snapshot(), separators=(",", ":")).encode()
        tmp = self._file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, self._file)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with contextlib.suppress(OSError):
                self.flush()

    def _totals(self) -> _Counts:
        total = _Counts()
        total.add(self._counts.snapshot())
        if self._dir is None:
            return total
        for path in self._snapshot_files():
            if path == self._file:
                continue
            try:
                snap = json.loads(path.read_bytes())
            except (OSError, ValueError):
                continue  # gone or being replaced: the next scrape sees it
            if isinstance(snap, dict):
                with contextlib.suppress(TypeError, ValueError):
                    total.add(snap)
        return total

    def _snapshot_files(self) -> Iterator[Path]:
        assert self._dir is not None
        try:
            yield from self._dir.glob(f"{_PREFIX}*{_SUFFIX}")
        except OSError:
            return

    # -- exposition --------------------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of every process's totals, and its content type."""
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Exposition(self._totals()))
        return generate_latest(registry), CONTENT_TYPE_LATEST


class _Exposition(Collector):
    def __init__(self, counts: _Counts) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Any]:
        c = self._counts
        requests = CounterMetricFamily(
            "garrison_gateway_requests", "Requests answered, by route and status.", labels=["route", "status"]
        )
        for (route, status), n in sorted(c.requests.items()):
            requests.add_metric([route, str(status)], n)
        yield requests
        decisions = CounterMetricFamily(
            "garrison_gateway_decisions",
            "Decisions of each pipeline step, by outcome.",
            labels=["step", "outcome"],
        )
        for (step, outcome), n in sorted(c.decisions.items()):
            decisions.add_metric([step, outcome], n)
        yield decisions
        duration = HistogramMetricFamily(
            "garrison_gateway_request_duration_seconds",
            "Time from request to response, upstream included.",
            labels=["route"],
        )
        for route, hist in sorted(c.duration.items()):
            duration.add_metric([route], _buckets(DURATION_BUCKETS, hist), sum_value=hist[-1])
        yield duration
        overhead = HistogramMetricFamily(
            "garrison_gateway_overhead_seconds", "Time spent in the gateway itself, upstream excluded."
        )
        overhead.add_metric([], _buckets(OVERHEAD_BUCKETS, c.overhead), sum_value=c.overhead[-1])
        yield overhead
        upstream = CounterMetricFamily(
            "garrison_gateway_upstream_errors",
            "Failed upstream calls, by route and kind of failure.",
            labels=["route", "kind"],
        )
        for (route, kind), n in sorted(c.upstream.items()):
            upstream.add_metric([route, kind], n)
        yield upstream
        budget = GaugeMetricFamily(
            "garrison_gateway_budget_remaining", "What is left of each budget or limit.", labels=["limit"]
        )
        for name, (value, _) in sorted(c.budget.items()):
            budget.add_metric([name], value)
        yield budget


def _buckets(bounds: tuple[float, ...], hist: list[float]) -> list[tuple[str, float]]:
    """Cumulative ``(le, count)`` pairs, ``+Inf`` last, from per-bucket counts."""
    out: list[tuple[str, float]] = []
    running = 0.0
    for bound, n in zip(bounds, hist, strict=False):
        running += n
        out.append((_le(bound), running))
    out.append(("+Inf", running + hist[len(bounds)]))
    return out


def _le(bound: float) -> str:
    return repr(float(bound))


def _reset_all_after_fork() -> None:
    for metrics in list(_live):
        metrics._after_fork()


os.register_at_fork(after_in_child=_reset_all_after_fork)
