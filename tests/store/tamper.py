"""Tampering with a stored event log through plain SQL, the way an attacker with database access would.

Each function changes the ``events`` (or ``event_head``) table in the caller's transaction and
returns what verification should report first: the kind of tampering and the position.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable

from sqlalchemy import Connection, text

from garrison.core.eventlog import GENESIS_HASH, LogRecord, Tampering, chain_hash
from garrison.core.events import Event
from garrison.store.rows import event_row, rebuild_record

Expectation = tuple[Tampering, int]
Tamper = Callable[[Connection, int], Expectation]


def _record(connection: Connection, seq: int) -> LogRecord:
    row = connection.execute(text("SELECT * FROM events WHERE seq = :seq"), {"seq": seq}).mappings().one()
    return rebuild_record(row)


def _last_seq(connection: Connection) -> int:
    return int(connection.execute(text("SELECT MAX(seq) FROM events")).scalar_one())


def insert_record(connection: Connection, record: LogRecord) -> None:
    """Write ``record`` as a row of ``events``."""
    connection.execute(
        text(
            "INSERT INTO events (seq, event_id, type, actor, subject, occurred_at, data, prev_hash, hash) "
            "VALUES (:seq, :event_id, :type, :actor, :subject, :occurred_at, :data, :prev_hash, :hash)"
        ),
        event_row(record),
    )


def forged_event() -> Event:
    """An event the attacker wants the log to contain."""
    return Event(
        type="key.created", actor="mallory", subject="admin-key", data={"role": "admin"}, id=uuid.uuid4().hex
    )


def modify(connection: Connection, seq: int) -> Expectation:
    """Change an event's content and leave its hash as it was."""
    connection.execute(text("UPDATE events SET actor = actor || ' (edited)' WHERE seq = :seq"), {"seq": seq})
    return Tampering.MODIFIED, seq


def modify_data(connection: Connection, seq: int) -> Expectation:
    """Rewrite an event's data as different (still valid) JSON, hash left."""
    connection.execute(
        text("UPDATE events SET data = :data WHERE seq = :seq"), {"data": '{"allowed":true}', "seq": seq}
    )
    return Tampering.MODIFIED, seq


def modify_and_rehash(connection: Connection, seq: int) -> Expectation:
    """Change an event's content and recompute its own hash (the next link then breaks)."""
    record = _record(connection, seq)
    edited = dataclasses.replace(record.event, actor=record.event.actor + " (edited)")
    connection.execute(
        text("UPDATE events SET actor = :actor, hash = :hash WHERE seq = :seq"),
        {"actor": edited.actor, "hash": chain_hash(record.prev_hash, edited), "seq": seq},
    )
    return Tampering.MODIFIED, seq


def make_unreadable(connection: Connection, seq: int) -> Expectation:
    """Change an event's type into something Garrison would never write."""
    connection.execute(text("UPDATE events SET type = 'NOT A TYPE' WHERE seq = :seq"), {"seq": seq})
    return Tampering.MODIFIED, seq


def delete(connection: Connection, seq: int) -> Expectation:
    """Delete one event, leaving a gap in the positions (from the end when ``seq`` is the last)."""
    connection.execute(text("DELETE FROM events WHERE seq = :seq"), {"seq": seq})
    return Tampering.DELETED, seq


def delete_tail(connection: Connection, seq: int) -> Expectation:
    """Delete every event from ``seq`` to the end, leaving the head as it was."""
    connection.execute(text("DELETE FROM events WHERE seq >= :seq"), {"seq": seq})
    return Tampering.DELETED, seq


def insert_renumbered(connection: Connection, seq: int) -> Expectation:
    """Insert a forged, correctly linked event at ``seq`` and renumber everything after it."""
    prev_hash = _record(connection, seq - 1).hash if seq > 1 else GENESIS_HASH
    connection.execute(text("UPDATE events SET seq = -(seq + 1) WHERE seq >= :seq"), {"seq": seq})
    connection.execute(text("UPDATE events SET seq = -seq WHERE seq < 0"))
    forged = forged_event()
    insert_record(
        connection, LogRecord(seq=seq, event=forged, prev_hash=prev_hash, hash=chain_hash(prev_hash, forged))
    )
    return Tampering.INSERTED, seq


def append_after_head(connection: Connection, _seq: int) -> Expectation:
    """Append a forged, correctly linked event after the end without moving the head."""
    last = _record(connection, _last_seq(connection))
    forged = forged_event()
    record = LogRecord(
        seq=last.seq + 1, event=forged, prev_hash=last.hash, hash=chain_hash(last.hash, forged)
    )
    insert_record(connection, record)
    return Tampering.INSERTED, record.seq


def swap_with_next(connection: Connection, seq: int) -> Expectation:
    """Swap the positions of event ``seq`` and the one after it."""
    return swap(connection, seq, seq + 1)


def swap(connection: Connection, first: int, second: int) -> Expectation:
    """Swap the positions of two events (``first < second``)."""
    connection.execute(text("UPDATE events SET seq = -1 WHERE seq = :a"), {"a": first})
    connection.execute(text("UPDATE events SET seq = :a WHERE seq = :b"), {"a": first, "b": second})
    connection.execute(text("UPDATE events SET seq = :b WHERE seq = -1"), {"b": second})
    return Tampering.REORDERED, first


def delete_head(connection: Connection, _seq: int) -> Expectation:
    """Remove the head record."""
    connection.execute(text("DELETE FROM event_head"))
    return Tampering.DELETED, 0
