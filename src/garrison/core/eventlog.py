"""The tamper-evident chain over events, independent of where the events are stored.

Each record's hash is ``SHA-256(prev_hash || "\\n" || canonical(event))``; the first record's
``prev_hash`` is 64 zeros. Positions (``seq``) are not hashed: order is carried by the links, so a
reordering shows up as a link that points forward. A separate head (last ``seq`` and hash),
updated with every append, catches events removed from or added after the end.

:func:`verify_chain` walks the records in ``seq`` order and names the first event that was
modified, deleted, inserted or reordered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from garrison.core.events import Event, canonical_event

GENESIS_HASH = "0" * 64


def chain_hash(prev_hash: str, event: Event) -> str:
    """The hash that links ``event`` to the record before it."""
    return _hash(prev_hash, canonical_event(event)[2])


def _hash(prev_hash: str, payload: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + payload).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class LogRecord:
    """An event at a position in the log, with its link."""

    seq: int
    """Position in the log, from 1."""
    event: Event
    """The event."""
    prev_hash: str
    """Hash of the record before it (``GENESIS_HASH`` for the first)."""
    hash: str
    """This record's hash."""
    occurred: str = field(default="", compare=False, repr=False)
    """The event's timestamp as the chain hashed it (set by :func:`link`; empty otherwise)."""
    data_json: str = field(default="", compare=False, repr=False)
    """The event's data as the chain hashed it (set by :func:`link`; empty otherwise)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainHead:
    """The last position and hash the log recorded when it last appended."""

    seq: int
    hash: str


def link(events: Iterable[Event], *, after: ChainHead | None = None) -> list[LogRecord]:
    """Chain ``events`` after ``after`` (or from the start)."""
    prev = after.hash if after else GENESIS_HASH
    seq = after.seq if after else 0
    records = []
    for event in events:
        seq += 1
        stamp, data, payload = canonical_event(event)
        digest = _hash(prev, payload)
        records.append(
            LogRecord(seq=seq, event=event, prev_hash=prev, hash=digest, occurred=stamp, data_json=data)
        )
        prev = digest
    return records


class Tampering(StrEnum):
    """What verification concluded happened to the log."""

    MODIFIED = "modified"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainProblem:
    """One place where the log does not match its chain."""

    kind: Tampering
    """What happened."""
    seq: int
    """Position of the event it concerns (for a deletion: the first missing position)."""
    event_id: str | None
    """Id of the event it concerns, where one exists."""
    detail: str
    """One sentence for a person."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainVerdict:
    """Result of :func:`verify_chain`."""

    checked: int
    """How many records were read."""
    problems: tuple[ChainProblem, ...]
    """Every inconsistency, in log order; the first is the one to investigate."""

    @property
    def intact(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    @property
    def first(self) -> ChainProblem | None:
        """The first problem, or ``None``."""
        return self.problems[0] if self.problems else None


def verify_chain(records: Sequence[LogRecord], head: ChainHead | None) -> ChainVerdict:
    """Check every record's hash, every link and the head; see the module docstring."""
    problems: list[ChainProblem] = []
    index_of = {r.hash: i for i, r in enumerate(records)}
    self_ok = [chain_hash(r.prev_hash, r.event) == r.hash for r in records]
    first_with: dict[str, int] = {}
    replayed: set[int] = set()
    for i, record in enumerate(records):
        earlier = first_with.setdefault(record.hash, i)
        if earlier != i and self_ok[i]:
            # A second copy of a record already in the log: a replay, not a change to its neighbour.
            replayed.add(i)
            problems.append(
                ChainProblem(
                    kind=Tampering.INSERTED,
                    seq=record.seq,
                    event_id=record.event.id,
                    detail=f"event {record.seq} ({record.event.type}) repeats event {records[earlier].seq}",
                )
            )
            continue
        if (
            i
            and (i - 1) in replayed
            and record.prev_hash == (records[i - 2].hash if i >= 2 else GENESIS_HASH)
        ):
            continue  # the link skips the replayed copy, which is already reported
        if not self_ok[i]:
            problems.append(
                ChainProblem(
                    kind=Tampering.MODIFIED,
                    seq=record.seq,
                    event_id=record.event.id,
                    detail=f"event {record.seq} ({record.event.type}) does not match its recorded hash",
                )
            )
        expected_prev = records[i - 1].hash if i else GENESIS_HASH
        expected_seq = records[i - 1].seq + 1 if i else 1
        if record.prev_hash == expected_prev:
            if record.seq != expected_seq:
                problems.append(
                    ChainProblem(
                        kind=Tampering.MODIFIED,
                        seq=record.seq,
                        event_id=record.event.id,
                        detail=f"event at position {record.seq} was renumbered from {expected_seq}",
                    )
                )
            continue
        if i and not self_ok[i - 1]:
            continue  # the predecessor's own mismatch already explains the broken link
        problems.append(_explain_break(records, i, index_of, expected_seq))
    problems.extend(_check_head(records, head, index_of))
    return ChainVerdict(checked=len(records), problems=tuple(problems))


def _explain_break(
    records: Sequence[LogRecord], i: int, index_of: dict[str, int], expected_seq: int
) -> ChainProblem:
    record = records[i]
    target = index_of.get(record.prev_hash)
    if target is not None and target > i:
        later = records[target]
        return ChainProblem(
            kind=Tampering.REORDERED,
            seq=record.seq,
            event_id=record.event.id,
            detail=(
                f"event {record.seq} ({record.event.type}) was recorded after event "
                f"{later.seq} ({later.event.type}) but now comes before it"
            ),
        )
    before_prev = records[i - 2].hash if i >= 2 else GENESIS_HASH
    if i >= 1 and record.prev_hash == before_prev:
        intruder = records[i - 1]
        return ChainProblem(
            kind=Tampering.INSERTED,
            seq=intruder.seq,
            event_id=intruder.event.id,
            detail=f"event {intruder.seq} ({intruder.event.type}) is not part of the chain",
        )
    if record.seq != expected_seq or (target is None and i == 0):
        first_missing = expected_seq if i else 1
        return ChainProblem(
            kind=Tampering.DELETED,
            seq=first_missing,
            event_id=None,
            detail=(
                f"events {first_missing}..{record.seq - 1} are missing before event {record.seq}"
                if record.seq > first_missing
                else f"an event before event {record.seq} is missing"
            ),
        )
    prev = records[i - 1]
    return ChainProblem(
        kind=Tampering.MODIFIED,
        seq=prev.seq,
        event_id=prev.event.id,
        detail=(
            f"event {prev.seq} ({prev.event.type}) was altered and re-hashed, or events after "
            f"it were deleted and the rest renumbered: event {record.seq} no longer links to it"
        ),
    )


def _check_head(
    records: Sequence[LogRecord], head: ChainHead | None, index_of: dict[str, int]
) -> list[ChainProblem]:
    if head is None:
        if records:
            return [
                ChainProblem(
                    kind=Tampering.DELETED, seq=0, event_id=None, detail="the log's head record is missing"
                )
            ]
        return []
    last = records[-1] if records else None
    if last is not None and last.seq == head.seq and last.hash == head.hash:
        return []
    at = index_of.get(head.hash)
    if at is not None and last is not None and at < len(records) - 1:
        extra = records[at + 1]
        return [
            ChainProblem(
                kind=Tampering.INSERTED,
                seq=extra.seq,
                event_id=extra.event.id,
                detail=f"event {extra.seq} ({extra.event.type}) was added after the recorded end of the log",
            )
        ]
    if last is None or last.seq < head.seq:
        first_missing = last.seq + 1 if last else 1
        return [
            ChainProblem(
                kind=Tampering.DELETED,
                seq=first_missing,
                event_id=None,
                detail=f"events {first_missing}..{head.seq} were removed from the end of the log",
            )
        ]
    return [
        ChainProblem(
            kind=Tampering.MODIFIED,
            seq=last.seq,
            event_id=last.event.id,
            detail=f"the last event ({last.seq}) or the log's head record was altered",
        )
    ]
