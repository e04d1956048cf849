"""The engine opens generic archives, recursing within limits, and reports archive abuse."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import struct
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from garrison.core.config import Settings
from garrison.core.findings import Finding
from garrison.core.registry import FileDetector, FileTarget, Registry
from garrison.core.results import ScanReport
from garrison.core.rules import Rule
from garrison.core.severity import Severity
from garrison.engine import archives
from garrison.engine.rules import ENGINE_RULES
from garrison.engine.runner import scan_path

MARKER = Rule(
    id="GAR-TST-001",
    name="marker-found",
    title="marker",
    severity=Severity.HIGH,
    description="test rule",
    remediation="none",
    cwe=("CWE-20",),
)


class MarkerDetector(FileDetector):
    """Flags every file whose bytes contain EVIL, and records what it saw."""

    name: ClassVar[str] = "marker"
    summary: ClassVar[str] = "test"
    rules: ClassVar[tuple[Rule, ...]] = (MARKER,)
    seen: ClassVar[list[tuple[str, str | None, str | None]]] = []

    def scan(self, target: FileTarget) -> Iterator[Finding]:
        MarkerDetector.seen.append((target.asset.locator, target.asset.format, target.member))
        with target.open() as handle:
            if b"EVIL" in handle.read():
                yield Finding.create(rule=MARKER, asset=target.asset, message="marker", detector=self.name)


def _scan(path: Path, **settings: int) -> ScanReport:
    registry = Registry()
    registry.add_rules(ENGINE_RULES, owner="engine")
    registry.add(MarkerDetector)
    MarkerDetector.seen = []
    return scan_path(path, settings=Settings(store=False, **settings), registry=registry)


def _zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def _rules(report: ScanReport) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for finding in report.findings:
        found.setdefault(finding.rule.id, set()).add(finding.asset.locator)
    return found


def test_zip_in_zip_members_are_scanned_with_nested_locators(tmp_path: Path) -> None:
    inner = _zip({"model/evil.bin": b"xxEVILxx", "ok.txt": b"fine"})
    (tmp_path / "outer.zip").write_bytes(_zip({"inner.zip": inner, "readme.md": b"# hi"}))
    report = _scan(tmp_path / "outer.zip")
    assert _rules(report)["GAR-TST-001"] == {"outer.zip!inner.zip!model/evil.bin"}
    members = {member for _, _, member in MarkerDetector.seen}
    assert "inner.zip!model/evil.bin" in members
    assert report.complete
    assert not list(tmp_path.iterdir())[1:]  # no temporary files left next to the input


def test_junk_before_a_zip_does_not_hide_its_members(tmp_path: Path) -> None:
    (tmp_path / "x.zip").write_bytes(b"MZ" + b"\x00" * 300 + _zip({"a.bin": b"EVIL"}))
    assert "x.zip!a.bin" in _rules(_scan(tmp_path / "x.zip"))["GAR-TST-001"]


@pytest.mark.parametrize(
    ("suffix", "pack"),
    [
        (".gz", gzip.compress),
        (".bz2", bz2.compress),
        (".xz", lzma.compress),
    ],
)
def test_compressed_streams_are_opened(tmp_path: Path, suffix: str, pack: object) -> None:
    assert callable(pack)
    (tmp_path / f"payload.bin{suffix}").write_bytes(pack(b"header EVIL " * 10))
    assert _rules(_scan(tmp_path / f"payload.bin{suffix}"))["GAR-TST-001"] == {
        f"payload.bin{suffix}!payload.bin"
    }


def _tar(path: Path, mode: str, members: list[tarfile.TarInfo], data: dict[str, bytes]) -> None:
    with tarfile.open(path, mode) as tar:
        for info in members:
            payload = data.get(info.name)
            if payload is not None:
                info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload) if payload is not None else None)


def test_tar_traversal_and_links_are_reported(tmp_path: Path) -> None:
    evil = tarfile.TarInfo("../../etc/cron.d/job")
    absolute = tarfile.TarInfo("/tmp/abs.txt")
    link = tarfile.TarInfo("config.json")
    link.type, link.linkname = tarfile.SYMTYPE, "/home/user/.ssh/id_rsa"
    hard = tarfile.TarInfo("weights.bin")
    hard.type, hard.linkname = tarfile.LNKTYPE, "../outside"
    inside = tarfile.TarInfo("alias")
    inside.type, inside.linkname = tarfile.SYMTYPE, "model/a.bin"
    ok = tarfile.TarInfo("model/a.bin")
    _tar(
        tmp_path / "m.tar.gz",
        "w:gz",
        [evil, absolute, link, hard, inside, ok],
        {"../../etc/cron.d/job": b"EVIL", "/tmp/abs.txt": b"x", "model/a.bin": b"ok"},
    )
    report = _scan(tmp_path / "m.tar.gz")
    messages = " ".join(f.message for f in report.findings)
    rules = _rules(report)
    assert rules["GAR-ARC-101"] == {"m.tar.gz"}
    assert "../../etc/cron.d/job" in messages
    assert "/tmp/abs.txt" in messages
    assert {f.location.member for f in report.findings if f.rule.id == "GAR-ARC-102"} == {
        "config.json",
        "weights.bin",
    }
    assert "m.tar.gz!../../etc/cron.d/job" in rules["GAR-TST-001"]  # still scanned


def test_zip_slip_and_zip_symlinks(tmp_path: Path) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("../evil.py", b"print()")
        info = zipfile.ZipInfo("link")
        info.external_attr = 0o120777 << 16
        archive.writestr(info, "../../etc/passwd")
    (tmp_path / "a.zip").write_bytes(out.getvalue())
    rules = _rules(_scan(tmp_path / "a.zip"))
    assert "GAR-ARC-101" in rules
    assert "GAR-ARC-102" in rules


def test_nesting_deeper_than_the_limit_is_a_finding_and_incomplete(tmp_path: Path) -> None:
    blob = _zip({"deep.bin": b"EVIL"})
    for level in range(6):
        blob = _zip({f"level{level}.zip": blob})
    (tmp_path / "nest.zip").write_bytes(blob)
    report = _scan(tmp_path / "nest.zip")
    assert "GAR-ARC-202" in _rules(report)
    assert not report.complete


def test_a_zip_bomb_ends_in_a_finding(tmp_path: Path) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.bin", b"\x00" * (64 * 2**20))
    (tmp_path / "bomb.zip").write_bytes(out.getvalue())
    report = _scan(tmp_path / "bomb.zip")
    assert "GAR-ARC-201" in _rules(report)
    assert not report.complete


def test_member_count_limit(tmp_path: Path) -> None:
    (tmp_path / "many.zip").write_bytes(_zip({f"f{i}": b"x" for i in range(10)}))
    report = _scan(tmp_path / "many.zip", archive_max_members=3)
    assert "GAR-ARC-202" in _rules(report)
    assert not report.complete
    assert any("more than 3 archive members" in e.message for e in report.errors)


def test_depth_and_ratio_limits_come_from_settings(tmp_path: Path) -> None:
    (tmp_path / "one.zip").write_bytes(_zip({"inner.zip": _zip({"a.txt": b"hello"})}))
    assert "GAR-ARC-202" in _rules(_scan(tmp_path / "one.zip", archive_max_depth=1))
    assert "GAR-ARC-202" not in _rules(_scan(tmp_path / "one.zip", archive_max_depth=2))
    (tmp_path / "z.zip").write_bytes(_zip({"zeros.bin": b"\x00" * (4 * 2**20)}))
    assert "GAR-ARC-201" in _rules(_scan(tmp_path / "z.zip", archive_max_ratio=50))
    assert "GAR-ARC-201" not in _rules(_scan(tmp_path / "z.zip", archive_max_ratio=2000))


def test_7z_without_py7zr_is_reported_not_scannable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "py7zr", None)  # as if the 'archives' extra were not installed
    (tmp_path / "model.7z").write_bytes(b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\x00" * 40)
    report = _scan(tmp_path / "model.7z")
    assert not report.complete
    assert any("py7zr" in e.message for e in report.errors)


def _seven(members: dict[str, bytes], *, plain: bool = False) -> bytes:
    py7zr = pytest.importorskip("py7zr")
    out = io.BytesIO()
    with py7zr.SevenZipFile(out, "w") as archive:
        if plain:
            archive.set_encoded_header_mode(False)
        for name, data in members.items():
            archive.writestr(data, name)
    return out.getvalue()


def _renamed(data: bytes, old: str, new: str) -> bytes:
    """Rename a member in a 7z with a plain header (py7zr refuses to write '../' names)."""
    offset, size = struct.unpack_from("<QQ", data, 12)
    start = 32 + offset
    header = data[start : start + size].replace(old.encode("utf-16-le"), new.encode("utf-16-le"))
    out = bytearray(data[:start] + header + data[start + size :])
    struct.pack_into("<I", out, 28, zlib.crc32(header))
    struct.pack_into("<I", out, 8, zlib.crc32(bytes(out[12:32])))
    return bytes(out)


def test_a_7z_compressed_pytorch_checkpoint_is_opened_and_its_pickle_scanned(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from garrison.detectors import default_registry

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, ("true",))  # pickled by reference, never called

    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2), "x": Evil()}, buffer)
    (tmp_path / "weights.7z").write_bytes(
        _seven({"pytorch_model.bin": buffer.getvalue(), "a/readme.txt": b"hi"})
    )
    report = scan_path(tmp_path / "weights.7z", settings=Settings(store=False), registry=default_registry())
    hits = {(f.asset.locator, f.rule.id) for f in report.findings}
    assert ("weights.7z!pytorch_model.bin", "GAR-PKL-001") in hits
    assert report.complete


def test_7z_bombs_and_traversal_names_are_findings(tmp_path: Path) -> None:
    (tmp_path / "bomb.7z").write_bytes(_seven({"zeros.bin": b"\x00" * (8 * 2**20)}))
    report = _scan(tmp_path / "bomb.7z")
    assert "GAR-ARC-201" in _rules(report)
    assert not report.complete
    (tmp_path / "evil.7z").write_bytes(
        _renamed(_seven({"aa/aa/escape.txt": b"x"}, plain=True), "aa/aa/", "../../")
    )
    assert "GAR-ARC-101" in _rules(_scan(tmp_path / "evil.7z"))
    assert not (tmp_path.parent / "escape.txt").exists()
    (tmp_path / "many.7z").write_bytes(_seven({f"f{i}": b"x" for i in range(6)}))
    assert "GAR-ARC-202" in _rules(_scan(tmp_path / "many.7z", archive_max_members=3))
    (tmp_path / "broken.7z").write_bytes(_seven({"a": b"hello" * 100})[:-20])
    assert not _scan(tmp_path / "broken.7z").complete


def test_model_formats_built_on_zip_are_not_expanded(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.zeros(2)}, tmp_path / "m.pt")
    _scan(tmp_path / "m.pt")
    assert [loc for loc, _, _ in MarkerDetector.seen] == ["m.pt"]


def test_escape_checks() -> None:
    for name in ("../x", "/abs", "C:\\win", "a/../../b"):
        assert archives.escapes(name)
    for name in ("a/../b", "a/b"):
        assert not archives.escapes(name)


def test_a_member_past_the_byte_limit_is_a_limit_finding_not_a_silent_truncation(tmp_path: Path) -> None:
    # Random bytes barely compress, so only the expanded-bytes limit can stop them.
    (tmp_path / "big.zip").write_bytes(_zip({"noise.bin": os.urandom(300_000)}))
    report = _scan(tmp_path / "big.zip", archive_max_expanded_bytes=100_000)
    assert "GAR-ARC-202" in _rules(report) or "GAR-ARC-201" in _rules(report)
    assert not report.complete
    assert any("100000" in e.message for e in report.errors)


def test_7z_members_draw_on_one_byte_budget(tmp_path: Path) -> None:
    members = {"a.bin": os.urandom(60_000), "b.bin": os.urandom(60_000)}
    (tmp_path / "two.7z").write_bytes(_seven(members))
    report = _scan(tmp_path / "two.7z", archive_max_expanded_bytes=100_000)
    assert not report.complete
    assert any("100000" in e.message for e in report.errors)
    assert _scan(tmp_path / "two.7z", archive_max_expanded_bytes=200_000).complete
