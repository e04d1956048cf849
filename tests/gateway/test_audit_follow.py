"""Journals shipped by a separate follower (``garrison audit ship``): workers only write, rotate at
``rotate_bytes``, and fail closed when nothing takes their journals; the follower ships live journals
up to their last complete line and deletes the ones their writer let go of."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from garrison.core.events import Event
from garrison.gateway.audit import AuditConfig, AuditLog, AuditUnavailable, follow_journals
from garrison.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    yield opened
    opened.close()


def _event(n: int) -> Event:
    return Event(type="gateway.request", actor="key_test", subject="chat", data={"n": n, "pad": "x" * 200})


def test_a_follower_ships_live_and_rotated_journals_and_deletes_finished_ones(
    tmp_path: Path, store: Store
) -> None:
    journals = tmp_path / "audit"
    config = AuditConfig(journal_dir=journals, rotate_bytes=4096)
    writer = AuditLog(config, store, ship=False)
    asyncio.run(writer.start())
    stop = threading.Event()
    shipped: list[int] = []
    follower = threading.Thread(
        target=lambda: shipped.append(follow_journals(journals, store, interval_s=0.02, stop=stop))
    )
    follower.start()
    events = [_event(i) for i in range(300)]
    for event in events[:150]:
        writer.record(event)
    deadline = time.monotonic() + 10
    while len(store.event_records()) < 150 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(store.event_records()) == 150  # shipped while the writer is still running
    assert len(list(journals.glob("journal-*.jsonl"))) == 1  # rotated-away journals were deleted
    for event in events[150:]:
        writer.record(event)
    asyncio.run(writer.stop())
    stop.set()
    follower.join(10)
    stored = [r.event.id for r in store.event_records()]
    assert stored == [e.id for e in events]  # all of them, once each, in order
    assert shipped == [300]
    assert not list(journals.glob("journal-*"))
    assert store.verify_events().intact


def test_without_a_follower_the_writer_fails_closed_once_the_backlog_is_too_big(
    tmp_path: Path, store: Store
) -> None:
    config = AuditConfig(journal_dir=tmp_path / "audit", rotate_bytes=8192, max_journal_bytes=1 << 16)
    writer = AuditLog(config, store, ship=False)
    writer.open()
    written = 0
    refused: AuditUnavailable | None = None
    for i in range(10_000):
        try:
            writer.record(_event(i))
        except AuditUnavailable as exc:
            refused = exc
            break
        written += 1
    assert refused is not None
    assert "has not taken" in refused.message
    assert "audit ship" in (refused.hint or "")
    assert 100 < written < 1000  # about 64 KiB of ~370-byte lines, then refused
    writer.close()
    # nothing journalled was lost: a follower started late ships all of it
    stop = threading.Event()
    stop.set()
    assert follow_journals(tmp_path / "audit", store, stop=stop) == written


def test_the_shipper_stops_after_a_last_pass_when_its_gateway_is_gone(tmp_path: Path) -> None:
    """A gateway killed with SIGKILL cannot stop its shipper; ``--parent-pid`` makes it stop itself."""
    import subprocess
    import sys

    journal_dir = tmp_path / "audit"
    journal_dir.mkdir()
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    shipper = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "garrison",
            "audit",
            "ship",
            "--journal-dir",
            str(journal_dir),
            "--db",
            f"sqlite:///{tmp_path / 'store.db'}",
            "--interval-ms",
            "50",
            "--parent-pid",
            str(parent.pid),
        ],
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(1.5)
        assert shipper.poll() is None  # follows while the gateway lives
        parent.kill()
        parent.wait()
        _, err = shipper.communicate(timeout=20)
        assert shipper.returncode == 0
        assert b"events shipped" in err
    finally:
        parent.kill()
        if shipper.poll() is None:
            shipper.kill()
            shipper.wait()
