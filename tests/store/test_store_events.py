"""The event log in the store: appending, reading, concurrency, and tampering detected by verification."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, text

from garrison.core.errors import StorageError
from garrison.core.eventlog import LogRecord, Tampering, link
from garrison.core.events import canonical_json, format_timestamp
from garrison.store import Store
from tests.store import tamper
from tests.store.factories import make_events

N = 6


def test_append_returns_linked_records_and_reads_them_back(store: Store) -> None:
    events = make_events(N)
    first = store.append_events(events[:2])
    second = store.append_events(events[2:])
    assert [r.seq for r in first + second] == list(range(1, N + 1))
    assert first + second == link(events)
    assert store.event_records() == first + second
    assert store.append_events([]) == []
    verdict = store.verify_events()
    assert verdict.intact
    assert verdict.checked == N


def test_event_records_pages_by_seq(store: Store) -> None:
    records = store.append_events(make_events(N))
    assert store.event_records(limit=2) == records[:2]
    assert store.event_records(after_seq=2, limit=3) == records[2:5]
    assert store.event_records(after_seq=N) == []


def test_empty_log_verifies(store: Store) -> None:
    verdict = store.verify_events()
    assert verdict.intact
    assert verdict.checked == 0


def test_time_and_data_are_stored_as_the_exact_hashed_text(store: Store, raw: Engine) -> None:
    [record] = store.append_events(make_events(1))
    with raw.connect() as connection:
        occurred_at, data = connection.execute(text("SELECT occurred_at, data FROM events")).one()
    assert occurred_at == format_timestamp(record.event.occurred_at)
    assert data == canonical_json(dict(record.event.data)).decode("utf-8")


def test_duplicate_event_id_is_refused_and_the_head_does_not_move(store: Store) -> None:
    [record] = store.append_events(make_events(1))
    with pytest.raises(StorageError):
        store.append_events([record.event])
    assert store.verify_events().intact
    assert len(store.event_records()) == 1


def test_append_refuses_without_a_head(store: Store, raw: Engine) -> None:
    store.append_events(make_events(2))
    with raw.begin() as connection:
        connection.execute(text("DELETE FROM event_head"))
    with pytest.raises(StorageError, match="head record is missing"):
        store.append_events(make_events(1, prefix="late"))


def _append_concurrently(stores: list[Store], *, threads: int, batches: int) -> list[str]:
    """Append from ``threads`` threads at once (spread over ``stores``); return every event id."""
    start = threading.Barrier(threads)

    def worker(index: int) -> list[str]:
        target = stores[index % len(stores)]
        start.wait()
        ids: list[str] = []
        for batch in range(batches):
            events = make_events(2, prefix=f"t{index}b{batch}-")
            target.append_events(events)
            ids.extend(e.id for e in events)
        return ids

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(worker, i) for i in range(threads)]
        return [event_id for future in futures for event_id in future.result()]


def test_concurrent_appends_from_threads_keep_the_chain_intact(store: Store) -> None:
    ids = _append_concurrently([store], threads=8, batches=15)
    records = store.event_records()
    assert [r.seq for r in records] == list(range(1, len(ids) + 1))
    assert sorted(r.event.id for r in records) == sorted(ids)
    verdict = store.verify_events()
    assert verdict.intact, verdict.problems


def test_concurrent_appends_from_separate_stores_keep_the_chain_intact(db_url: str) -> None:
    stores = [Store.open(db_url) for _ in range(3)]
    try:
        ids = _append_concurrently(stores, threads=6, batches=10)
        verdict = stores[0].verify_events()
        assert verdict.intact, verdict.problems
        assert verdict.checked == len(ids) == 120
    finally:
        for opened in stores:
            opened.close()


# -- tampering through SQL -----------------------------------------------------------------------

TAMPERINGS: list[tuple[str, Callable[..., tamper.Expectation], int]] = [
    ("modified-first", tamper.modify, 1),
    ("modified-middle", tamper.modify, 3),
    ("modified-last", tamper.modify, N),
    ("modified-data", tamper.modify_data, 4),
    ("modified-unreadable", tamper.make_unreadable, 2),
    ("modified-rehashed-first", tamper.modify_and_rehash, 1),
    ("modified-rehashed-middle", tamper.modify_and_rehash, 3),
    ("modified-rehashed-last", tamper.modify_and_rehash, N),
    ("deleted-first", tamper.delete, 1),
    ("deleted-middle", tamper.delete, 3),
    ("deleted-last", tamper.delete, N),
    ("deleted-tail", tamper.delete_tail, 4),
    ("deleted-everything", tamper.delete_tail, 1),
    ("deleted-head-record", tamper.delete_head, 0),
    ("inserted-first", tamper.insert_renumbered, 1),
    ("inserted-middle", tamper.insert_renumbered, 3),
    ("inserted-after-head", tamper.append_after_head, 0),
    ("reordered-adjacent", tamper.swap_with_next, 3),
    ("reordered-first-and-last", lambda c, _s: tamper.swap(c, 1, N), 0),
    ("reordered-apart", lambda c, _s: tamper.swap(c, 2, 5), 0),
]


@pytest.mark.parametrize(
    ("change", "seq"), [(t[1], t[2]) for t in TAMPERINGS], ids=[t[0] for t in TAMPERINGS]
)
def test_tampering_is_detected_with_the_right_kind_and_position(
    store: Store, raw: Engine, change: Callable[..., tamper.Expectation], seq: int
) -> None:
    store.append_events(make_events(N))
    assert store.verify_events().intact
    with raw.begin() as connection:
        kind, where = change(connection, seq)
    verdict = store.verify_events()
    assert not verdict.intact
    assert verdict.first is not None
    assert (verdict.first.kind, verdict.first.seq) == (kind, where), verdict.problems


def test_events_appended_after_tampering_do_not_hide_it(store: Store, raw: Engine) -> None:
    store.append_events(make_events(N))
    with raw.begin() as connection:
        tamper.modify(connection, 2)
    store.append_events(make_events(3, prefix="later"))
    first = store.verify_events().first
    assert first is not None
    assert (first.kind, first.seq) == (Tampering.MODIFIED, 2)


def test_a_rewritten_log_with_a_matching_head_is_not_detectable(store: Store, raw: Engine) -> None:
    # The documented limit of a hash chain without an external anchor: someone who can rewrite
    # every record after the change and the head as well produces a consistent log.
    events = make_events(N)
    store.append_events(events)
    rewritten: list[LogRecord] = link([*events[:2], tamper.forged_event(), *events[3:]])
    with raw.begin() as connection:
        connection.execute(text("DELETE FROM events"))
        for record in rewritten:
            tamper.insert_record(connection, record)
        connection.execute(
            text("UPDATE event_head SET seq = :seq, hash = :hash"),
            {"seq": rewritten[-1].seq, "hash": rewritten[-1].hash},
        )
    assert store.verify_events().intact
