"""Content digests: full, none, and 'auto' (only files up to digest-max-bytes)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from garrison.core.config import Settings
from garrison.detectors import default_registry
from garrison.engine.runner import scan_path


def _assets(root: Path, **settings: object) -> dict[str, tuple[str | None, int | None]]:
    report = scan_path(root, settings=Settings(store=False, **settings), registry=default_registry())
    return {a.locator: (a.digest, a.size) for a in report.assets}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "small.bin").write_bytes(b"a" * 100)
    (tmp_path / "large.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    return tmp_path


def test_auto_hashes_small_files_and_records_the_size_of_large_ones(tree: Path) -> None:
    assets = _assets(tree, digest_max_bytes=1000)
    assert assets["small.bin"] == ("sha256:" + hashlib.sha256(b"a" * 100).hexdigest(), 100)
    assert assets["large.bin"] == (None, 2**20)


def test_full_hashes_every_file(tree: Path) -> None:
    assets = _assets(tree, digest="full", digest_max_bytes=1000)
    large = (tree / "large.bin").read_bytes()
    assert assets["large.bin"] == ("sha256:" + hashlib.sha256(large).hexdigest(), 2**20)


def test_none_hashes_nothing_but_still_scans(tree: Path) -> None:
    (tree / "model.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")
    report = scan_path(tree, settings=Settings(store=False, digest="none"), registry=default_registry())
    assert all(a.digest is None for a in report.assets)
    assert "GAR-PKL-001" in {f.rule.id for f in report.findings}
    assert {a.locator: a.size for a in report.assets}["model.pkl"] == 23


def test_a_large_unhashed_pickle_is_still_analysed_past_the_head(tmp_path: Path) -> None:
    # The payload call sits after 2 MiB of bytes: the detector must read beyond the engine's head.
    padding = b"\x8e" + (2 * 2**20).to_bytes(8, "little") + b"\x00" * (2 * 2**20) + b"0"
    data = b"\x80\x04" + padding + b"\x8c\x02os\x8c\x06system\x93\x8c\x04true\x85R."
    (tmp_path / "big.pkl").write_bytes(data)
    report = scan_path(
        tmp_path, settings=Settings(store=False, digest_max_bytes=1), registry=default_registry()
    )
    assert report.assets[0].digest is None
    assert "GAR-PKL-001" in {f.rule.id for f in report.findings}
