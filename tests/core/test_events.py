from __future__ import annotations

from datetime import datetime

import pytest

from garrison.core.errors import InputError
from garrison.core.eventlog import GENESIS_HASH, ChainHead, chain_hash, link, verify_chain
from garrison.core.events import Event, canonical_json, format_timestamp, parse_timestamp


def test_canonical_json_is_order_independent_and_compact() -> None:
    assert canonical_json({"b": 1, "a": [1, "é"]}) == canonical_json({"a": [1, "é"], "b": 1})
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"type": "Scan Completed"}, "dotted lower-case"),
        ({"type": "scan"}, "dotted lower-case"),
        ({"data": {"x": float("nan")}}, "JSON cannot hold"),
        ({"data": {"x": object()}}, "not a JSON value"),
        ({"data": {1: "x"}}, "non-string key"),
        ({"occurred_at": datetime(2026, 1, 1)}, "timezone-aware"),  # noqa: DTZ001
    ],
)
def test_events_reject_what_the_log_cannot_hold(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"type": "scan.completed", "actor": "garrison"}
    args.update(kwargs)
    with pytest.raises(InputError, match=message):
        Event(**args)  # type: ignore[arg-type]


def test_timestamps_round_trip() -> None:
    event = Event(type="scan.completed", actor="garrison")
    assert parse_timestamp(format_timestamp(event.occurred_at)) == event.occurred_at


def test_link_chains_each_event_to_the_one_before() -> None:
    events = [Event(type="key.created", actor=f"user{i}", data={"i": i}) for i in range(3)]
    records = link(events)
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0].prev_hash == GENESIS_HASH
    assert records[1].prev_hash == records[0].hash
    assert records[2].hash == chain_hash(records[1].hash, events[2])
    more = link([Event(type="key.revoked", actor="x")], after=ChainHead(seq=3, hash=records[2].hash))
    assert more[0].seq == 4
    assert more[0].prev_hash == records[2].hash


def test_an_honest_log_verifies() -> None:
    records = link(Event(type="scan.completed", actor="g", data={"n": i}) for i in range(5))
    verdict = verify_chain(records, ChainHead(seq=5, hash=records[-1].hash))
    assert verdict.intact
    assert verdict.checked == 5
    assert verdict.first is None
    assert verify_chain([], None).intact


def test_a_replayed_copy_of_an_earlier_event_is_an_insertion() -> None:
    records = link(Event(type="scan.completed", actor="g", data={"n": i}) for i in range(5))
    first = records[0]
    replay = type(first)(seq=6, event=first.event, prev_hash=first.prev_hash, hash=first.hash)
    verdict = verify_chain([*records, replay], ChainHead(seq=6, hash=first.hash))
    assert verdict.first is not None
    assert (verdict.first.kind.value, verdict.first.seq) == ("inserted", 6)


def test_events_reject_nul_in_actor_and_subject() -> None:
    with pytest.raises(InputError, match="NUL"):
        Event(type="key.created", actor="a\x00b")
    with pytest.raises(InputError, match="NUL"):
        Event(type="key.created", actor="a", subject="x\x00")


def test_lone_surrogates_are_written_out_so_the_event_can_be_hashed() -> None:
    name = "model\udcff.pkl"  # a file name that is not UTF-8, as Python hands it over
    data = {"path": name, "files": [name, "ok"], "nested": {name: 1}, "plain": "é"}
    event = Event(type="signature.verified", actor="garrison", subject=name, data=data)
    assert event.subject == "model\\xff.pkl"
    assert event.data == {
        "path": "model\\xff.pkl",
        "files": ["model\\xff.pkl", "ok"],
        "nested": {"model\\xff.pkl": 1},
        "plain": "é",
    }
    assert data["path"] == name  # the caller's mapping is left alone
    records = link([event])
    assert verify_chain(records, ChainHead(seq=1, hash=records[0].hash)).first is None
    plain = {"a": "b"}
    assert Event(type="scan.completed", actor="g", data=plain).data is plain
