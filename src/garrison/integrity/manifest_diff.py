"""What changed between two manifests of the same tree, or a manifest and a signed statement.

:func:`compare` lists files changed (with the byte ranges that differ, for shard manifests), added
and removed; :func:`render_diff` prints it, one line per file. A rename shows as one removal and
one addition.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from garrison.core.errors import UsageError
from garrison.integrity.manifest import Manifest


@dataclass(frozen=True, slots=True, kw_only=True)
class FileChange:
    """A file present in both manifests whose content differs."""

    path: str
    """POSIX path relative to the root."""
    old_size: int
    """Size in the old manifest; -1 when unknown (a whole-file signature records no sizes)."""
    new_size: int
    """Size in the new manifest."""
    ranges: tuple[tuple[int, int], ...] = ()
    """Byte ranges ``[start, end)`` that differ (shards mode; empty in files mode)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestDiff:
    """What changed between two manifests of the same tree."""

    changed: tuple[FileChange, ...]
    """Files in both whose content differs, by path."""
    added: tuple[str, ...]
    """Files only in the new manifest."""
    removed: tuple[str, ...]
    """Files only in the old manifest."""
    unchanged: int
    """Number of files identical in both."""

    @property
    def is_empty(self) -> bool:
        """True when nothing changed, appeared or disappeared."""
        return not (self.changed or self.added or self.removed)

    def summary(self) -> str:
        """One line: counts of changed, added, removed and unchanged files."""
        return (
            f"{len(self.changed)} changed, {len(self.added)} added, "
            f"{len(self.removed)} removed, {self.unchanged} unchanged"
        )


def _by_file(m: Manifest) -> dict[str, dict[tuple[int, int], str]]:
    out: dict[str, dict[tuple[int, int], str]] = {}
    for e in m.entries:
        out.setdefault(e.path, {})[(e.start or 0, e.end if e.end is not None else e.size)] = e.digest
    return out


def _merge(ranges: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for s, e in sorted(ranges):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return tuple(merged)


def _how(m: Manifest) -> str:
    return m.algorithm + (f"/shards of {m.shard_size}" if m.mode == "shards" else "/files")


def compare(old: Manifest, new: Manifest) -> ManifestDiff:
    """Files changed, added and removed from ``old`` to ``new``.

    Both must use the same algorithm, mode and shard size (else :class:`UsageError`): digests made
    differently cannot be compared. A rename shows as one removal and one addition.
    """
    if (old.algorithm, old.mode, old.shard_size) != (new.algorithm, new.mode, new.shard_size):
        raise UsageError(
            "manifests were built differently and cannot be compared",
            hint=f"old: {_how(old)}, new: {_how(new)}; rebuild one with the other's settings",
        )
    a, b = _by_file(old), _by_file(new)
    sa, sb = old.file_sizes(), new.file_sizes()
    changed: list[FileChange] = []
    unchanged = 0
    for p in sorted(a.keys() & b.keys(), key=lambda s: tuple(s.split("/"))):
        if a[p] == b[p]:
            unchanged += 1
            continue
        ranges: tuple[tuple[int, int], ...] = ()
        if old.mode == "shards":
            keys = a[p].keys() | b[p].keys()
            ranges = _merge(k for k in keys if a[p].get(k) != b[p].get(k))
        changed.append(FileChange(path=p, old_size=sa[p], new_size=sb[p], ranges=ranges))

    def order(paths: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted(paths, key=lambda s: tuple(s.split("/"))))

    return ManifestDiff(
        changed=tuple(changed),
        added=order(b.keys() - a.keys()),
        removed=order(a.keys() - b.keys()),
        unchanged=unchanged,
    )


def render_diff(diff: ManifestDiff) -> str:
    """Human-readable report: one line per changed, added or removed file, then the summary."""
    lines: list[str] = []
    for c in diff.changed:
        if c.old_size < 0:  # a signature in files mode does not record sizes
            size = f"{c.new_size:,} bytes now"
        elif c.old_size != c.new_size:
            size = f"{c.old_size:,} → {c.new_size:,} bytes"
        else:
            size = f"{c.new_size:,} bytes"
        where = f"; bytes {', '.join(f'{s:,}–{e:,}' for s, e in c.ranges)}" if c.ranges else ""
        lines.append(f"changed  {c.path} ({size}{where})")
    lines.extend(f"added    {p}" for p in diff.added)
    lines.extend(f"removed  {p}" for p in diff.removed)
    lines.append(diff.summary() if not diff.is_empty else f"no changes ({diff.unchanged} files unchanged)")
    return "\n".join(lines)


__all__ = ["FileChange", "ManifestDiff", "compare", "render_diff"]
