"""The gateway's audit journal: durable on record(), shipped in batches, recovered after SIGKILL."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from garrison.core.errors import StorageError
from garrison.core.events import Event
from garrison.gateway.audit import (
    AuditConfig,
    AuditLog,
    AuditUnavailable,
    journal_lines,
    recover_journals,
    request_event,
)
from garrison.gateway.types import Decision, Outcome, Principal, RequestFacts
from garrison.store import Store

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    yield opened
    opened.close()


def _facts(**changes: object) -> RequestFacts:
    facts = RequestFacts(
        method="POST",
        path="/v1/chat/completions",
        client_ip="10.1.2.3",
        route="chat",
        model="gpt-4o-mini",
        action="chat.completions",
        principal=Principal(id="key_7f3a", kind="api_key"),
        decisions=[
            Decision(step="auth", outcome=Outcome.ALLOW, ms=0.05),
            Decision(step="input.injection", outcome=Outcome.FLAG, reason="score 0.71", ms=1.25),
            Decision(step="upstream", outcome=Outcome.ALLOW, ms=12.0),
        ],
    )
    for name, value in changes.items():
        setattr(facts, name, value)
    return facts


def _event(n: int = 0) -> Event:
    return request_event(_facts(), status=200, latency_ms=14.5 + n, overhead_ms=1.5)


def _stored_ids(store: Store) -> list[str]:
    return [r.event.id for r in store.event_records()]


# -- the event ---------------------------------------------------------------------------------------


def test_request_event_holds_principal_route_decisions_and_digests() -> None:
    event = request_event(
        _facts(), status=200, latency_ms=14.5, overhead_ms=1.5, request_body=b"abc", response_body=b""
    )
    assert (event.type, event.actor, event.subject) == ("gateway.request", "key_7f3a", "chat")
    data = event.data
    assert data["decisions"] == [
        {"step": "auth", "outcome": "allow", "reason": "", "ms": 0.05},
        {"step": "input.injection", "outcome": "flag", "reason": "score 0.71", "ms": 1.25},
        {"step": "upstream", "outcome": "allow", "reason": "", "ms": 12.0},
    ]
    assert data["request"] == {
        "sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "bytes": 3,
    }
    assert data["response"]["bytes"] == 0
    assert (data["status"], data["model"], data["client_ip"]) == (200, "gpt-4o-mini", "10.1.2.3")
    # The same event built through the validating constructor is identical: nothing unchecked slips in.
    rebuilt = Event(
        type=event.type,
        actor=event.actor,
        subject=event.subject,
        data=event.data,
        occurred_at=event.occurred_at,
        id=event.id,
    )
    assert rebuilt == event


def test_anonymous_request_and_secret_in_query_are_masked() -> None:
    key = "gar_Zq8xY2mN4pQ7rS1tU5vW9"
    event = request_event(
        _facts(principal=None, route="", path=f"/v1/models?api_key={key}"),
        status=401,
        latency_ms=float("nan"),
        overhead_ms=0.2,
    )
    assert event.actor == "anonymous"
    assert key not in json.dumps(event.payload())
    assert event.subject.startswith("/v1/models")
    assert event.data["latency_ms"] is None  # not a number JSON could hold


def test_bodies_are_kept_only_when_configured_and_then_masked() -> None:
    secrets = {
        "garrison key": "gar_Zq8xY2mN4pQ7rS1tU5vW9",
        "bearer token": "Zm9vYmFyYmF6cXV4cXV1eDEyMzQ1Njc4",
        "openai key": "sk-proj-Abcdefghijklmnopqrstuvwxyz0123456789",
        "password": "S3cr3t-P4ssw0rd-Value-9x!",
    }
    body = json.dumps(
        {
            "messages": [{"role": "user", "content": f"my key is {secrets['garrison key']}"}],
            "headers": f"Authorization: Bearer {secrets['bearer token']}",
            "note": f"use {secrets['openai key']} please",
            "password": secrets["password"],
        }
    ).encode()
    plain = request_event(_facts(), status=200, latency_ms=1, overhead_ms=1, request_body=body)
    assert "body" not in plain.data["request"]
    config = AuditConfig(include_bodies=True, max_body_bytes=10_000)
    kept = request_event(_facts(), status=200, latency_ms=1, overhead_ms=1, request_body=body, config=config)
    text = kept.data["request"]["body"]
    assert "my key is gar_" in text  # the body is there, only the secrets are not
    for what, secret in secrets.items():
        assert secret not in text, what
    assert kept.data["request"]["sha256"] == plain.data["request"]["sha256"]  # digest of the real body
    cut = request_event(
        _facts(), status=200, latency_ms=1, overhead_ms=1, response_body=b"x" * 100,
        config=AuditConfig(include_bodies=True, max_body_bytes=10),
    )  # fmt: skip
    assert (cut.data["response"]["body"], cut.data["response"]["truncated"]) == ("x" * 10, True)


def test_config_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="extra"):
        AuditConfig.model_validate({"journal_dir": "x", "flush_every": 5})


# -- journal and shipping ------------------------------------------------------------------------


def test_events_reach_the_store_in_batches_not_one_transaction_each(tmp_path: Path, store: Store) -> None:
    log = AuditLog(AuditConfig(journal_dir=tmp_path / "j", batch_size=100), store)
    log.open()
    events = [_event(i) for i in range(250)]
    for event in events:
        log.record(event)
    assert log.flush() == 250
    stats = log.stats()
    assert (stats.recorded, stats.shipped, stats.batches, stats.pending_bytes) == (250, 250, 3, 0)
    assert _stored_ids(store) == [e.id for e in events]
    stored = store.event_records()[7].event
    assert stored == events[7]  # what comes back from the journal is the event that went in
    log.close()
    assert store.verify_events().intact
    assert not list((tmp_path / "j").iterdir())  # a clean close leaves no journal behind


def test_every_shape_of_event_comes_back_from_the_journal_unchanged(tmp_path: Path, store: Store) -> None:
    with_bodies = AuditConfig(include_bodies=True)
    events = [
        request_event(_facts(), status=200, latency_ms=3.25, overhead_ms=0.5),
        request_event(_facts(decisions=[]), status=204, latency_ms=1e-7, overhead_ms=0.0, request_body=b""),
        request_event(
            _facts(principal=None, model="modèle-ü"), status=403, latency_ms=2, overhead_ms=1,
            request_body="héllo \u2028 \"x\"".encode(), response_body=b"\xff\xfe", config=with_bodies,
        ),
        Event(type="gateway.key.created", actor="admin", subject="key_1",
              data={"nested": {"list": [1, 2.5, None, True, "ü"]}, "empty": {}}),
    ]  # fmt: skip
    log = AuditLog(AuditConfig(journal_dir=tmp_path / "j"), store)
    log.open()
    for event in events:
        log.record(event)
    log.close()
    assert [r.event for r in store.event_records()] == events
    assert store.verify_events().intact


def test_a_backlog_beyond_memory_is_shipped_from_the_journal_in_order(tmp_path: Path, store: Store) -> None:
    log = AuditLog(AuditConfig(journal_dir=tmp_path / "j", batch_size=5), store)  # holds 20 in memory
    log.open()
    first = [_event(i) for i in range(53)]
    for event in first:
        log.record(event)
    assert log.flush() == 53
    second = [_event(i) for i in range(3)]  # caught up: handed over in memory again
    for event in second:
        log.record(event)
    assert log.flush() == 3
    assert log.stats().batches == 11 + 1
    log.close()
    assert _stored_ids(store) == [e.id for e in first + second]
    assert [r.event for r in store.event_records()] == first + second


def test_a_store_failure_loses_nothing_and_shipping_resumes(tmp_path: Path, store: Store) -> None:
    log = AuditLog(AuditConfig(journal_dir=tmp_path / "j"), store)
    log.open()
    first = [_event(i) for i in range(10)]
    for event in first[:4]:
        log.record(event)
    log.flush()
    for event in first[4:]:
        log.record(event)
    with store.engine.begin() as connection:  # break the store: appends now fail
        head = connection.exec_driver_sql("SELECT id, seq, hash FROM event_head").one()
        connection.exec_driver_sql("DELETE FROM event_head")
    with pytest.raises(StorageError, match="head record is missing"):
        log.flush()
    assert log.stats().pending_bytes > 0
    with store.engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO event_head (id, seq, hash) VALUES (?, ?, ?)", tuple(head))
    later = _event(99)
    log.record(later)
    assert log.flush() == 7
    log.close()
    assert _stored_ids(store) == [e.id for e in [*first, later]]
    assert store.verify_events().intact


def test_start_and_stop_ship_in_the_background(tmp_path: Path, store: Store) -> None:
    config = AuditConfig(journal_dir=tmp_path / "j", flush_interval_ms=5, batch_size=10)

    async def scenario() -> tuple[int, list[str]]:
        log = AuditLog(config, store)
        await log.start()
        ids = []
        for i in range(40):
            event = _event(i)
            log.record(event)
            ids.append(event.id)
        deadline = time.monotonic() + 10
        while len(_stored_ids(store)) < 40 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # the shipper thread, not stop(), stores them
        shipped_before_stop = len(_stored_ids(store))
        await log.stop()
        return shipped_before_stop, ids

    shipped, ids = asyncio.run(scenario())
    assert shipped == 40
    assert _stored_ids(store) == ids


def test_a_fully_shipped_journal_is_truncated_and_goes_on(tmp_path: Path, store: Store) -> None:
    log = AuditLog(AuditConfig(journal_dir=tmp_path / "j", rotate_bytes=1), store)
    log.open()
    path = log.journal_path
    assert path is not None
    log.record(_event(1))
    log.flush()
    assert path.stat().st_size == 0
    later = _event(2)
    log.record(later)
    log.flush()
    assert _stored_ids(store)[-1] == later.id
    log.close()


def test_record_fails_closed_when_the_store_falls_too_far_behind(tmp_path: Path, store: Store) -> None:
    log = AuditLog(AuditConfig(journal_dir=tmp_path / "j", max_journal_bytes=1 << 16), store)
    log.open()

    def flood() -> None:
        for i in range(10_000):
            log.record(_event(i))

    with pytest.raises(AuditUnavailable, match="has not taken"):
        flood()
    assert log.flush() > 60  # once the store takes the backlog, recording works again
    log.record(_event(0))
    log.close()


def _in_forked_child(log: AuditLog, url: str) -> None:
    try:
        log.record(_event())
    except AuditUnavailable:
        pass
    else:
        raise SystemExit(3)  # wrote to the parent's journal
    with Store.open(url) as own_store:
        child_log = AuditLog(log.config, own_store)
        child_log.open()
        child_log.record(_event())
        child_log.close()


def test_a_forked_worker_never_writes_the_parent_journal(tmp_path: Path, store: Store) -> None:
    log = AuditLog(AuditConfig(journal_dir=tmp_path / "j"), store)
    log.open()
    log.record(_event())
    child = multiprocessing.get_context("fork").Process(
        target=_in_forked_child, args=(log, f"sqlite:///{tmp_path / 'store.db'}")
    )
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert recover_journals(tmp_path / "j", store) == 0  # the parent still holds its journal's lock
    log.record(_event())
    log.close()
    assert len(_stored_ids(store)) == 3
    assert store.verify_events().intact


def test_record_before_open_is_refused(store: Store, tmp_path: Path) -> None:
    with pytest.raises(AuditUnavailable, match="not open"):
        AuditLog(AuditConfig(journal_dir=tmp_path), store).record(_event())


# -- recovery ----------------------------------------------------------------------------------------


def _orphan(folder: Path, content: bytes, *, checkpoint: int | None = None) -> Path:
    """A journal as a dead process leaves it: no lock held."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "journal-99999-deadbeef.jsonl"
    path.write_bytes(content)
    if checkpoint is not None:
        path.with_suffix(".offset").write_bytes(b"%020d\n" % checkpoint)
    return path


def test_torn_last_line_is_ignored_not_fatal(tmp_path: Path, store: Store) -> None:
    events = [_event(i) for i in range(5)]
    whole = journal_lines(events)
    torn = journal_lines([_event(99)])[:-40]  # a write() cut short: no newline, half a JSON object
    path = _orphan(tmp_path / "j", whole + torn)
    assert recover_journals(tmp_path / "j", store) == 5
    assert _stored_ids(store) == [e.id for e in events]
    assert not path.exists()
    assert store.verify_events().intact


def test_a_corrupt_line_is_skipped_and_the_rest_recovered(tmp_path: Path, store: Store) -> None:
    a, b = _event(1), _event(2)
    _orphan(
        tmp_path / "j",
        journal_lines([a]) + b'{"id": "x", "type": "not an event"}\n\xff\n' + journal_lines([b]),
    )
    assert recover_journals(tmp_path / "j", store) == 2
    assert _stored_ids(store) == [a.id, b.id]


def test_recovery_is_idempotent_across_a_crash_between_commit_and_checkpoint(
    tmp_path: Path, store: Store
) -> None:
    events = [_event(i) for i in range(30)]
    store.append_events(events[:20])  # committed, but the checkpoint still says 0
    _orphan(tmp_path / "j", journal_lines(events), checkpoint=0)
    assert recover_journals(tmp_path / "j", store, batch_size=7) == 10
    _orphan(tmp_path / "j", journal_lines(events), checkpoint=0)  # and once more, from scratch
    assert recover_journals(tmp_path / "j", store) == 0
    assert _stored_ids(store) == [e.id for e in events]
    assert store.verify_events().intact


def test_recovery_resumes_at_the_checkpoint(tmp_path: Path, store: Store) -> None:
    events = [_event(i) for i in range(6)]
    lines = journal_lines(events)
    after_two = len(journal_lines(events[:2]))
    store.append_events(events[:2])
    _orphan(tmp_path / "j", lines, checkpoint=after_two)
    assert recover_journals(tmp_path / "j", store) == 4
    assert _stored_ids(store) == [e.id for e in events]


def test_a_live_process_journal_is_not_taken_over(tmp_path: Path, store: Store) -> None:
    log = AuditLog(AuditConfig(journal_dir=tmp_path / "j"), store)
    log.open()
    log.record(_event())
    assert recover_journals(tmp_path / "j", store) == 0  # locked by its owner
    assert _stored_ids(store) == []
    log.close()
    assert len(_stored_ids(store)) == 1


_CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from garrison.gateway.audit import AuditConfig, AuditLog, request_event
    from garrison.gateway.types import Decision, Outcome, RequestFacts
    from garrison.store import Store

    store = Store.open(sys.argv[1])
    log = AuditLog(AuditConfig(journal_dir=Path(sys.argv[2]), flush_interval_ms=5, batch_size=50), store)
    asyncio.run(log.start())  # the shipper thread keeps running after the loop closes
    out = sys.stdout
    n = 0
    while True:
        facts = RequestFacts(method="GET", path="/v1/models", client_ip="127.0.0.1", route="models",
                             decisions=[Decision(step="auth", outcome=Outcome.ALLOW)])
        event = request_event(facts, status=200, latency_ms=1.0, overhead_ms=0.1)
        log.record(event)
        out.write(event.id + "\\n")
        out.flush()
        n += 1
    """
)


@pytest.mark.slow
def test_sigkill_mid_run_loses_no_event_that_was_acknowledged(tmp_path: Path, store: Store) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    journal = tmp_path / "journal"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, url, str(journal)], stdout=subprocess.PIPE, env=env
    )
    assert child.stdout is not None
    acknowledged: list[str] = []
    try:
        # Let it run until the shipper has stored some events, so the kill lands mid-stream.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            acknowledged.append(child.stdout.readline().decode().strip())
            if len(acknowledged) >= 400 and len(acknowledged) % 100 == 0 and store.event_records(limit=1):
                break
        child.send_signal(signal.SIGKILL)
        rest = child.stdout.read().decode().split()
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    acknowledged += rest
    acknowledged = [a for a in acknowledged if a]
    stored_before = set(_stored_ids(store))
    assert stored_before, "the shipper stored nothing before the kill"

    recovered = AuditLog(AuditConfig(journal_dir=journal), store).recover()
    ids = _stored_ids(store)
    assert recovered == len(ids) - len(stored_before)
    assert recovered > 0, "the kill should land while events wait in the journal"
    assert len(ids) == len(set(ids))  # nothing stored twice
    assert set(acknowledged) <= set(ids)
    assert store.verify_events().intact
    assert AuditLog(AuditConfig(journal_dir=journal), store).recover() == 0  # a second run finds nothing
    assert not list(journal.glob("*.jsonl"))
