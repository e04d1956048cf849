from __future__ import annotations

import os
from pathlib import Path

from garrison.engine.walker import FileEntry, LinkEntry, SkipEntry, walk


def tree(root: Path) -> None:
    (root / "models" / "deep").mkdir(parents=True)
    (root / "models" / "a.pt").write_bytes(b"a")
    (root / "models" / "deep" / "b.bin").write_bytes(b"b")
    (root / "data.csv").write_text("x,y\n1,2\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")


def test_walk_yields_every_file_sorted_and_skips_excluded(tmp_path: Path) -> None:
    tree(tmp_path)
    entries = list(walk(tmp_path, exclude=(".git",)))
    files = [e.locator for e in entries if isinstance(e, FileEntry)]
    assert files == ["data.csv", "models/a.pt", "models/deep/b.bin"]
    assert [e.locator for e in entries if isinstance(e, SkipEntry)] == [".git"]


def test_a_single_file_is_its_own_root(tmp_path: Path) -> None:
    tree(tmp_path)
    entries = list(walk(tmp_path / "models" / "a.pt", exclude=()))
    assert entries == [FileEntry(path=tmp_path / "models" / "a.pt", locator="a.pt")]


def test_links_are_reported_never_followed(tmp_path: Path) -> None:
    tree(tmp_path)
    outside = tmp_path.parent / (tmp_path.name + "-outside")
    outside.mkdir()
    (outside / "secret.txt").write_text("credentials")
    os.symlink(outside / "secret.txt", tmp_path / "models" / "escape.bin")
    os.symlink("a.pt", tmp_path / "models" / "alias.pt")
    os.symlink(outside, tmp_path / "linked-dir")
    links = {e.locator: e for e in walk(tmp_path, exclude=()) if isinstance(e, LinkEntry)}
    assert links["models/escape.bin"].escapes
    assert not links["models/alias.pt"].escapes
    assert links["linked-dir"].escapes
    files = [e.locator for e in walk(tmp_path, exclude=()) if isinstance(e, FileEntry)]
    assert "linked-dir/secret.txt" not in files


def test_special_files_are_skipped(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (entry,) = walk(tmp_path, exclude=())
    assert isinstance(entry, SkipEntry)
    assert "not a regular file" in entry.reason
