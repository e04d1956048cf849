"""Shared wording and safety helpers."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from garrison.core.assets import Asset, AssetKind
from garrison.core.findings import Location
from garrison.report.common import (
    asset_uri,
    duration_text,
    is_web_url,
    iso_utc,
    location_text,
    printable,
    size_text,
)

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@given(st.text())
def test_printable_leaves_no_control_or_bidi_characters(text: str) -> None:
    assert not _CONTROL.search(printable(text))


def test_printable_shows_what_it_replaced() -> None:
    assert printable("a\x1b[31mb\u202ec\n\td") == "a\\x1b[31mb\\u202ec\n\td"


def test_iso_utc_converts_to_utc_and_treats_naive_as_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert iso_utc(datetime(2024, 5, 1, 14, 0, tzinfo=plus_two)) == "2024-05-01T12:00:00Z"
    naive = datetime(2024, 5, 1, 12, 0)  # noqa: DTZ001 - naive on purpose: read as UTC
    assert iso_utc(naive) == "2024-05-01T12:00:00Z"
    assert iso_utc(datetime(2024, 5, 1, 12, 0, tzinfo=UTC)) == "2024-05-01T12:00:00Z"


def test_duration_and_size_read_like_a_person_wrote_them() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    assert duration_text(start, start + timedelta(milliseconds=250)) == "250 ms"
    assert duration_text(start, start + timedelta(seconds=3.25)) == "3.2 s"
    assert duration_text(start, start + timedelta(seconds=245)) == "4 min 05 s"
    assert size_text(None) == ""
    assert size_text(512) == "512 B"
    assert size_text(1536) == "1.5 KiB"


def test_location_text_names_every_present_field() -> None:
    assert location_text(Location()) == ""
    text = location_text(Location(member="a/b.pkl", offset=26, row=3, column="email", request_id="r1"))
    assert text == "member a/b.pkl, offset 26 (0x1a), row 3, column email, request r1"


def test_asset_uri_is_relative_only_for_relative_paths() -> None:
    def uri(locator: str, kind: AssetKind = AssetKind.FILE) -> tuple[str, bool]:
        return asset_uri(Asset(kind=kind, locator=locator))

    assert uri("models/my model#1.pkl") == ("models/my%20model%231.pkl", True)
    assert uri("./a.pkl") == ("a.pkl", True)
    assert uri("dir\\a.pkl") == ("dir/a.pkl", True)
    assert uri("/abs/a.pkl") == ("file:///abs/a.pkl", False)
    assert uri("C:\\m\\a.pkl") == ("file:///C:/m/a.pkl", False)
    assert uri("https://h.test/v1", AssetKind.ENDPOINT) == ("https://h.test/v1", False)


def test_only_http_links_are_links() -> None:
    assert is_web_url("https://cwe.mitre.org/x")
    assert not is_web_url("javascript:alert(1)")
    assert not is_web_url("https:nohost")
    assert not is_web_url(None)
