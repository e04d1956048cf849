"""Walking a path: every file to scan, in a stable order, within limits, never through links."""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from garrison.formats.hfcache import REPO_DIR, snapshot_blob


@dataclass(frozen=True, slots=True, kw_only=True)
class FileEntry:
    """A regular file to scan."""

    path: Path
    locator: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkEntry:
    """A symbolic link; ``escapes`` when its target lies outside the root."""

    path: Path
    locator: str
    target: str
    escapes: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class SkipEntry:
    """Something not scanned on purpose (excluded, not a regular file)."""

    locator: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ProblemEntry:
    """Something that could not be read (a directory without permission, ...)."""

    locator: str
    message: str


Entry = FileEntry | LinkEntry | SkipEntry | ProblemEntry


def _excluder(patterns: Sequence[str]) -> Callable[[str], bool]:
    """Whether a name matches any of ``patterns`` (``fnmatch.fnmatchcase``), as one compiled regex."""
    if not patterns:
        return lambda name: False
    match = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns)).match
    return lambda name: match(name) is not None


def _locator(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path != root else path.name


def walk(target: Path, *, exclude: Sequence[str]) -> Iterator[Entry]:
    """Yield every entry under ``target`` (a file or a directory), sorted by path.

    Links are reported, never followed, with one exception: a Hugging Face cache snapshot link
    into its repository's ``blobs/`` (see :mod:`garrison.formats.hfcache`) is scanned under the
    snapshot's file name, and each blob is scanned once. A single file is its own root.
    """
    root = target.parent if not target.is_dir() or target.is_symlink() else target
    real_root = root.resolve()
    seen: dict[str, str] = {}
    if not target.is_dir() or target.is_symlink():
        yield from _entry(target, root, real_root, seen)
        return
    excluded = _excluder(exclude)
    stack = [target]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as listing:
                children = sorted(listing, key=lambda e: e.name, reverse=True)
        except OSError as exc:
            yield ProblemEntry(
                locator=_locator(directory, root) or ".",
                message=f"directory cannot be read: {exc.strerror or exc}",
            )
            continue
        subdirs: list[Path] = []
        if REPO_DIR.match(directory.name) is not None:
            # Snapshots (named files) before blobs (hash names), so each blob is named once.
            children.sort(key=lambda e: (e.name == "blobs", e.name), reverse=True)
        for child in reversed(children):
            path = Path(child.path)
            if excluded(child.name):
                yield SkipEntry(locator=_locator(path, root), reason="excluded by pattern")
                continue
            if child.is_dir(follow_symlinks=False):
                subdirs.append(path)
            else:
                yield from _entry(path, root, real_root, seen)
        stack.extend(reversed(subdirs))


def _entry(path: Path, root: Path, real_root: Path, seen: dict[str, str]) -> Iterator[Entry]:
    locator = _locator(path, root)
    if path.is_symlink():
        blob = snapshot_blob(path)
        if blob is not None:
            key = str(blob)
            if key in seen:
                yield SkipEntry(locator=locator, reason=f"same Hugging Face blob as {seen[key]}")
            else:
                seen[key] = locator
                yield FileEntry(path=path, locator=locator)
            return
        try:
            target = os.readlink(path)
        except OSError as exc:
            yield ProblemEntry(locator=locator, message=f"link cannot be read: {exc.strerror}")
            return
        resolved = (path.parent / target).resolve()
        escapes = not resolved.is_relative_to(real_root)
        yield LinkEntry(path=path, locator=locator, target=target, escapes=escapes)
        return
    try:
        mode = path.lstat().st_mode
    except OSError as exc:
        yield ProblemEntry(locator=locator, message=f"cannot be read: {exc.strerror}")
        return
    if stat.S_ISREG(mode):
        if path.parent.name == "blobs" and str(path.resolve()) in seen:
            yield SkipEntry(
                locator=locator, reason=f"Hugging Face blob, scanned as {seen[str(path.resolve())]}"
            )
        else:
            yield FileEntry(path=path, locator=locator)
    else:
        yield SkipEntry(locator=locator, reason="not a regular file (device, socket or pipe)")
