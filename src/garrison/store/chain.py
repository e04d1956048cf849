"""The event log on a database connection: append after the head, read records and the head."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, insert, select, update

from garrison.core.errors import StorageError
from garrison.core.eventlog import ChainHead, LogRecord, link
from garrison.core.events import Event
from garrison.store.models import Base, EventHeadRow, EventRow
from garrison.store.rows import event_row, rebuild_record

_HEAD_ID = 1
_events = Base.metadata.tables[EventRow.__tablename__]
_head = Base.metadata.tables[EventHeadRow.__tablename__]


def append(connection: Connection, events: Sequence[Event]) -> list[LogRecord]:
    """Chain ``events`` after the current head and write them, inside the caller's transaction.

    The head row is read with ``SELECT ... FOR UPDATE`` (PostgreSQL); on SQLite the caller's
    ``BEGIN IMMEDIATE`` already holds the write lock. Either way no other append can interleave.
    """
    if not events:
        return []
    row = connection.execute(
        select(_head.c.seq, _head.c.hash).where(_head.c.id == _HEAD_ID).with_for_update()
    ).one_or_none()
    if row is None:
        raise StorageError(
            "the event log's head record is missing, so new events cannot be chained",
            hint="run 'garrison events verify': the log may have been tampered with",
        )
    after = ChainHead(seq=row.seq, hash=row.hash) if row.seq else None
    records = link(events, after=after)
    connection.execute(insert(_events), [event_row(r) for r in records])
    connection.execute(
        update(_head).where(_head.c.id == _HEAD_ID).values(seq=records[-1].seq, hash=records[-1].hash)
    )
    return records


def read_head(connection: Connection) -> ChainHead | None:
    """The recorded head, or ``None`` when the log is empty or its head row is gone."""
    row = connection.execute(select(_head.c.seq, _head.c.hash).where(_head.c.id == _HEAD_ID)).one_or_none()
    if row is None or (row.seq == 0 and not row.hash.strip("0")):
        return None
    return ChainHead(seq=row.seq, hash=row.hash)


def read_records(connection: Connection, *, after_seq: int | None, limit: int | None) -> list[LogRecord]:
    """Records in ``seq`` order, after ``after_seq`` if given, at most ``limit`` of them."""
    query = select(_events).order_by(_events.c.seq)
    if after_seq is not None:
        query = query.where(_events.c.seq > after_seq)
    if limit is not None:
        query = query.limit(limit)
    return [rebuild_record(row) for row in connection.execute(query).mappings()]
