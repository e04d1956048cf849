"""Checks of an ONNX external-data location against the model's directory, on paper and on disk.

On disk the checks use ``lstat`` and ``realpath`` only: they see where links point, never open
or read what they point to. Each problem has a :data:`PathKind`; the supply-chain scanner maps kinds
to its rules (GAR-ONNX-101 to 105), the assessment adapters refuse the model on any of them.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from garrison.formats.hfcache import snapshot_blob

PathKind = Literal["malformed", "absolute", "traversal", "symlink", "hardlink"]
"""What is wrong with a location: malformed entries, an absolute path, a climb out of the model's
directory, a link that leads out of it, or a data file with several hard links."""

_ABSOLUTE = re.compile(r"^(?:[/\\]|[A-Za-z]:|~)")


@dataclass(frozen=True, slots=True, kw_only=True)
class PathIssue:
    """One problem with an external-data location."""

    kind: PathKind
    """What sort of problem it is."""
    message: str
    """The problem in words."""


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    return int(value) if value.isdigit() else -1


def check_entry(model_dir: Path, entries: dict[str, str]) -> list[PathIssue]:
    """Problems of one tensor's external-data entries, relative to ``model_dir``."""
    location = entries.get("location")
    if not location:
        return [PathIssue(kind="malformed", message="external data has no location")]
    if "\x00" in location:
        return [PathIssue(kind="malformed", message="external data location contains a NUL byte")]
    issues = []
    offset, length = _int(entries.get("offset")), _int(entries.get("length"))
    if (offset is not None and offset < 0) or (length is not None and length < 0):
        issues.append(PathIssue(kind="malformed", message="external data offset or length is not a number"))
    if _ABSOLUTE.match(location):
        return [*issues, PathIssue(kind="absolute", message="external data location is absolute")]
    depth = 0
    parts = [p for p in location.replace("\\", "/").split("/") if p not in ("", ".")]
    for part in parts:
        depth += -1 if part == ".." else 1
        if depth < 0:
            return [
                *issues,
                PathIssue(
                    kind="traversal",
                    message="external data location climbs out of the model directory",
                ),
            ]
    return issues + _on_disk(model_dir, parts, offset, length)


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:
        return False


def _on_disk(model_dir: Path, parts: list[str], offset: int | None, length: int | None) -> list[PathIssue]:
    try:
        root = os.path.realpath(model_dir)
    except (OSError, ValueError):
        return []
    current = model_dir
    hub_blob = False
    for index, part in enumerate(parts):
        current = current / part
        try:
            info = os.lstat(current)
        except (OSError, ValueError):
            return []  # missing: nothing on disk to abuse
        if stat.S_ISLNK(info.st_mode):
            resolved = os.path.realpath(current)
            if index == len(parts) - 1 and snapshot_blob(current) is not None:
                hub_blob = True  # a Hugging Face cache snapshot: every file is a link into blobs/
            elif not _inside(resolved, root):
                which = "file" if index == len(parts) - 1 else "parent directory"
                return [
                    PathIssue(
                        kind="symlink",
                        message=f"external data {which} {part!r} is a symlink resolving outside the "
                        "model directory",
                    )
                ]
    try:
        final = os.stat(current)
    except (OSError, ValueError):
        return []
    if not hub_blob and not _inside(os.path.realpath(current), root):
        return [PathIssue(kind="symlink", message="external data resolves outside the model directory")]
    if not stat.S_ISREG(final.st_mode):
        return [PathIssue(kind="malformed", message="external data location is not a regular file")]
    issues = []
    if final.st_nlink > 1:
        issues.append(
            PathIssue(kind="hardlink", message=f"external data file has {final.st_nlink} hard links")
        )
    if (offset or 0) + (length or 0) > final.st_size:
        issues.append(
            PathIssue(kind="malformed", message="external data range runs past the end of its file")
        )
    return issues
