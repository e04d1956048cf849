"""Run one fuzz input through a parser and judge the outcome: crash, hang, memory blow-up, or fine.

For each target the input goes twice through Garrison:

* **direct**: the parser's own entry points (``analyze_stream``/``analyze_pickle``/``pickle_findings``;
  ``read_directory``/``read_local_header``/``read_member``/``torch_zip_view``/``npz_members``/the
  engine's ``open_archive``; ``parse_gguf``). Anything raised that is not a
  :class:`~garrison.core.errors.GarrisonError` (or :class:`~garrison.supplychain.gguf.GgufError`,
  which ``parse_gguf`` documents and its scanner turns into a finding) is a crash. Pickle analyses
  must also keep their offsets inside the buffer and agree between ``bytes`` and ``memoryview``
  input (two code paths for text arguments); a broken promise is an *invariant* failure.
* **system**: the file is scanned by ``scan_path`` with every built-in detector. The engine turns
  unexpected exceptions into error records that ask the user to "report this as a Garrison bug";
  such a record, or any exception that escapes ``scan_path``, is a crash.

The whole run of one input is under a wall-clock limit (``SIGALRM``; past it the input is a
hang), and its peak resident memory is measured (:class:`MemoryWatch`; growth past the limit, or
a ``MemoryError``, is a memory failure). POSIX only; the alarm needs the main thread.
"""

from __future__ import annotations

import collections
import contextlib
import re
import resource
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from garrison.core.assets import Asset, AssetKind
from garrison.core.config import Settings
from garrison.core.errors import GarrisonError
from garrison.detectors import default_registry
from garrison.engine.archives import Budget, Extracted, open_archive
from garrison.engine.runner import scan_path
from garrison.formats.zipreader import (
    BytesSource,
    read_directory,
    read_local_header,
    read_member,
)
from garrison.supplychain.containers.npjob import npz_members
from garrison.supplychain.containers.torchzip import torch_zip_view
from garrison.supplychain.gguf import GgufError, parse_gguf
from garrison.supplychain.pickle import analyze_pickle, analyze_stream, pickle_findings

TIMEOUT_S = 10.0
"""Wall-clock limit for one input (direct and system checks together), plus :data:`TIMEOUT_PER_MIB`."""

TIMEOUT_PER_MIB = 20.0
"""Extra seconds allowed per MiB of input. Parsing is linear (the pickle machine runs about a
million opcodes a second, and an input is parsed four times: three direct analyses and a scan),
so a large input is slow, not hung; a hang is time that grows faster than the input."""

MEMORY_LIMIT = 256 * 2**20
"""Growth of the process's peak resident memory that counts as a blow-up, for one input."""

_EXTENSIONS = {"pickle": "pkl", "zip": "zip", "gguf": "gguf"}
_ASSET = Asset(kind=AssetKind.FILE, locator="fuzz.pkl", format="pickle")
_BUG = re.compile(r"\((\w+(?:\.\w+)*): ")


class Hang(BaseException):
    """The input ran past the wall-clock limit (a BaseException, so no ``except Exception`` eats it)."""


class _CrashError(Exception):
    def __init__(self, check: str, exc: BaseException) -> None:
        super().__init__(check)
        self.check = check
        self.exc = exc


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """One input that broke a promise."""

    target: str
    kind: str
    """``crash``, ``hang``, ``memory`` or ``invariant``."""
    signature: str
    """What makes two failures the same bug: check, exception type and where it was raised."""
    detail: str
    """Traceback or message."""
    data: bytes
    seconds: float

    def describe(self) -> str:
        """A paragraph for a test failure or a report."""
        return f"{self.kind} in {self.target} ({self.signature}), {len(self.data)} bytes:\n{self.detail}"


@dataclass
class Stats:
    """What a harness has seen so far."""

    executed: int = 0
    busy_seconds: float = 0.0
    max_seconds: float = 0.0
    slowest: bytes = b""
    """The input that took longest."""
    largest_input: int = 0
    max_rss_growth: int = 0
    """Largest growth of resident memory during one input, over the memory at its start."""
    max_rss: int = 0
    """Highest resident memory seen during an input."""
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    """How direct checks ended: ``ok`` or the name of the GarrisonError (or GgufError) raised."""
    findings: collections.Counter[str] = field(default_factory=collections.Counter)
    """Rule ids the system scans raised (resource-limit findings among them)."""
    failures: int = 0


def peak_rss() -> int:
    """The process's peak resident set size in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class MemoryWatch:
    """Peak resident memory of one input.

    On Linux the kernel's high-water mark is reset before each input (``/proc/self/clear_refs``),
    so each input's own peak is measured even after an earlier peak (torch imported, pools built);
    elsewhere the growth of ``ru_maxrss`` is used, which only sees new process-wide peaks.
    """

    def __init__(self) -> None:
        self.proc = Path("/proc/self/status").exists() and self._reset()

    @staticmethod
    def _reset() -> bool:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            return False
        return True

    @staticmethod
    def _status(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def start(self) -> int:
        """Reset the high-water mark; the resident memory now."""
        if self.proc:
            self._reset()
            return self._status("VmRSS")
        return peak_rss()

    def peak(self) -> int:
        """The high-water mark since :meth:`start`."""
        return self._status("VmHWM") if self.proc else peak_rss()


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "garrison" in f.filename and "/tests/" not in f.filename]
    frame = (ours or frames or [None])[-1]
    if frame is None:
        return "?"
    return f"{Path(frame.filename).name}:{frame.lineno}"


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise Hang


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` in the main thread after ``seconds``."""
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Harness:
    """Runs inputs for one target in a scratch folder and keeps :class:`Stats`."""

    def __init__(
        self,
        target: str,
        workdir: Path,
        *,
        timeout: float = TIMEOUT_S,
        timeout_per_mib: float = TIMEOUT_PER_MIB,
        memory_limit: int = MEMORY_LIMIT,
        system: bool = True,
    ) -> None:
        if target not in _EXTENSIONS:
            raise ValueError(f"unknown fuzz target {target!r}")
        self.target = target
        self.workdir = workdir
        self.timeout = timeout
        self.timeout_per_mib = timeout_per_mib
        self.memory_limit = memory_limit
        self.system = system
        self.stats = Stats()
        self.memory = MemoryWatch()
        self.registry = default_registry(plugins=False)
        self.settings = Settings(store=False, progress=False, jobs=1)
        self._direct: Callable[[bytes], None] = getattr(self, f"_{target}")
        workdir.mkdir(parents=True, exist_ok=True)

    # -- one input -----------------------------------------------------------------------------
    def run(self, data: bytes, *, record: bool = True) -> Failure | None:
        """Run ``data`` through the direct and the system checks; the failure, if there is one.

        With ``record`` false (a minimizer's probes) the statistics are left alone.
        """
        stats = self.stats if record else Stats()
        saved, self.stats = self.stats, stats
        try:
            return self._run(data, stats)
        finally:
            self.stats = saved

    def _run(self, data: bytes, stats: Stats) -> Failure | None:
        stats.executed += 1
        stats.largest_input = max(stats.largest_input, len(data))
        rss_before = self.memory.start()
        start = time.perf_counter()
        kind, signature, detail = "", "", ""
        limit = self.timeout + self.timeout_per_mib * len(data) / 2**20
        try:
            with time_limit(limit):
                self._direct(data)
                if self.system:
                    self._system(data)
        except Hang:
            kind, signature, detail = "hang", f"{self.target}:hang", f"over {limit:.1f} s"
        except _CrashError as crash:
            exc = crash.exc
            memory = isinstance(exc, MemoryError)
            kind = "memory" if memory else ("invariant" if isinstance(exc, AssertionError) else "crash")
            if isinstance(exc, _SystemBugError):
                signature, detail = f"{crash.check}:{exc.name}", exc.args[0]
            else:
                signature = f"{crash.check}:{type(exc).__name__}@{_where(exc)}"
                detail = "".join(traceback.format_exception(exc))
        seconds = time.perf_counter() - start
        peak = self.memory.peak()
        growth = max(peak - rss_before, 0)
        stats.busy_seconds += seconds
        stats.max_rss_growth = max(stats.max_rss_growth, growth)
        stats.max_rss = max(stats.max_rss, peak)
        if seconds > stats.max_seconds:
            stats.max_seconds, stats.slowest = seconds, data
        if not kind and growth > self.memory_limit:
            kind, signature = "memory", f"{self.target}:memory"
            detail = f"resident memory grew by {growth / 2**20:.0f} MiB during the input"
        if not kind:
            return None
        stats.failures += 1
        return Failure(
            target=self.target, kind=kind, signature=signature, detail=detail, data=data, seconds=seconds
        )

    def _call(
        self, check: str, fn: Callable[..., object], *args: object, allowed: tuple[type, ...] = ()
    ) -> object:
        try:
            result = fn(*args)
        except (GarrisonError, *allowed) as exc:
            self.stats.outcomes[f"{check}:{type(exc).__name__}"] += 1
            return None
        except Hang:
            raise
        except BaseException as exc:  # noqa: BLE001 - every other exception is what we hunt
            raise _CrashError(check, exc) from None
        self.stats.outcomes[f"{check}:ok"] += 1
        return result

    # -- direct checks ---------------------------------------------------------------------------
    def _pickle(self, data: bytes) -> None:
        def stream() -> None:
            analyses = analyze_stream(data)
            for found in analyses:
                assert 0 <= found.start <= found.end <= len(data), (found.start, found.end, len(data))
            list(pickle_findings(analyses, asset=_ASSET, detector="fuzz", expected_pickles=1))

        def views_agree() -> None:  # bytes search lines with find(); memoryviews scan in chunks
            assert analyze_pickle(data) == analyze_pickle(memoryview(bytearray(data))), (
                "bytes/memoryview differ"
            )

        self._call("analyze_stream", stream)
        self._call("analyze_pickle", views_agree)

    def _zip(self, data: bytes) -> None:
        src = BytesSource(data)
        directory = self._call("read_directory", read_directory, src)
        if directory is not None:
            for entry in directory.entries[:64]:  # type: ignore[attr-defined]
                for base in {0, directory.prefix}:  # type: ignore[attr-defined]
                    header = self._call(
                        "read_local_header", lambda e=entry, b=base: read_local_header(src, e, base=b)
                    )
                    if header is not None:
                        self._call(
                            "read_member", lambda e=entry, h=header: read_member(src, e, h, max_bytes=8 << 20)
                        )
        self._call("torch_zip_view", torch_zip_view, src)
        self._call("npz_members", lambda: list(npz_members(src)))
        path = self.workdir / "direct.zip"
        path.write_bytes(data)
        self._call("open_archive", self._open_archive, path, len(data))

    def _open_archive(self, path: Path, size: int) -> None:
        level = self.workdir / "extract"
        level.mkdir(exist_ok=True)
        try:
            for item in open_archive(path, "zip", path.name, size, level, Budget()):
                if isinstance(item, Extracted):
                    item.path.unlink(missing_ok=True)
        finally:
            for leftover in level.iterdir():
                leftover.unlink()

    def _gguf(self, data: bytes) -> None:
        self._call("parse_gguf", parse_gguf, data, allowed=(GgufError,))

    # -- system check ----------------------------------------------------------------------------
    def _system(self, data: bytes) -> None:
        path = self.workdir / f"input.{_EXTENSIONS[self.target]}"
        path.write_bytes(data)
        report = self._call(
            "scan_path", lambda: scan_path(path, settings=self.settings, registry=self.registry)
        )
        if report is None:
            return
        for finding in report.findings:  # type: ignore[attr-defined]
            self.stats.findings[finding.rule.id] += 1
        for error in report.errors:  # type: ignore[attr-defined]
            if "Garrison bug" in error.message:
                match = _BUG.search(error.message)
                name = match.group(1) if match else "?"
                raise _CrashError(f"scan_path[{error.detector}]", _SystemBugError(name, error.message))


class _SystemBugError(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name

    def __str__(self) -> str:
        return f"{self.name}: {self.args[0]}"
