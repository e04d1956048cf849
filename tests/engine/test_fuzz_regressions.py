"""Bombs, deep nesting and huge member counts end in resource-limit findings (issue 3 robustness).

Complements tests/engine/test_archives.py, which already covers a deflate zip bomb (GAR-ARC-201),
zips nested deeper than the limit (GAR-ARC-202) and the engine's member budget (GAR-ARC-202, with
the budget lowered): here the other shapes the fuzzer (benchmarks/fuzz/run.py) builds, scanned
with every built-in detector, and without lowering any limit.
"""

from __future__ import annotations

import bz2
import gzip
import io
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from garrison.core.config import Settings
from garrison.core.results import ScanReport
from garrison.detectors import default_registry
from garrison.engine.archives import MAX_DEPTH
from garrison.engine.runner import scan_path
from garrison.formats.zipreader import MAX_ENTRIES
from garrison.supplychain.pickle import DEFAULT_LIMITS

ZEROS = b"\x00" * (32 * 2**20)


def scan(path: Path) -> ScanReport:
    return scan_path(
        path, settings=Settings(store=False, progress=False), registry=default_registry(plugins=False)
    )


def _rules(report: ScanReport) -> set[str]:
    return {f.rule.id for f in report.findings}


def _no_bug(report: ScanReport) -> None:
    assert not [e.message for e in report.errors if "Garrison bug" in e.message]


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


@pytest.mark.parametrize(("suffix", "pack"), [(".gz", gzip.compress), (".bz2", bz2.compress)])
def test_a_compressed_stream_bomb_ends_in_a_bomb_finding(tmp_path: Path, suffix: str, pack: object) -> None:
    assert callable(pack)
    path = tmp_path / f"weights.bin{suffix}"
    path.write_bytes(pack(ZEROS))
    report = scan(path)
    assert "GAR-ARC-201" in _rules(report)
    assert not report.complete
    _no_bug(report)


def test_a_bomb_inside_a_zip_inside_a_zip_is_found_at_its_level(tmp_path: Path) -> None:
    inner = _zip({"zeros.bin": ZEROS})
    (tmp_path / "outer.zip").write_bytes(_zip({"inner.zip": inner, "readme.txt": b"hi"}, zipfile.ZIP_STORED))
    report = scan(tmp_path / "outer.zip")
    bombs = {f.asset.locator for f in report.findings if f.rule.id == "GAR-ARC-201"}
    assert bombs == {"outer.zip!inner.zip"}
    assert not report.complete
    _no_bug(report)


def test_compressed_streams_nested_past_the_depth_limit_end_in_a_limit_finding(tmp_path: Path) -> None:
    blob = b"payload"
    for _ in range(MAX_DEPTH + 2):
        blob = gzip.compress(blob)
    (tmp_path / "deep.bin.gz").write_bytes(blob)
    report = scan(tmp_path / "deep.bin.gz")
    assert "GAR-ARC-202" in _rules(report)
    assert not report.complete
    _no_bug(report)


def test_a_bomb_inside_a_pytorch_checkpoint_ends_in_a_limit_finding(tmp_path: Path) -> None:
    members = {"archive/data.pkl": ZEROS, "archive/version": b"3\n"}
    (tmp_path / "model.pt").write_bytes(_zip(members))
    report = scan(tmp_path / "model.pt")
    assert "GAR-SCAN-201" in _rules(report)
    assert any("expands more than" in f.message for f in report.findings if f.rule.id == "GAR-SCAN-201")
    assert not report.complete
    _no_bug(report)


def _zip_with_entries(count: int) -> bytes:
    """One real member and a zip64 central directory of ``count`` entries, all pointing at it."""
    data = b"x"
    crc = zlib.crc32(data)
    out = bytearray(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 0, 0, 0, crc, 1, 1, 1, 0) + b"a" + data)
    head = struct.Struct("<IHHHHHHIIIHHHHHII")
    central = b"".join(
        head.pack(0x02014B50, 45, 20, 0, 0, 0, 0, crc, 1, 1, len(name), 0, 0, 0, 0, 0, 0) + name
        for name in (b"f%d" % i for i in range(count))
    )
    cd_at = len(out)
    out += central
    z64 = len(out)
    out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, len(central), cd_at)
    out += struct.pack("<IIQI", 0x07064B50, 0, z64, 1)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return bytes(out)


@pytest.mark.slow
def test_a_directory_of_more_members_than_the_reader_allows_ends_in_limit_findings(tmp_path: Path) -> None:
    (tmp_path / "many.zip").write_bytes(_zip_with_entries(MAX_ENTRIES + 1))
    report = scan(tmp_path / "many.zip")
    limits = {f.rule.id: f.message for f in report.findings if f.rule.id in ("GAR-ARC-202", "GAR-SCAN-201")}
    assert set(limits) == {"GAR-ARC-202", "GAR-SCAN-201"}
    assert all(f"more than {MAX_ENTRIES} members" in message for message in limits.values())
    assert not report.complete
    _no_bug(report)


def test_a_pickle_nested_past_the_stack_limit_ends_in_a_limit_finding(tmp_path: Path) -> None:
    depth = DEFAULT_LIMITS.max_stack + 1
    (tmp_path / "deep.pkl").write_bytes(b"\x80\x02" + b"(" * depth + b"N" + b"t" * depth + b".")
    report = scan(tmp_path / "deep.pkl")
    assert "GAR-PKL-201" in _rules(report)
    _no_bug(report)
