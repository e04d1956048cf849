"""The gateway's audit trail: one event per request, durable before the response leaves.

How an event travels:

1. :meth:`AuditLog.record` appends the event as one JSON line to this process's journal file with a
   single ``write()`` (``O_APPEND``), before the gateway sends the response. Once ``write()`` has
   returned the line is in the operating system's page cache and survives a SIGKILL of the process;
   with ``fsync = true`` it also survives a power loss, at the price of one ``fsync`` per request.
2. A background thread appends the events to the tamper-evident log in the store in batches (every
   ``flush_interval_ms`` or ``batch_size`` events), then records how far it got in a checkpoint file
   next to the journal (a byte offset). Normally ``record`` also hands the event over in memory, so
   the thread need not parse the line again; when it falls behind by more than ``4 * batch_size``
   events, or a write or the store fails, it reads the journal instead until it has caught up.
3. On start, :meth:`AuditLog.recover` ships what the journals of dead processes hold past their
   checkpoint. Replays are idempotent by event id (:meth:`Store.append_new_events`), so a crash
   between a store commit and its checkpoint never stores an event twice. A torn last line (a
   ``write()`` cut short by the crash) was never acknowledged, and is ignored.

Each journal is locked (``flock``) by the process that writes it; a journal whose lock can be taken
belongs to a dead process. A journal fully shipped is truncated once it exceeds ``rotate_bytes`` and
deleted on a clean stop. Memory stays bounded: the shipper reads at most ``batch_size`` lines at a
time; if the store is down the backlog waits on disk, up to ``max_journal_bytes``, after which
:meth:`AuditLog.record` raises :class:`AuditUnavailable` and the gateway fails closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
import re
import secrets
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from garrison.core.errors import GarrisonError, StorageError
from garrison.core.events import EVENT_TYPE_RE, Event, utc_now
from garrison.gateway.ids import ProcessIds
from garrison.gateway.logs import get_logger, mask_secrets
from garrison.gateway.types import Decision, Outcome, RequestFacts

if TYPE_CHECKING:
    from garrison.store import Store

#: Event type of a gateway request.
REQUEST_EVENT_TYPE = "gateway.request"
_JOURNAL_PREFIX = "journal-"
_JOURNAL_SUFFIX = ".jsonl"
_CHECKPOINT_SUFFIX = ".offset"
_READ_CHUNK = 1 << 20
_log = get_logger("garrison.gateway.audit")


class AuditConfig(BaseModel):
    """Where and how the gateway journals its audit events."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    journal_dir: Path = Path(".garrison/audit")
    """Folder of the per-process journal files (created if missing)."""
    flush_interval_ms: int = Field(default=50, ge=1, le=60_000)
    """Longest time an event waits in the journal before it is appended to the store."""
    batch_size: int = Field(default=500, ge=1, le=100_000)
    """Most events appended to the store in one transaction."""
    fsync: bool = False
    """``fsync`` the journal after every event: survives power loss, costs about a disk flush each."""
    include_bodies: bool = False
    """Keep request and response bodies (masked, cut at ``max_body_bytes``); digests are always kept."""
    max_body_bytes: int = Field(default=4096, ge=0, le=1 << 20)
    """Most bytes of each body kept when ``include_bodies`` is on."""
    rotate_bytes: int = Field(default=8 << 20, ge=1)
    """A fully shipped journal larger than this is truncated."""
    max_journal_bytes: int = Field(default=1 << 30, ge=1 << 16)
    """Unshipped journal bytes beyond which recording fails (the gateway then refuses requests)."""


class AuditUnavailable(StorageError):  # noqa: N818 - named for what the caller sees
    """The audit event could not be made durable; the request must not be answered as if it were."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditStats:
    """Counters of one :class:`AuditLog` since it started."""

    recorded: int
    """Events written to the journal."""
    shipped: int
    """Events appended to the store (recovered ones included)."""
    batches: int
    """Store transactions that appended events."""
    skipped_lines: int
    """Journal lines that could not be read back as events (torn or corrupt)."""
    pending_bytes: int
    """Journal bytes not yet in the store."""


# -- building the event ----------------------------------------------------------------------------


_ids = ProcessIds(prefix_bytes=10, counter_digits=12)


def new_event_id() -> str:
    """A fresh 32-character event id, unique across processes (forks included)."""
    return _ids.next()


def _body(body: bytes | None, config: AuditConfig | None) -> dict[str, Any] | None:
    if body is None:
        return None
    info: dict[str, Any] = {"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)}
    if config is not None and config.include_bodies:
        kept = body[: config.max_body_bytes]
        info["body"] = mask_secrets(kept.decode("utf-8", "replace"))
        info["truncated"] = len(body) > len(kept)
    return info


_OUTCOME_TEXT = {outcome: outcome.value for outcome in Outcome}  # a dict lookup beats Enum.value


def _decisions(decisions: Iterable[Decision]) -> list[dict[str, Any]]:
    finite, outcome_text = math.isfinite, _OUTCOME_TEXT
    return [
        {
            "step": d.step,
            "outcome": outcome_text[d.outcome],
            "reason": d.reason,
            "ms": round(d.ms, 3) if finite(d.ms) else None,
        }
        for d in decisions
    ]


def request_event(
    facts: RequestFacts,
    *,
    status: int,
    latency_ms: float,
    overhead_ms: float,
    request_body: bytes | None = None,
    response_body: bytes | None = None,
    config: AuditConfig | None = None,
    occurred_at: datetime | None = None,
) -> Event:
    """The ``gateway.request`` event of one request.

    ``actor`` is the principal's id (``anonymous`` before authentication); ``subject`` the route
    (or the path when no route matched). ``data`` holds method, path (secrets masked), status, model,
    action, each step's decision, latency and gateway overhead in ms, client IP, and SHA-256 and
    size of each body given; the bodies themselves only when ``config.include_bodies``, masked.
    """
    path = _masked_path(facts.path)
    data: dict[str, Any] = {
        "method": facts.method,
        "path": path,
        "status": status,
        "model": facts.model,
        "action": facts.action,
        "decisions": _decisions(facts.decisions),
        "latency_ms": _ms(latency_ms),
        "overhead_ms": _ms(overhead_ms),
        "client_ip": facts.client_ip,
    }
    request = _body(request_body, config)
    if request is not None:
        data["request"] = request
    response = _body(response_body, config)
    if response is not None:
        data["response"] = response
    principal = facts.principal
    return _trusted_event(
        actor=principal.id if principal is not None else "anonymous",
        subject=facts.route or path.split("?", 1)[0],
        data=data,
        occurred_at=occurred_at or utc_now(),
    )


def _ms(value: float) -> float | None:
    """Milliseconds rounded to the microsecond; ``None`` for a value JSON cannot hold."""
    return round(value, 3) if math.isfinite(value) else None


#: A path needs the full secret scan only if it has a query, credentials or a long segment.
_PATH_SUSPECT = re.compile(r"[?@:;=]|[^/]{12,}")


def _masked_path(path: str) -> str:
    return mask_secrets(path) if _PATH_SUSPECT.search(path) else path


def _build_event(
    kind: str, actor: str, subject: str, data: dict[str, Any], occurred_at: datetime, event_id: str
) -> Event:
    """An ``Event`` whose fields the caller has already checked, built without ``__post_init__``.

    ``Event.__post_init__`` walks the whole of ``data`` (tens of microseconds for a request event);
    both callers build or parse ``data`` from JSON values only, so the walk would find nothing.
    """
    event = object.__new__(Event)
    setattr_ = object.__setattr__
    setattr_(event, "type", kind)
    setattr_(event, "actor", actor)
    setattr_(event, "subject", subject)
    setattr_(event, "data", data)
    setattr_(event, "occurred_at", occurred_at)
    setattr_(event, "id", event_id)
    return event


def _trusted_event(*, actor: str, subject: str, data: dict[str, Any], occurred_at: datetime) -> Event:
    """A request event from values :func:`request_event` built: str, int, bool, None and finite floats."""
    if "\x00" in actor or "\x00" in subject:
        actor, subject = actor.replace("\x00", ""), subject.replace("\x00", "")
    return _build_event(REQUEST_EVENT_TYPE, actor, subject, data, occurred_at, _ids.next())


# -- the journal -----------------------------------------------------------------------------------


def _not_json(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _make_encoder() -> Callable[[Any], str]:
    """Compact ASCII JSON without NaN. CPython's C encoder is built once here: ``json.dumps`` builds
    a new one on every call, which is a third of its cost for an event."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
    encode = make(None, _not_json, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False)
    return lambda value: "".join(encode(value, 0))


_encode = _make_encoder()


#: Keys of the data :func:`request_event` builds, in order; ``request`` and ``response`` may follow.
_REQUEST_KEYS = ("method", "path", "status", "model", "action", "decisions", "latency_ms", "overhead_ms",
                 "client_ip")  # fmt: skip
_DECISION_KEYS = ("step", "outcome", "reason", "ms")
_DIGEST_KEYS = ("sha256", "bytes")
_COMPACT_TAG = "r1"


def _line(event: Event) -> bytes:
    """The event as one line of ASCII JSON, newline included.

    A request event of the usual shape is written as a JSON array (positions instead of keys,
    decisions as arrays), which halves the encoding cost; :func:`_parse` rebuilds the same data.
    Any other event is written as an object of its payload.
    """
    when = event.occurred_at.isoformat(timespec="microseconds")
    compact = _compact(event, when) if event.type == REQUEST_EVENT_TYPE else None
    if compact is None:
        payload = {"id": event.id, "type": event.type, "actor": event.actor, "subject": event.subject,
                   "occurred_at": when, "data": event.data}  # fmt: skip
        return (_encode(payload) + "\n").encode("ascii")
    return (_encode(compact) + "\n").encode("ascii")


def _compact(event: Event, when: str) -> list[Any] | None:
    data = event.data
    keys = tuple(data)
    if keys[:9] != _REQUEST_KEYS or type(data) is not dict:
        return None
    extra: dict[str, Any] = {}
    for key in keys[9:]:
        if key not in ("request", "response"):
            return None
        body = data[key]
        extra[key] = [body["sha256"], body["bytes"]] if tuple(body) == _DIGEST_KEYS else body
    decisions = data["decisions"]
    if type(decisions) is not list:
        return None
    rows = []
    for d in decisions:
        if type(d) is not dict or tuple(d) != _DECISION_KEYS:
            return None
        rows.append([d["step"], d["outcome"], d["reason"], d["ms"]])
    return [
        _COMPACT_TAG, event.id, when, event.actor, event.subject, data["method"], data["path"],
        data["status"], data["model"], data["action"], rows, data["latency_ms"], data["overhead_ms"],
        data["client_ip"], extra.get("request"), extra.get("response"),
    ]  # fmt: skip


def _expand(raw: list[Any]) -> tuple[str, str, str, str, dict[str, Any]]:
    """``(id, time, actor, subject, data)`` of a compact request line."""
    (_, event_id, when, actor, subject, method, path, status, model, action, rows, latency, overhead,
     client_ip, request, response) = raw  # fmt: skip
    data: dict[str, Any] = {
        "method": method,
        "path": path,
        "status": status,
        "model": model,
        "action": action,
        "decisions": [{"step": r[0], "outcome": r[1], "reason": r[2], "ms": r[3]} for r in rows],
        "latency_ms": latency,
        "overhead_ms": overhead,
        "client_ip": client_ip,
    }
    for key, body in (("request", request), ("response", response)):
        if isinstance(body, list):
            data[key] = {"sha256": body[0], "bytes": body[1]}
        elif body is not None:
            data[key] = body
    return event_id, when, actor, subject, data


def _no_constant(name: str) -> Any:
    raise ValueError(f"journal line holds {name}, which an event cannot")


def _parse(line: bytes) -> Event:
    """The event a journal line holds. ``json.loads`` (with NaN and infinities refused) can only
    produce what ``Event`` accepts as data, so the event is built without walking the data again."""
    raw = json.loads(line, parse_constant=_no_constant)
    fields: tuple[Any, ...]
    if isinstance(raw, list) and len(raw) == 16 and raw[0] == _COMPACT_TAG:
        fields = (REQUEST_EVENT_TYPE, *_expand(raw))
    elif isinstance(raw, dict):
        fields = tuple(raw.get(k) for k in ("type", "id", "occurred_at", "actor", "subject", "data"))
    else:
        raise ValueError("journal line is not an event")
    kind, event_id, when, actor, subject, data = fields
    if not (
        isinstance(kind, str) and isinstance(actor, str) and isinstance(subject, str)
        and isinstance(data, dict) and isinstance(when, str) and isinstance(event_id, str) and event_id
    ):  # fmt: skip
        raise ValueError("journal line lacks an event field")
    if not EVENT_TYPE_RE.match(kind) or "\x00" in actor or "\x00" in subject:
        raise ValueError("journal line holds an invalid event type, actor or subject")
    moment = datetime.fromisoformat(when)
    if moment.tzinfo is None:
        raise ValueError("journal event time has no time zone")
    return _build_event(kind, actor, subject, data, moment.astimezone(UTC), event_id)


def _read_checkpoint(path: Path) -> int:
    try:
        text = path.read_bytes().decode("ascii").strip()
        return int(text) if text else 0
    except (OSError, ValueError, UnicodeDecodeError):
        return 0  # no checkpoint or a torn one: replay from the start; ids make that harmless


class _Journal:
    """One journal file, its checkpoint and the shipper's position in it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd
        self.checkpoint_path = path.with_suffix(_CHECKPOINT_SUFFIX)
        self.offset = 0
        self._checkpoint_fd: int | None = None

    def save_offset(self, offset: int) -> None:
        if self._checkpoint_fd is None:
            self._checkpoint_fd = os.open(self.checkpoint_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        # Fixed width, written in place with one pwrite: a reader sees the old or the new number.
        os.pwrite(self._checkpoint_fd, b"%020d\n" % offset, 0)
        self.offset = offset

    def close(self, *, delete: bool) -> None:
        if delete:
            for path in (self.path, self.checkpoint_path):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        if self._checkpoint_fd is not None:
            os.close(self._checkpoint_fd)
            self._checkpoint_fd = None
        os.close(self.fd)  # also releases the flock


class _Shipper:
    """Reads complete journal lines past the checkpoint and appends them to the store in batches."""

    def __init__(self, store: Store, batch_size: int) -> None:
        self.store = store
        self.batch_size = batch_size
        self.shipped = 0
        self.batches = 0
        self.skipped = 0

    def ship(self, journal: _Journal, end: int) -> tuple[int, int]:
        """Append up to ``batch_size`` events found between the journal's offset and ``end``."""
        size = min(end - journal.offset, _READ_CHUNK)
        chunk = os.pread(journal.fd, size, journal.offset)
        events: list[Event] = []
        consumed = 0
        start = 0
        limit = self.batch_size
        while len(events) < limit:
            newline = chunk.find(b"\n", start)
            if newline < 0:
                break
            line = chunk[start:newline]
            start = newline + 1
            consumed = start
            if not line.strip():
                continue
            try:
                events.append(_parse(line))
            except (ValueError, TypeError, LookupError, GarrisonError) as exc:
                self.skipped += 1
                _log.warning("audit.journal.unreadable_line", journal=str(journal.path), error=str(exc))
        if consumed == 0 and size == _READ_CHUNK:
            consumed = size  # a "line" longer than a chunk is not one record() wrote
            self.skipped += 1
        appended = len(self.store.append_new_events(events)) if events else 0
        if appended:
            self.batches += 1
            self.shipped += appended
        if consumed:
            journal.save_offset(journal.offset + consumed)
        return appended, consumed


class AuditLog:
    """Journals each request's event durably and ships the journal to the store in batches.

    Call :meth:`open` (or ``await start()``, which also recovers and starts shipping), then
    :meth:`record` once per request before responding, and ``await stop()`` at shutdown. Open it in
    each worker process: a process forked from one that had it open must open it again (until then
    :meth:`record` raises), so two processes never share one journal.
    """

    def __init__(self, config: AuditConfig, store: Store, *, ship: bool = True) -> None:
        """Journal under ``config.journal_dir`` and ship to ``store``.

        With ``ship=False`` this process only writes its journal; another process runs
        :func:`follow_journals` (``garrison audit ship``, which ``garrison gateway serve`` starts),
        so no shipping thread competes with request handling for the interpreter lock. The journal
        is then rotated to a fresh file at ``rotate_bytes``; the follower ships and deletes the old one.
        """
        self._ship = ship
        self._config = config
        self._store = store
        self._journal: _Journal | None = None
        self._write_lock = threading.Lock()
        self._ship_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._written = 0
        self._recorded = 0
        self._unshipped_lines = 0
        self._pending: deque[tuple[Event, int]] = deque()
        self._pending_cap = 4 * config.batch_size
        self._from_file = False
        _open_logs.add(self)
        self._shipper = _Shipper(store, config.batch_size)
        self._needs_newline = False

    @property
    def config(self) -> AuditConfig:
        """The configuration it was built with."""
        return self._config

    @property
    def journal_path(self) -> Path | None:
        """This process's journal file, once open."""
        return self._journal.path if self._journal else None

    def stats(self) -> AuditStats:
        """Counters since this log was created."""
        pending = self._written - self._journal.offset if self._journal else 0
        return AuditStats(
            recorded=self._recorded,
            shipped=self._shipper.shipped,
            batches=self._shipper.batches,
            skipped_lines=self._shipper.skipped,
            pending_bytes=pending,
        )

    # -- life cycle --------------------------------------------------------------------------------

    def open(self) -> None:
        """Create and lock this process's journal file. Idempotent."""
        if self._journal is not None:
            return
        self._journal = _new_journal(self._config.journal_dir.expanduser())
        self._written = 0

    async def start(self) -> None:
        """Open the journal, recover what dead processes left, and start the shipper thread."""
        self.open()
        if not self._ship:
            return
        await asyncio.to_thread(self.recover)
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="garrison-audit-shipper", daemon=True)
            self._thread.start()

    async def stop(self) -> None:
        """Stop the shipper, append every recorded event to the store, and close the journal.

        The journal is deleted when everything in it reached the store; otherwise it stays for the
        next start's recovery (and the store error is raised).
        """
        self._stopping.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join)
        await asyncio.to_thread(self.close)

    def _forget_after_fork(self) -> None:
        """In a forked child: the journal, its lock and the shipper thread are the parent's."""
        journal, self._journal = self._journal, None
        self._thread = None
        self._pending = deque()
        if journal is not None:
            for fd in (journal.fd, journal._checkpoint_fd):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)  # the parent keeps its own descriptors and its lock

    def close(self) -> None:
        """Ship everything and close the journal (the synchronous half of :meth:`stop`)."""
        journal = self._journal
        if journal is None:
            return
        if not self._ship:  # the follower ships it, and deletes it once this process let go of it
            with self._write_lock:
                journal.close(delete=False)
                self._journal = None
            return
        try:
            self.flush()
        finally:
            with self._write_lock:
                done = journal.offset >= self._written and not self._needs_newline
                journal.close(delete=done)
                self._journal = None

    # -- the hot path ------------------------------------------------------------------------------

    def record(self, event: Event) -> None:
        """Append ``event`` to the journal; on return it survives a crash of this process.

        Raises :class:`AuditUnavailable` when it cannot be written (disk full, journal over
        ``max_journal_bytes`` because the store is unreachable, journal not open).
        """
        line = _line(event)
        journal = self._journal
        if journal is None:
            raise AuditUnavailable("the audit journal is not open", hint="call AuditLog.open() or start()")
        with self._write_lock:
            if not self._ship and self._written >= self._config.rotate_bytes:
                journal = self._rotate(journal)  # raises, before writing, when the follower is far behind
            if self._written - journal.offset > self._config.max_journal_bytes:
                raise AuditUnavailable(
                    f"the audit journal {journal.path} holds over {self._config.max_journal_bytes} bytes "
                    "the store has not taken",
                    hint="check that the store is reachable; requests are refused until it catches up",
                )
            if self._needs_newline:
                line = b"\n" + line  # end the line a failed write left half-written
            try:
                self._write_all(journal.fd, line)
            except AuditUnavailable:
                self._from_file = True
                self._pending.clear()
                raise
            self._written += len(line)
            self._recorded += 1
            if not self._ship:
                return
            self._unshipped_lines += 1
            if not self._from_file:
                if len(self._pending) < self._pending_cap:
                    self._pending.append((event, self._written))
                else:  # the store is behind: stop holding events, the journal has them
                    self._from_file = True
                    self._pending.clear()
        if self._unshipped_lines >= self._config.batch_size:
            self._wake.set()

    def _rotate(self, journal: _Journal) -> _Journal:
        """Continue in a fresh journal (caller holds the write lock); the follower ships the old one.

        Refused (fail closed) when the folder already holds more than ``max_journal_bytes`` the
        follower has not taken: it is not running or the store is down.
        """
        folder = journal.path.parent
        backlog = sum(
            p.stat().st_size - _read_checkpoint(p.with_suffix(_CHECKPOINT_SUFFIX))
            for p in folder.glob(f"{_JOURNAL_PREFIX}*{_JOURNAL_SUFFIX}")
            if p.exists()
        )
        if backlog > self._config.max_journal_bytes:
            raise AuditUnavailable(
                f"the audit journals in {folder} hold over {self._config.max_journal_bytes} bytes the store "
                "has not taken",
                hint="check that 'garrison audit ship' is running and the store is reachable",
            )
        fresh = self._journal = _new_journal(folder)
        self._written = 0
        journal.close(delete=False)
        return fresh

    def _write_all(self, fd: int, data: bytes) -> None:
        written = 0
        try:
            written = os.write(fd, data)
            while written < len(data):  # a short write: disk nearly full, or a signal
                written += os.write(fd, data[written:])
            if self._config.fsync:
                os.fdatasync(fd)
        except OSError as exc:
            if written:  # part (or all) of the line is in the journal; account for it
                self._needs_newline = written < len(data)
                self._written += written
            raise AuditUnavailable(
                f"cannot write the audit journal: {exc.strerror or exc}",
                hint="free disk space or fix the journal folder's permissions",
            ) from None
        self._needs_newline = False

    # -- shipping ----------------------------------------------------------------------------------

    def flush(self) -> int:
        """Append everything journalled so far to the store; return how many events were appended."""
        journal = self._journal
        if journal is None:
            return 0
        total = 0
        with self._ship_lock:
            while True:
                with self._write_lock:
                    end = self._written
                    if journal.offset >= end and not self._needs_newline:
                        self._from_file = False  # caught up: hand over in memory again
                        self._pending.clear()
                        break
                    from_file = self._from_file or not self._pending
                    self._from_file = from_file
                if from_file:
                    appended, consumed = self._shipper.ship(journal, end)
                else:
                    appended, consumed = self._ship_pending(journal)
                total += appended
                self._unshipped_lines = max(0, self._unshipped_lines - appended)
                if consumed == 0:
                    break  # only a torn line left; it ends when the next record() writes
            self._maybe_truncate(journal)
        return total

    def _ship_pending(self, journal: _Journal) -> tuple[int, int]:
        """Ship the events :meth:`record` handed over in memory, saving the parse of their lines.

        The queue holds exactly the lines after the checkpoint, in order, each with the journal
        offset where it ends; anything that breaks that (a failed write, an overflow, a store error)
        switches shipping back to reading the journal.
        """
        batch: list[Event] = []
        last_end = journal.offset
        while len(batch) < self._config.batch_size:
            try:
                event, ends_at = self._pending.popleft()
            except IndexError:
                break
            batch.append(event)
            last_end = ends_at
        if not batch:
            return 0, 0
        try:
            appended = len(self._store.append_new_events(batch))
        except BaseException:
            with self._write_lock:
                self._from_file = True
                self._pending.clear()
            raise
        journal.save_offset(last_end)
        if appended:
            self._shipper.batches += 1
            self._shipper.shipped += appended
        return appended, len(batch)

    def _maybe_truncate(self, journal: _Journal) -> None:
        if journal.offset < self._config.rotate_bytes:
            return
        with self._write_lock:
            if journal.offset != self._written or self._needs_newline:
                return
            # Checkpoint first: a crash between the two replays the old content, which ids make harmless.
            journal.save_offset(0)
            os.ftruncate(journal.fd, 0)
            self._written = 0
            self._pending.clear()

    def _run(self) -> None:
        interval = self._config.flush_interval_ms / 1000
        backoff = interval
        while not self._stopping.is_set():
            self._wake.wait(backoff)
            self._wake.clear()
            try:
                self.flush()
                backoff = interval
            except GarrisonError as exc:
                backoff = min(max(backoff * 2, interval), 5.0)
                _log.error("audit.ship.failed", error=exc.message, retry_in_s=round(backoff, 3))
            except OSError as exc:
                backoff = min(max(backoff * 2, interval), 5.0)
                _log.error("audit.ship.failed", error=str(exc), retry_in_s=round(backoff, 3))

    # -- recovery ----------------------------------------------------------------------------------

    def recover(self) -> int:
        """Append to the store what the journals of dead processes hold; return the events appended.

        A journal still locked by a live process is left alone. A recovered journal is deleted once
        every complete line of it is in the store. Safe to run again and from several processes.
        """
        recovered = recover_journals(
            self._config.journal_dir, self._store, batch_size=self._config.batch_size
        )
        self._shipper.shipped += recovered
        return recovered


def recover_journals(journal_dir: Path, store: Store, *, batch_size: int = 500) -> int:
    """What :meth:`AuditLog.recover` does, for tools without a gateway (``garrison audit recover``)."""
    folder = journal_dir.expanduser()
    if not folder.is_dir():
        return 0
    total = 0
    for path in sorted(folder.glob(f"{_JOURNAL_PREFIX}*{_JOURNAL_SUFFIX}")):
        total += _recover_one(path, store, batch_size)
    return total


def _recover_one(path: Path, store: Store, batch_size: int) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return 0  # a live process owns it
        raise
    try:
        if not path.exists() or os.stat(path).st_ino != os.fstat(fd).st_ino:
            os.close(fd)
            return 0  # recovered and deleted by another process meanwhile
    except FileNotFoundError:
        os.close(fd)
        return 0
    journal = _Journal(path, fd)
    size = os.fstat(fd).st_size
    start = _read_checkpoint(journal.checkpoint_path)
    journal.offset = start if start <= size else 0
    shipper = _Shipper(store, batch_size)
    try:
        while journal.offset < size:
            _, consumed = shipper.ship(journal, size)
            if consumed == 0:
                break  # a torn last line: its record() never returned
        torn = size - journal.offset
        if torn:
            _log.warning("audit.journal.torn_line", journal=str(path), bytes=torn)
    except BaseException:
        journal.close(delete=False)
        raise
    journal.close(delete=True)
    if shipper.shipped:
        _log.info("audit.journal.recovered", journal=str(path), events=shipper.shipped)
    return shipper.shipped


def _new_journal(folder: Path) -> _Journal:
    """A new journal, created locked under a temporary name and then renamed, so a follower never
    sees a journal file that is not yet locked by its writer (and mistakes it for a dead one)."""
    # creation time first: followers ship journals in name order, so rotated journals keep their order
    name = f"{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".new-{name}{_JOURNAL_SUFFIX}"
        fd = os.open(temporary, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path = folder / f"{_JOURNAL_PREFIX}{name}{_JOURNAL_SUFFIX}"
        journal = _Journal(path, fd)
        journal.save_offset(0)
        os.rename(temporary, path)
    except OSError as exc:
        raise AuditUnavailable(
            f"cannot create the audit journal in {folder}: {exc.strerror or exc}",
            hint="set audit.journal_dir to a writable folder",
        ) from None
    return journal


def follow_journals(
    journal_dir: Path,
    store: Store,
    *,
    interval_s: float = 0.2,
    batch_size: int = 2000,
    stop: threading.Event | None = None,
) -> int:
    """Ship every journal in ``journal_dir`` to the store until ``stop`` is set; return events shipped.

    Live journals (locked by their writer) are shipped up to their last complete line, from their
    checkpoint; journals whose writer let go (rotated or exited, cleanly or not) are shipped to the
    end and deleted. One follower per folder: two would only repeat each other's work (replays are
    idempotent by event id). A final pass runs after ``stop`` is set.
    """
    stop = stop or threading.Event()
    readers: dict[Path, _Journal] = {}
    total = 0
    backoff = interval_s
    while True:
        stopping = stop.is_set()
        try:
            total += _follow_once(journal_dir.expanduser(), store, readers, batch_size)
            backoff = interval_s
        except (GarrisonError, OSError) as exc:
            backoff = min(max(backoff * 2, interval_s), 5.0)
            _log.error(
                "audit.ship.failed", error=getattr(exc, "message", str(exc)), retry_in_s=round(backoff, 3)
            )
        if stopping:
            break
        stop.wait(backoff)
    for reader in readers.values():
        reader.close(delete=False)
    return total


def _follow_once(folder: Path, store: Store, readers: dict[Path, _Journal], batch_size: int) -> int:
    shipped = 0
    present = sorted(folder.glob(f"{_JOURNAL_PREFIX}*{_JOURNAL_SUFFIX}")) if folder.is_dir() else []
    for path in present:
        shipped += _recover_one(path, store, batch_size)  # a writer that let go: to the end, then delete
        if not path.exists():
            stale = readers.pop(path, None)
            if stale is not None:
                stale.close(delete=False)
            continue
        reader = readers.get(path)
        if reader is None:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            reader = readers[path] = _Journal(path, fd)
            reader.offset = _read_checkpoint(reader.checkpoint_path)
        shipper = _Shipper(store, batch_size)
        end = os.fstat(reader.fd).st_size
        while reader.offset < end:
            _, consumed = shipper.ship(reader, end)
            if consumed == 0:
                break  # the writer is in the middle of a line
        shipped += shipper.shipped
    for path in [p for p in readers if p not in present]:
        readers.pop(path).close(delete=False)
    return shipped


def journal_lines(events: Iterable[Event]) -> bytes:
    """Journal lines for ``events``, exactly as :meth:`AuditLog.record` writes them (for tools and tests)."""
    return b"".join(_line(e) for e in events)


_open_logs: weakref.WeakSet[AuditLog] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for log in list(_open_logs):
        log._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
