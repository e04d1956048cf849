"""The fast paths of the event log produce exactly what the plain definitions do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from garrison.core.eventlog import GENESIS_HASH, chain_hash, link
from garrison.core.events import Event, canonical_event, canonical_json, format_timestamp

_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_text, children, max_size=3),
    max_leaves=10,
)
_moments = st.datetimes(
    min_value=datetime(1970, 1, 2),  # noqa: DTZ001 - hypothesis takes naive bounds
    max_value=datetime(9998, 12, 30),  # noqa: DTZ001
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]),
)


@given(_moments)
def test_format_timestamp_matches_strftime(moment: datetime) -> None:
    assert format_timestamp(moment) == moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@given(
    actor=_text,
    subject=_text,
    data=st.dictionaries(_text, _json, max_size=4),
    moment=_moments,
    kind=st.sampled_from(["gateway.request", "scan.completed", "a.b_c.d9"]),
)
def test_canonical_event_is_the_canonical_payload(
    actor: str, subject: str, data: dict[str, object], moment: datetime, kind: str
) -> None:
    event = Event(type=kind, actor=actor, subject=subject, data=data, occurred_at=moment)
    stamp, data_json, payload = canonical_event(event)
    assert payload == canonical_json(event.payload())
    assert stamp == format_timestamp(moment)
    assert data_json == canonical_json(data).decode("utf-8")
    record = link([event])[0]
    assert record.hash == chain_hash(GENESIS_HASH, event)
    assert (record.occurred, record.data_json) == (stamp, data_json)
