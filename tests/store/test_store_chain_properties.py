"""Property tests of the event chain: honest logs verify, every single tampering is caught.

Most examples run on the in-memory functions of ``garrison.core.eventlog`` (fast, many cases);
a smaller number go through a real store and real SQL (``tests.store.tamper``).
"""

from __future__ import annotations

import dataclasses
import string
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from garrison.core.eventlog import (
    GENESIS_HASH,
    ChainHead,
    LogRecord,
    Tampering,
    chain_hash,
    link,
    verify_chain,
)
from garrison.core.events import Event
from garrison.store import Store
from tests.store import tamper

# -- strategies ----------------------------------------------------------------------------------

_WORD = st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=6)
_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=8,
)
events_strategy = st.builds(
    Event,
    type=st.lists(_WORD, min_size=2, max_size=3).map(".".join),
    actor=_TEXT,
    subject=_TEXT,
    data=st.dictionaries(_TEXT, _JSON, max_size=4),
    occurred_at=st.datetimes(  # Hypothesis takes naive bounds and adds the zone itself
        min_value=datetime(2000, 1, 1, tzinfo=UTC).replace(tzinfo=None),
        max_value=datetime(2100, 1, 1, tzinfo=UTC).replace(tzinfo=None),
        timezones=st.just(UTC),
    ),
    id=st.uuids().map(lambda u: u.hex),
)


def event_lists(min_size: int = 1, max_size: int = 30) -> st.SearchStrategy[list[Event]]:
    """Lists of events with distinct ids."""
    return st.lists(events_strategy, min_size=min_size, max_size=max_size, unique_by=lambda e: e.id)


# -- tampering of in-memory logs -----------------------------------------------------------------

Log = tuple[list[LogRecord], ChainHead | None]
Expected = tuple[Tampering, int]


def _renumbered(records: list[LogRecord], start: int, shift: int) -> list[LogRecord]:
    return [dataclasses.replace(r, seq=r.seq + shift) if r.seq >= start else r for r in records]


def _edited(event: Event) -> Event:
    return dataclasses.replace(event, actor=event.actor + "\u2009edited")


def t_modify(records: list[LogRecord], head: ChainHead, i: int, _forged: Event) -> tuple[Log, Expected]:
    """Change event ``i``'s content, keep its hash."""
    out = list(records)
    out[i] = dataclasses.replace(out[i], event=_edited(out[i].event))
    return (out, head), (Tampering.MODIFIED, out[i].seq)


def t_modify_rehash(
    records: list[LogRecord], head: ChainHead, i: int, _forged: Event
) -> tuple[Log, Expected]:
    """Change event ``i``'s content and recompute its own hash."""
    out = list(records)
    edited = _edited(out[i].event)
    out[i] = dataclasses.replace(out[i], event=edited, hash=chain_hash(out[i].prev_hash, edited))
    return (out, head), (Tampering.MODIFIED, out[i].seq)


def t_delete(records: list[LogRecord], head: ChainHead, i: int, _forged: Event) -> tuple[Log, Expected]:
    """Delete event ``i`` without renumbering (from the end when ``i`` is the last)."""
    return (records[:i] + records[i + 1 :], head), (Tampering.DELETED, records[i].seq)


def t_insert(records: list[LogRecord], head: ChainHead, i: int, forged: Event) -> tuple[Log, Expected]:
    """Insert a correctly linked forged event before position ``i``, renumbering the rest.

    With ``i == len(records)`` the event is appended after the head.
    """
    prev = records[i - 1].hash if i else GENESIS_HASH
    intruder = LogRecord(seq=i + 1, event=forged, prev_hash=prev, hash=chain_hash(prev, forged))
    out = [*records[:i], intruder, *_renumbered(records[i:], i + 1, 1)]
    return (out, head), (Tampering.INSERTED, i + 1)


def t_swap(records: list[LogRecord], head: ChainHead, i: int, _forged: Event) -> tuple[Log, Expected]:
    """Swap event ``i`` with a later one chosen from ``i``'s hash (positions swap with them)."""
    assume(len(records) >= 2)
    i = min(i, len(records) - 2)
    j = i + 1 + int(records[i].hash, 16) % (len(records) - i - 1)
    out = list(records)
    out[i], out[j] = (
        dataclasses.replace(records[j], seq=records[i].seq),
        dataclasses.replace(records[i], seq=records[j].seq),
    )
    return (out, head), (Tampering.REORDERED, records[i].seq)


TAMPERINGS: dict[str, Callable[[list[LogRecord], ChainHead, int, Event], tuple[Log, Expected]]] = {
    "modified": t_modify,
    "modified-rehashed": t_modify_rehash,
    "deleted": t_delete,
    "inserted": t_insert,
    "reordered": t_swap,
}


@given(events=event_lists(min_size=0))
def test_honest_logs_verify(events: list[Event]) -> None:
    records = link(events)
    head = ChainHead(seq=records[-1].seq, hash=records[-1].hash) if records else None
    verdict = verify_chain(records, head)
    assert verdict.problems == ()
    assert verdict.checked == len(events)


@given(events=event_lists(), more=event_lists(max_size=5))
def test_logs_appended_in_batches_equal_one_batch(events: list[Event], more: list[Event]) -> None:
    assume({e.id for e in events}.isdisjoint(e.id for e in more))
    first = link(events)
    head = ChainHead(seq=first[-1].seq, hash=first[-1].hash)
    assert first + link(more, after=head) == link(events + more)


@given(
    events=event_lists(),
    kind=st.sampled_from(sorted(TAMPERINGS)),
    where=st.integers(min_value=0, max_value=30),
    forged=events_strategy,
)
def test_any_single_tampering_is_detected_first_with_its_kind_and_position(
    events: list[Event], kind: str, where: int, forged: Event
) -> None:
    records = link(events)
    head = ChainHead(seq=records[-1].seq, hash=records[-1].hash)
    limit = len(records) + 1 if kind == "inserted" else len(records)
    (tampered, new_head), expected = TAMPERINGS[kind](records, head, where % limit, forged)
    verdict = verify_chain(tampered, new_head)
    assert verdict.problems, "tampering went unnoticed"
    assert verdict.first is not None
    assert (verdict.first.kind, verdict.first.seq) == expected, verdict.problems


# -- through a real store ------------------------------------------------------------------------

STORE_TAMPERINGS: dict[str, Callable[[Any, int], tamper.Expectation]] = {
    "modified": tamper.modify,
    "modified-rehashed": tamper.modify_and_rehash,
    "deleted": tamper.delete,
    "inserted": tamper.insert_renumbered,
    "appended": tamper.append_after_head,
    "reordered": tamper.swap_with_next,
}

_SAFE_TEXT = st.text(alphabet=string.ascii_letters + "äß✓ ", max_size=8)
store_events = st.lists(
    st.builds(
        Event,
        type=st.sampled_from(["scan.completed", "gateway.request.denied", "key.created"]),
        actor=_SAFE_TEXT,
        subject=_SAFE_TEXT,
        data=st.dictionaries(_SAFE_TEXT, _JSON, max_size=3),
        id=st.builds(lambda: uuid.uuid4().hex),
    ),
    min_size=2,
    max_size=8,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=store_events, kind=st.sampled_from(sorted(STORE_TAMPERINGS)), where=st.integers(0, 7))
def test_tampering_a_real_store_is_detected(
    new_db_url: Callable[[], str], events: list[Event], kind: str, where: int
) -> None:
    with Store.open(new_db_url()) as store:
        store.append_events(events)
        assert store.verify_events().intact
        seq = 1 + where % (len(events) - 1 if kind == "reordered" else len(events))
        with store.engine.begin() as connection:
            expected = STORE_TAMPERINGS[kind](connection, seq)
        verdict = store.verify_events()
    assert verdict.first is not None
    assert (verdict.first.kind, verdict.first.seq) == expected, verdict.problems
