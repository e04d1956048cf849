"""The Hugging Face hub cache layout: snapshot links into content-addressed blobs.

``huggingface_hub`` keeps each repository under ``<cache>/models--<org>--<name>/`` as
``blobs/<sha>`` (the file contents, named by their git or LFS hash), ``refs/<branch>`` (a commit
hash) and ``snapshots/<commit>/<path>``: a tree of relative symbolic links into ``blobs/``. A
scanner that never follows links (as Garrison's walker does not) would otherwise see only opaque
blob names, or, given a snapshot folder, nothing but links that leave it. This module recognises
exactly that layout, and nothing looser: a link counts only when it sits under its repository's
``snapshots/`` and resolves to a regular file directly in the same repository's ``blobs/`` with a
hexadecimal name.

Nothing here touches the network; a repository that is not in the local cache is an error.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from garrison.core.errors import UsageError

REPO_DIR = re.compile(r"^(models|datasets|spaces)--[^/\\]+$")
"""Name of a repository folder in the cache."""
_BLOB_NAME = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)?$")


def is_repo_dir(path: Path) -> bool:
    """Whether ``path`` looks like a repository folder of the cache (``models--org--name``)."""
    return REPO_DIR.match(path.name) is not None and (path / "snapshots").is_dir()


def snapshot_blob(link: Path) -> Path | None:
    """The blob a snapshot link points to, or ``None`` when ``link`` is not such a link."""
    try:
        target = os.readlink(link)
    except (OSError, ValueError):
        return None
    blob = Path(os.path.normpath(os.path.join(os.path.realpath(link.parent), target)))
    blobs = blob.parent
    repo = blobs.parent
    if blobs.name != "blobs" or _BLOB_NAME.match(blob.name) is None or REPO_DIR.match(repo.name) is None:
        return None
    if not Path(os.path.realpath(link.parent)).is_relative_to(repo / "snapshots"):
        return None
    try:
        mode = os.lstat(blob).st_mode
    except OSError:
        return None
    return blob if stat.S_ISREG(mode) else None


def cache_dir() -> Path:
    """The hub cache folder, found the way ``huggingface_hub`` finds it."""
    if explicit := os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(explicit).expanduser()
    if home := os.environ.get("HF_HOME"):
        return Path(home).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def looks_like_repo_id(text: str) -> bool:
    """Whether ``text`` could be a hub repository id (``org/name`` or ``name``)."""
    return _REPO_ID.match(text) is not None and ".." not in text


def find_snapshot(
    repo_id: str, *, revision: str = "main", cache: Path | None = None, repo_type: str = "model"
) -> Path:
    """The local snapshot folder of ``repo_id`` at ``revision`` (a branch, tag or commit hash).

    Raises ``UsageError`` naming where it looked when the repository or revision is not cached.
    """
    root = cache if cache is not None else cache_dir()
    if not looks_like_repo_id(repo_id):
        raise UsageError(f"{repo_id!r} is not a path and not a Hugging Face repository id")
    folder = root / f"{repo_type}s--{repo_id.replace('/', '--')}"
    if not folder.is_dir():
        raise UsageError(
            f"{repo_id!r} is neither a path nor in the local Hugging Face cache ({root})",
            hint="download it first (for example 'huggingface-cli download "
            f"{repo_id}'), or set HF_HUB_CACHE; Garrison never downloads models",
        )
    commit = revision if _COMMIT.match(revision) else None
    ref = folder / "refs" / revision
    if commit is None and ref.is_file():
        commit = ref.read_text(encoding="ascii", errors="replace").strip()
    snapshot = folder / "snapshots" / (commit or revision)
    if commit is None or not snapshot.is_dir() or _COMMIT.match(commit) is None:
        cached = sorted(p.name for p in (folder / "snapshots").glob("*") if p.is_dir())
        raise UsageError(
            f"revision {revision!r} of {repo_id!r} is not in the local cache ({folder})",
            hint=("cached revisions: " + ", ".join(cached)) if cached else "no snapshot is cached",
        )
    return snapshot


__all__ = ["REPO_DIR", "cache_dir", "find_snapshot", "is_repo_dir", "looks_like_repo_id", "snapshot_blob"]
