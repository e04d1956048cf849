"""Small files without a second read: the head the engine already read is the whole file."""

from __future__ import annotations

from garrison.core.registry import FileTarget


def whole_file(target: FileTarget) -> bytes | None:
    """``target``'s bytes when its head holds all of them (files up to 64 KiB), else ``None``.

    The engine reads each file's head once and records the size it found; a detector that would
    open the file again to read what the head already holds reads the head instead.
    """
    size = target.asset.size
    if size is not None and len(target.head) == size:
        return target.head
    return None
