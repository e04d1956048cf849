"""Content-defined chunking of line files (CSV, JSON Lines, logs) for :mod:`garrison.integrity.datasets`.

Chunk boundaries fall only at line ends and are chosen by the ``WINDOW`` bytes before each newline
(and the line's length), so an edit moves only the boundaries near it and later chunks come out
identical. numpy is imported only when a chunker is made.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from io import FileIO
from typing import TYPE_CHECKING, Any, cast

from garrison.core.errors import MissingExtraError
from garrison.integrity.dataset_model import WINDOW, Chunk, _Hasher

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

_BLOCK = 16 << 20  # bytes read per step of the line chunker
# odd 64-bit multipliers for the boundary hash (any odd constants with mixed bits do)
_K1, _K2 = 0xD6E8FEB86659FD93, 0xA0761D6478BD642F
_STAGE = 8  # how many more newlines the first, cheap stage of the boundary test lets through


def _numpy() -> Any:
    try:
        import numpy
    except ImportError as exc:
        raise MissingExtraError("Dataset chunk digests", extra="data", module="numpy") from exc
    return numpy


def _cut_points(
    np: Any,
    buf: bytearray,
    filled: int,
    pos: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64],
    last_nl: int,
    spread: int,
) -> list[int]:
    """File offsets just after the newlines at buffer indexes ``pos`` where a chunk may end.

    A newline qualifies with probability ``min(1, line length / spread)``, decided by a hash of the
    ``WINDOW`` bytes before it and the line's length, so on average one qualifies every ``spread``
    bytes whatever the line lengths. Two stages keep it cheap: the last 16 bytes and the length
    pass ``_STAGE`` times as many newlines as needed, then the whole window decides among those.
    """
    # every buffer position read as a little-endian uint64 (unaligned, stride 1)
    words = np.ndarray(shape=(filled - 7,), dtype="<u8", buffer=buf, strides=(1,))
    prev = np.empty_like(ends)
    prev[0], prev[1:] = last_nl, ends[:-1]
    length = np.minimum(ends - prev, spread).astype(np.uint64)
    k1, k2, s = np.uint64(_K1), np.uint64(_K2), np.uint64(32)
    h = words[pos - 8] ^ length
    h *= k1
    h ^= h >> s
    h ^= words[pos - 16]
    h *= k2
    h ^= h >> s
    loose = np.minimum(length * np.uint64(_STAGE), np.uint64(spread))
    keep = np.flatnonzero((h >> s) * np.uint64(spread) < (loose << s))
    pos, h, length, loose = pos[keep], h[keep], length[keep], loose[keep]
    for back in range(24, WINDOW + 1, 8):
        h ^= words[pos - back]
        h *= k1
        h ^= h >> s
    h *= k2
    # overall: (loose / spread) * (length / loose) = length / spread
    chosen = ((h >> s) * loose) < (length << s)
    del words
    return cast(list[int], ends[keep[chosen]].tolist())


class _LineChunker:
    """Cuts a line file into content-defined chunks, reading ``block`` bytes at a time.

    Each buffer holds, in order: bytes carried from the previous step (at least ``WINDOW`` of them,
    and every byte not yet fed to the current chunk's hasher), then the new block. ``base`` is the
    file offset of ``buf[0]``; before the file starts it holds ``WINDOW`` zero bytes. Hashing runs on
    a second thread (hashlib releases the GIL) over one buffer while the next block is read into the
    other and scanned.
    """

    def __init__(self, params: tuple[int, int, int], new: Callable[[], _Hasher], block: int) -> None:
        self.np = _numpy()
        _, self.lo, self.hi = params
        self.spread = params[0] - self.lo  # mean distance from min to a cut: the average overall
        self.new, self.block = new, max(1, block)
        self.bufs = (bytearray(self.block + self.hi + WINDOW), bytearray(self.block + self.hi + WINDOW))
        self.cur = 0
        self.pending: list[Future[None] | None] = [None, None]
        self.ops: list[tuple[_Hasher, int, int, int]] = []  # hasher, from, to, unit to finish (or -1)
        self.base, self.filled = -WINDOW, WINDOW
        self.start = self.start_row = self.fed = 0
        self.hasher = new()
        self.last_nl = 0  # end of the last newline before the current block (0: none yet)
        self.nl_before = 0  # newlines before the current block
        self.ends: npt.NDArray[np.int64] = self.np.zeros(0, dtype=self.np.int64)
        self.spans: list[tuple[int, int, int, int]] = []  # start, end, first row, row count
        self.digests: list[str] = []

    def run(self, f: FileIO) -> tuple[list[Chunk], int, int]:
        with ThreadPoolExecutor(max_workers=1) as pool:
            try:
                size, rows = self._run(f, pool)
            finally:
                for fut in self.pending:
                    if fut is not None:
                        fut.result()
        units = [
            Chunk(index=i, byte_start=s, byte_end=e, first_row=r, row_count=n, digest=d)
            for i, ((s, e, r, n), d) in enumerate(zip(self.spans, self.digests, strict=True))
        ]
        return units, size, rows

    def _run(self, f: FileIO, pool: ThreadPoolExecutor) -> tuple[int, int]:
        last_byte = -1
        while True:
            buf = self.bufs[self.cur]
            n = f.readinto(memoryview(buf)[self.filled : self.filled + self.block])
            if not n:
                break
            last_byte = buf[self.filled + n - 1]
            self._step(n)
            self._flush(pool)
            self._switch()
        size = self.base + self.filled
        if size > self.start:
            self._emit(size, newline=last_byte == 10)
        self._flush(pool)
        rows = self.nl_before + (1 if size and last_byte != 10 else 0)
        return size, rows

    def _step(self, n: int) -> None:
        np, buf = self.np, self.bufs[self.cur]
        scan, self.filled = self.filled, self.filled + n
        arr = np.frombuffer(buf, dtype=np.uint8, count=self.filled)
        pos = np.flatnonzero(arr[scan:] == 10) + scan  # buffer index of every new newline
        del arr
        self.ends = pos + (self.base + 1)  # file offset just after it
        cuts = (
            _cut_points(np, buf, self.filled, pos, self.ends, self.last_nl, self.spread) if len(pos) else []
        )
        for cut in cuts:
            while cut - self.start > self.hi:
                self._max_cut()
            if cut - self.start >= self.lo:
                self._emit(cut, newline=True)
        end = self.base + self.filled
        while end - self.start > self.hi:
            self._max_cut()
        # bytes up to the last newline can no longer move to a later chunk: hash them now
        if len(self.ends):
            self.last_nl = int(self.ends[-1])
        safe = max(self.start, self.last_nl)
        if safe > self.fed:
            self.ops.append((self.hasher, self.fed - self.base, safe - self.base, -1))
            self.fed = safe
        self.nl_before += len(self.ends)
        self.ends = self.ends[:0]

    def _flush(self, pool: ThreadPoolExecutor) -> None:
        """Hand this step's hashing to the worker thread."""
        if self.ops:
            self.pending[self.cur] = pool.submit(_apply, self.bufs[self.cur], self.ops, self.digests)
            self.ops = []

    def _switch(self) -> None:
        """Carry the unhashed tail and the window into the other buffer, once the worker is done with it."""
        other = 1 - self.cur
        fut, self.pending[other] = self.pending[other], None
        if fut is not None:
            fut.result()
        end = self.base + self.filled
        keep = min(self.fed, end - WINDOW)
        carried = end - keep
        self.bufs[other][:carried] = memoryview(self.bufs[self.cur])[keep - self.base : self.filled]
        self.base, self.filled, self.cur = keep, carried, other

    def _newlines_to(self, offset: int) -> int:
        return self.nl_before + int(self.np.searchsorted(self.ends, offset, side="right"))

    def _max_cut(self) -> None:
        limit = self.start + self.hi
        i = int(self.np.searchsorted(self.ends, limit, side="right"))
        if i and self.ends[i - 1] > self.start:
            self._emit(int(self.ends[i - 1]), newline=True)
        elif self.last_nl > self.start:  # in an earlier block, and never past the limit
            self._emit(self.last_nl, newline=True)
        else:  # no newline since the chunk began: cut inside the line
            self._emit(limit, newline=False)

    def _emit(self, end: int, *, newline: bool) -> None:
        unit = len(self.spans)
        self.ops.append((self.hasher, self.fed - self.base, end - self.base, unit))
        self.digests.append("")
        before = self._newlines_to(end)
        last_row = before - 1 if newline else before
        self.spans.append((self.start, end, self.start_row, last_row - self.start_row + 1))
        self.start = self.fed = end
        self.start_row = before
        self.hasher = self.new()


def _apply(buf: bytearray, ops: list[tuple[_Hasher, int, int, int]], digests: list[str]) -> None:
    mv = memoryview(buf)
    for hasher, a, b, unit in ops:
        hasher.update(mv[a:b])
        if unit >= 0:
            digests[unit] = hasher.hexdigest()
