"""The file under identification: its head, its size, and bounded reads of the rest."""

from __future__ import annotations

from pathlib import Path
from typing import IO

from garrison.core.errors import InputError, ResourceLimitError
from garrison.formats.info import READ_BUDGET


def _open(path: Path) -> IO[bytes]:
    """Open ``path`` for reading (a seam for tests that count bytes read)."""
    return path.open("rb")


class Source:
    """A file being identified. Reads past the head are counted against a byte budget."""

    def __init__(self, path: Path, head: bytes, size: int, *, budget: int = READ_BUDGET) -> None:
        self.path = path
        """Where the file is."""
        self.head = head
        """Its first bytes, already read."""
        self.size = max(size, len(head))
        """Its size in bytes."""
        self.budget = budget
        """Bytes that may still be read beyond the head."""
        self._handle: IO[bytes] | None = None

    @property
    def whole(self) -> bool:
        """Whether the head holds the whole file."""
        return len(self.head) >= self.size

    def read_at(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset`` (fewer at the end of the file).

        Bytes inside the head are free; the rest count against the budget, and a read that would
        exceed it raises :class:`ResourceLimitError` without reading anything.
        """
        offset = max(offset, 0)
        length = max(min(length, self.size - offset), 0)
        if offset + length <= len(self.head):
            return self.head[offset : offset + length]
        if length > self.budget:
            raise ResourceLimitError(
                f"{self.path.name}: identification needs {length} more bytes than its read budget",
                limit="identify-read-bytes",
                value=length,
            )
        self.budget -= length
        try:
            if self._handle is None:
                self._handle = _open(self.path)
            self._handle.seek(offset)
            return self._handle.read(length)
        except OSError as exc:
            raise InputError(f"{self.path}: cannot be read ({exc.strerror or exc})") from None

    def tail(self, length: int) -> bytes:
        """The last ``length`` bytes (or the whole file when it is shorter)."""
        return self.read_at(self.size - length, length)

    def close(self) -> None:
        """Close the file if it was opened."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
