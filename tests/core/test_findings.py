from __future__ import annotations

import json
import os

from hypothesis import given
from hypothesis import strategies as st

from garrison.core.assets import Asset, AssetKind
from garrison.core.events import utc_now
from garrison.core.evidence import (
    ByteRange,
    Exchange,
    Metric,
    Observation,
    OpcodeRef,
    TextSpan,
    evidence_from_dict,
)
from garrison.core.findings import Finding, Location
from garrison.core.masking import mask, secret_hash
from garrison.core.results import ScanReport, SkippedRecord
from garrison.core.severity import Severity
from garrison.core.text import visible
from tests.core.test_severity_rules import make_rule

RULE = make_rule()
ASSET = Asset(kind=AssetKind.FILE, locator="models/a.pt", digest="sha256:" + "a" * 64, size=10)


def finding(**kw: object) -> Finding:
    args: dict[str, object] = {"rule": RULE, "asset": ASSET, "message": "m", "detector": "d"}
    args.update(kw)
    return Finding.create(**args)  # type: ignore[arg-type]


def test_severity_defaults_to_the_rules_and_can_be_overridden() -> None:
    assert finding().severity is Severity.MEDIUM
    assert finding(severity=Severity.CRITICAL).severity is Severity.CRITICAL


@given(
    offset_a=st.integers(0, 10**9),
    offset_b=st.integers(0, 10**9),
    row_a=st.integers(0, 10**6),
    row_b=st.integers(0, 10**6),
    message=st.text(max_size=40),
)
def test_fingerprint_ignores_positions_messages_and_content_digest(
    offset_a: int, offset_b: int, row_a: int, row_b: int, message: str
) -> None:
    a = finding(
        location=Location(member="archive/data.pkl", offset=offset_a, row=row_a),
        evidence=(OpcodeRef(index=offset_a, offset=offset_a, opcode="GLOBAL", argument="os system"),),
    )
    edited = Asset(kind=AssetKind.FILE, locator="models/a.pt", digest="sha256:" + "b" * 64, size=99)
    b = finding(
        asset=edited,
        message=message,
        location=Location(member="archive/data.pkl", offset=offset_b, row=row_b),
        evidence=(OpcodeRef(index=offset_b, offset=offset_b, opcode="GLOBAL", argument="os system"),),
    )
    assert a.fingerprint == b.fingerprint


def test_fingerprint_changes_with_rule_asset_member_and_evidence() -> None:
    base = finding(location=Location(member="m1"), evidence=(Observation(name="x", actual="1"),))
    others = [
        finding(
            rule=make_rule(id="GAR-TST-002"),
            location=Location(member="m1"),
            evidence=(Observation(name="x", actual="1"),),
        ),
        finding(
            asset=Asset(kind=AssetKind.FILE, locator="models/b.pt"),
            location=Location(member="m1"),
            evidence=(Observation(name="x", actual="1"),),
        ),
        finding(location=Location(member="m2"), evidence=(Observation(name="x", actual="1"),)),
        finding(location=Location(member="m1"), evidence=(Observation(name="x", actual="2"),)),
    ]
    assert len({base.fingerprint, *(o.fingerprint for o in others)}) == 5


def test_every_evidence_kind_round_trips() -> None:
    items = [
        ByteRange(start=1, end=9, description="header"),
        OpcodeRef(index=3, offset=17, opcode="REDUCE", argument="posix.system"),
        TextSpan(start=0, end=4, excerpt=mask("sk-abcdefghijklmnop"), value_hash=secret_hash("x"), score=0.9),
        Metric(name="robust-accuracy@0.1", value=0.2, threshold=0.3, comparison="<"),
        Observation(name="content-format", actual="pickle", expected="safetensors"),
        Exchange(request_id="r1", request="hi", response="ho"),
    ]
    for item in items:
        assert evidence_from_dict(item.to_dict()) == item


def test_masking_never_keeps_the_secret() -> None:
    secret = "sk-live-0123456789abcdefghij"
    masked = mask(secret)
    assert secret not in masked
    assert masked.startswith("sk-l")
    assert "28 chars" in masked
    assert mask("1234") == "**** (4 chars)"
    assert secret_hash(secret) == secret_hash(secret) != secret_hash(secret + "x")


def test_undecodable_bytes_and_lone_surrogates_are_written_out() -> None:
    name = os.fsdecode(b"models/bad\xff.pkl")  # how Python hands over a file name that is not UTF-8
    asset = Asset(kind=AssetKind.FILE, locator=name)
    assert asset.locator == "models/bad\\xff.pkl"
    made = finding(
        asset=asset,
        message=f"{name} imports os.system",
        location=Location(member="a\udcfe/b", column="c\ud800"),
        evidence=(OpcodeRef(index=1, offset=2, opcode="GLOBAL", argument="os\x00system"),),
    )
    assert made.message == "models/bad\\xff.pkl imports os.system"
    assert (made.location.member, made.location.column) == ("a\\xfe/b", "c\\ud800")
    assert made.evidence[0].to_dict()["argument"] == "os\\x00system"
    json.dumps(made.asset.locator).encode("utf-8")  # every report format can write it now
    skipped = SkippedRecord(locator=name, reason="excluded")
    assert skipped.locator == "models/bad\\xff.pkl"
    report = ScanReport.of(name, assets=[asset], findings=[made], started_at=utc_now())
    assert report.target == "models/bad\\xff.pkl"
    plain = "models/a.pt"
    assert Asset(kind=AssetKind.FILE, locator=plain).locator is plain  # unchanged text is not copied
    assert visible("ok \u00e9\u4e2d") == "ok \u00e9\u4e2d"


def test_nul_characters_in_names_and_messages_stay_visible() -> None:
    hostile = Asset(kind=AssetKind.FILE, locator="a\x00b.pkl")
    assert hostile.locator == "a\\x00b.pkl"
    made = finding(asset=hostile, message="global os\x00system")
    assert made.message == "global os\\x00system"
