"""``garrison audit export`` (JSON lines, filters, streaming) and ``garrison audit recover``."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from garrison.cli import audit as audit_cli
from garrison.core.eventlog import chain_hash
from garrison.core.events import Event
from garrison.gateway.audit import journal_lines, request_event
from garrison.gateway.types import RequestFacts
from garrison.store import Store

START = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _events() -> list[Event]:
    events = []
    for i in range(6):
        kind = "gateway.request" if i % 2 else "scan.completed"
        events.append(
            Event(
                type=kind,
                actor="key_1",
                subject=f"s{i}",
                data={"i": i, "text": "é"},
                occurred_at=START + timedelta(hours=i),
            )
        )
    return events


@pytest.fixture
def stored(tmp_path: Path) -> list[Event]:
    events = _events()
    with Store.open(f"sqlite:///{tmp_path / 'store.db'}") as store:
        store.append_events(events)
    return events


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_export_writes_every_event_as_a_json_line_with_its_links(
    cli: Callable[..., Any], stored: list[Event], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_cli, "_EXPORT_PAGE", 4)  # several pages: the export streams
    result = cli("audit", "export")
    assert result.code == 0, result.err
    lines = _lines(result.out)
    assert [line["id"] for line in lines] == [e.id for e in stored]
    assert [line["seq"] for line in lines] == [1, 2, 3, 4, 5, 6]
    assert lines[0]["prev_hash"] == "0" * 64
    for before, line in itertools.pairwise(lines):
        assert line["prev_hash"] == before["hash"]
    for line, event in zip(lines, stored, strict=True):
        assert line["hash"] == chain_hash(line["prev_hash"], event)  # exported values are the hashed ones
        assert line["data"] == {"i": event.data["i"], "text": "é"}


def test_export_filters_by_type_and_time(cli: Callable[..., Any], stored: list[Event]) -> None:
    by_type = _lines(cli("audit", "export", "--type", "gateway.*").out)
    assert [line["seq"] for line in by_type] == [2, 4, 6]
    since = _lines(cli("audit", "export", "--since", "2026-11-01T15:00:00Z").out)
    assert [line["seq"] for line in since] == [4, 5, 6]
    both = _lines(cli("audit", "export", "--since", "2026-11-01T14:00:00", "--type", "scan.completed").out)
    assert [line["seq"] for line in both] == [3, 5]


def test_export_to_a_file(cli: Callable[..., Any], stored: list[Event], tmp_path: Path) -> None:
    target = tmp_path / "out" / "events.jsonl"
    result = cli("audit", "export", "--output", str(target))
    assert result.code == 0
    assert result.out == ""
    assert "6 events written" in result.err
    assert len(_lines(target.read_text(encoding="utf-8"))) == 6


def test_export_rejects_a_bad_time(cli: Callable[..., Any], stored: list[Event]) -> None:
    result = cli("audit", "export", "--since", "last tuesday")
    assert result.code == 2
    assert "ISO 8601" in result.err


def test_recover_stores_what_a_dead_gateway_journalled(cli: Callable[..., Any], tmp_path: Path) -> None:
    events = [
        request_event(RequestFacts(method="GET", path="/v1/models", client_ip="::1"), status=200,
                      latency_ms=1.0, overhead_ms=0.1)
        for _ in range(3)
    ]  # fmt: skip
    journal = tmp_path / "journal"
    journal.mkdir()
    (journal / "journal-4242-cafe0001.jsonl").write_bytes(journal_lines(events) + b'{"id": "torn')
    result = cli("audit", "recover", "--journal-dir", str(journal))
    assert result.code == 0, result.err
    assert "3 events recovered" in result.err
    exported = _lines(cli("audit", "export").out)
    assert [line["id"] for line in exported] == [e.id for e in events]
    assert cli("audit", "verify").code == 0
    assert "0 events recovered" in cli("audit", "recover", "--journal-dir", str(journal)).err
