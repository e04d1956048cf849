"""Content-defined digests of large dataset files, so a change report names the rows that changed.

A whole-file digest says only *that* a 40 GB CSV differs. :func:`chunk_digests` cuts one file into
units and hashes each, and :func:`compare_chunks` lines two such indexes up by digest to say *which*
row ranges or row groups changed, were inserted or were deleted.

The kind of file is decided by its content, never its name:

- **Parquet** (``PAR1`` at both ends): one unit per row group, covering the bytes of its column
  chunks, plus three parts: the raw footer, a digest of the schema (so a schema change is named as
  such), and every byte in neither (leading magic, page indexes, bloom filters, padding).
- **Anything else** is read as lines (CSV, JSON Lines, logs). Chunk boundaries fall only at line
  ends and are chosen by the content just before each newline, so an edit moves only the
  boundaries near it and later chunks come out identical (they *re-synchronise*).

Row numbers are 0-based line numbers for line files (a CSV header is row 0, so row *n* is the
*n*-th record as long as no quoted field holds a newline) and 0-based row indexes for Parquet.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from io import FileIO
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

from garrison.core.errors import InputError, MissingExtraError, ResourceLimitError, UsageError
from garrison.integrity.manifest import _hasher_factory

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

Kind = Literal["lines", "parquet"]
Algorithm = Literal["sha256", "blake3"]
Change = Literal["changed", "inserted", "deleted"]

#: Version tag of the serialized form written by :meth:`ChunkIndex.to_dict`.
FORMAT = "garrison-chunks/1"
#: Bytes before each newline that decide whether a chunk may end there (with the line's length).
WINDOW = 64
#: Range of the automatically chosen average chunk size; ``avg_chunk`` may be set in [64 B, 64 MiB].
AUTO_AVG_RANGE = (64 << 10, 16 << 20)
_AVG_LIMITS = (64, 64 << 20)
_AUTO_DIVISOR = 1024  # file size / this, rounded down to a power of two: 1,024 to 2,048 chunks
_BLOCK = 16 << 20  # bytes read per step of the line chunker
_READ = 8 << 20  # bytes per read when hashing Parquet byte ranges
_FOOTER_LIMIT = 64 << 20  # a Parquet footer larger than this is refused
_PARTS = ("schema", "footer", "other")
_HEX_LEN = 64  # SHA-256 and BLAKE3 both give 32 bytes
# odd 64-bit multipliers for the boundary hash (any odd constants with mixed bits do)
_K1, _K2 = 0xD6E8FEB86659FD93, 0xA0761D6478BD642F
_STAGE = 8  # how many more newlines the first, cheap stage of the boundary test lets through


class _Hasher(Protocol):
    def update(self, data: memoryview, /) -> object: ...
    def hexdigest(self) -> str: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Chunk:
    """One unit of a dataset file: a run of whole lines, or one Parquet row group."""

    index: int
    """Position in the file (the row group number for Parquet)."""
    byte_start: int
    """First byte (for Parquet: of the first column chunk)."""
    byte_end: int
    """One past the last byte (for Parquet: of the last column chunk)."""
    first_row: int
    """0-based row of the first byte: a line number, or a Parquet row index."""
    row_count: int
    """Rows the unit touches; a line longer than the maximum chunk is counted in each chunk it spans."""
    digest: str
    """Lower-case hex digest of the unit's bytes."""

    @property
    def end_row(self) -> int:
        """One past the last row the unit touches."""
        return self.first_row + self.row_count


@dataclass(frozen=True, slots=True, kw_only=True)
class Part:
    """A Parquet part that holds no rows: ``schema``, ``footer`` or ``other``."""

    name: str
    """``schema`` (columns and key-value metadata), ``footer`` (raw bytes) or ``other`` (the rest)."""
    size: int
    """Bytes covered (for ``schema``: of its canonical JSON)."""
    digest: str
    """Lower-case hex digest."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkIndex:
    """Digests of every unit of one dataset file, with the settings that produced them."""

    kind: Kind
    """``lines`` (content-defined chunks of lines) or ``parquet`` (row groups)."""
    algorithm: Algorithm
    """Hash algorithm of every digest."""
    avg_chunk: int | None
    """Target average chunk size in bytes (lines only)."""
    min_chunk: int | None
    """No chunk is shorter unless it is the last (lines only)."""
    max_chunk: int | None
    """No chunk is longer (lines only)."""
    size: int
    """File size in bytes."""
    rows: int
    """Lines in the file (a last line without a newline counts), or Parquet rows."""
    units: tuple[Chunk, ...]
    """Units in file order."""
    parts: tuple[Part, ...] = ()
    """Parquet parts holding no rows, in the order of ``_PARTS``; empty for lines."""

    def to_dict(self) -> dict[str, Any]:
        """Compact JSON-ready form (a unit is ``[start, end, first_row, rows, digest]``)."""
        out: dict[str, Any] = {
            "format": FORMAT,
            "kind": self.kind,
            "alg": self.algorithm,
            "size": self.size,
            "rows": self.rows,
            "units": [[u.byte_start, u.byte_end, u.first_row, u.row_count, u.digest] for u in self.units],
        }
        if self.kind == "lines":
            out["params"] = {
                "avg": self.avg_chunk,
                "min": self.min_chunk,
                "max": self.max_chunk,
                "win": WINDOW,
            }
        else:
            out["parts"] = {p.name: [p.size, p.digest] for p in self.parts}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChunkIndex:
        """Rebuild an index from :meth:`to_dict` output; :class:`InputError` if malformed."""
        try:
            return _index_from_dict(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InputError(f"malformed chunk index: {exc!r}") from exc


def _index_from_dict(data: Mapping[str, Any]) -> ChunkIndex:
    def bad(what: str) -> InputError:
        return InputError(f"malformed chunk index: {what}")

    if data["format"] != FORMAT:
        raise InputError(f"unknown chunk index format {data['format']!r}", hint=f"expected {FORMAT}")
    kind, algorithm = data["kind"], data["alg"]
    if kind not in ("lines", "parquet") or algorithm not in ("sha256", "blake3"):
        raise bad(f"unknown kind {kind!r} or algorithm {algorithm!r}")
    size, rows = _count(data["size"]), _count(data["rows"])
    units: list[Chunk] = []
    for i, raw in enumerate(data["units"]):
        start, end, first, count, digest = raw
        units.append(
            Chunk(
                index=i,
                byte_start=_count(start),
                byte_end=_count(end),
                first_row=_count(first),
                row_count=_count(count),
                digest=_hex(digest),
            )
        )
        if not units[-1].byte_start <= units[-1].byte_end <= size or units[-1].end_row > rows:
            raise bad(f"unit {i} lies outside the file")
    avg = lo = hi = None
    parts: tuple[Part, ...] = ()
    if kind == "lines":
        params = data["params"]
        avg, lo, hi = _count(params["avg"]), _count(params["min"]), _count(params["max"])
        if params["win"] != WINDOW or (avg, lo, hi) != _line_params(avg):
            raise bad(f"unsupported chunking parameters {dict(params)!r}")
        starts, ends = [u.byte_start for u in units], [u.byte_end for u in units]
        if starts != [0, *ends][: len(units)] or (ends[-1] if ends else 0) != size:
            raise bad("line chunks do not tile the file")
    else:
        raw_parts = data["parts"]
        if sorted(raw_parts) != sorted(_PARTS):
            raise bad(f"Parquet parts must be {', '.join(_PARTS)}")
        parts = tuple(
            Part(name=n, size=_count(raw_parts[n][0]), digest=_hex(raw_parts[n][1])) for n in _PARTS
        )
    return ChunkIndex(
        kind=cast(Kind, kind),
        algorithm=cast(Algorithm, algorithm),
        avg_chunk=avg,
        min_chunk=lo,
        max_chunk=hi,
        size=size,
        rows=rows,
        units=tuple(units),
        parts=parts,
    )


def _count(value: object) -> int:
    if type(value) is not int or value < 0:
        raise InputError(f"malformed chunk index: expected a count, got {value!r}")
    return value


def _hex(value: object) -> str:
    if not isinstance(value, str) or len(value) != _HEX_LEN or value.strip("0123456789abcdef"):
        raise InputError(f"malformed chunk index: expected a hex digest, got {value!r}")
    return value


def _line_params(avg: int) -> tuple[int, int, int]:
    return avg, max(1, avg // 4), avg * 4


def _auto_avg(size: int) -> int:
    lo, hi = AUTO_AVG_RANGE
    return min(hi, max(lo, 1 << max(0, (size // _AUTO_DIVISOR).bit_length() - 1)))


# ---------------------------------------------------------------------------------------- entry point


def chunk_digests(
    path: str | os.PathLike[str],
    *,
    algorithm: Algorithm = "sha256",
    avg_chunk: int | None = None,
    _block: int = _BLOCK,
) -> ChunkIndex:
    """Digest ``path`` unit by unit: row groups for Parquet, content-defined line chunks otherwise.

    ``avg_chunk`` (line files only) sets the average chunk size in bytes; by default it is the power
    of two giving 1,024 to 2,048 chunks, kept within :data:`AUTO_AVG_RANGE`. Minimum and maximum
    chunk sizes are a quarter and four times the average. Memory stays below about
    ``2 × (16 MiB + 4 × avg_chunk)`` whatever the file size (two read buffers: one is hashed on a
    second thread while the other is scanned).
    """
    new = _hasher_factory(algorithm)
    name = os.fspath(path)
    if avg_chunk is not None and not _AVG_LIMITS[0] <= avg_chunk <= _AVG_LIMITS[1]:
        raise UsageError(f"average chunk size must be between {_AVG_LIMITS[0]} and {_AVG_LIMITS[1]} bytes")
    if not os.path.isfile(name):
        raise UsageError(f"{name}: no such file, or not a regular file")
    try:
        with open(name, "rb", buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(4096)
            tail = b""
            if size >= 8:
                f.seek(size - 4)
                tail = f.read(4)
            f.seek(0)
            if head[:4] == b"PAR1" and tail in (b"PAR1", b"PARE"):
                return _parquet_index(f, name, size, algorithm, lambda: new(False))
            if head[:4] == b"PAR1" and b"\0" in head:  # binary, Parquet magic, no footer
                raise InputError(f"{name}: starts like Parquet but has no Parquet footer (truncated?)")
            avg = avg_chunk if avg_chunk is not None else _auto_avg(size)
            chunker = _LineChunker(_line_params(avg), lambda: new(False), _block)
            units, total, rows = chunker.run(f)
    except OSError as exc:
        raise InputError(f"{name}: cannot read: {exc.strerror or exc}") from exc
    avg, lo, hi = _line_params(avg)
    return ChunkIndex(
        kind="lines",
        algorithm=algorithm,
        avg_chunk=avg,
        min_chunk=lo,
        max_chunk=hi,
        size=total,
        rows=rows,
        units=tuple(units),
    )


def verify_chunks(old: ChunkIndex, path: str | os.PathLike[str]) -> ChunkDiff:
    """Digest ``path`` with ``old``'s settings and compare: what changed since ``old`` was made."""
    return compare_chunks(old, chunk_digests(path, algorithm=old.algorithm, avg_chunk=old.avg_chunk))


def _numpy() -> Any:
    try:
        import numpy
    except ImportError as exc:
        raise MissingExtraError("Dataset chunk digests", extra="data", module="numpy") from exc
    return numpy


# ---------------------------------------------------------------------------------------- line files


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


# ---------------------------------------------------------------------------------------- Parquet


def _parquet_index(
    f: FileIO, name: str, size: int, algorithm: Algorithm, new: Callable[[], _Hasher]
) -> ChunkIndex:
    f.seek(size - 8)
    tail = f.read(8)
    if tail[4:] == b"PARE":
        raise InputError(f"{name}: Parquet file with an encrypted footer", hint="decrypt it first")
    footer_len = int.from_bytes(tail[:4], "little")
    footer_start = size - 8 - footer_len
    if footer_start < 4:
        raise InputError(f"{name}: Parquet footer length {footer_len} runs past the start of the file")
    if footer_len > _FOOTER_LIMIT:
        raise ResourceLimitError(
            f"{name}: Parquet footer of {footer_len} bytes", limit="parquet-footer-bytes", value=footer_len
        )
    try:
        import pyarrow
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingExtraError("Parquet row-group digests", extra="data", module="pyarrow") from exc
    f.seek(0)
    try:
        meta = pq.ParquetFile(f).metadata
        groups, schema = _row_group_ranges(meta), _schema_json(meta)
    except (pyarrow.ArrowException, OSError, ValueError, TypeError, OverflowError) as exc:
        raise InputError(f"{name}: malformed Parquet metadata: {exc}") from exc

    flat = sorted((s, e) for ranges, _ in groups for s, e in ranges if e > s)
    prev_end = 4
    for s, e in flat:
        if s < prev_end or e > footer_start:
            raise InputError(f"{name}: Parquet column chunk at bytes {s}–{e} overlaps another or the footer")
        prev_end = e
    units: list[Chunk] = []
    first_row = 0
    for i, (ranges, rows) in enumerate(groups):
        hasher = new()
        for s, e in ranges:
            _hash_range(f, name, hasher, s, e)
        span = (min(s for s, _ in ranges), max(e for _, e in ranges)) if ranges else (0, 0)
        units.append(
            Chunk(
                index=i,
                byte_start=span[0],
                byte_end=span[1],
                first_row=first_row,
                row_count=rows,
                digest=hasher.hexdigest(),
            )
        )
        first_row += rows
    other, covered, at = new(), 0, 0
    for s, e in [*flat, (footer_start, footer_start)]:
        if s > at:
            _hash_range(f, name, other, at, s)
            covered += s - at
        at = e
    footer = new()
    _hash_range(f, name, footer, footer_start, size)
    schema_hasher = new()
    schema_hasher.update(memoryview(schema))
    parts = (
        Part(name="schema", size=len(schema), digest=schema_hasher.hexdigest()),
        Part(name="footer", size=size - footer_start, digest=footer.hexdigest()),
        Part(name="other", size=covered, digest=other.hexdigest()),
    )
    return ChunkIndex(
        kind="parquet",
        algorithm=algorithm,
        avg_chunk=None,
        min_chunk=None,
        max_chunk=None,
        size=size,
        rows=first_row,
        units=tuple(units),
        parts=parts,
    )


def _row_group_ranges(meta: Any) -> list[tuple[list[tuple[int, int]], int]]:
    """Sorted byte ranges of each row group's column chunks, and its row count."""
    groups = []
    for i in range(meta.num_row_groups):
        rg = meta.row_group(i)
        if rg.num_rows < 0:
            raise ValueError(f"row group {i} has {rg.num_rows} rows")
        ranges = []
        for j in range(rg.num_columns):
            col = rg.column(j)
            # the chunk starts at its dictionary page if any, else its first data page; writers
            # leave an absent page's offset at 0 (an empty row group has no data page)
            offsets = [int(col.data_page_offset)]
            if col.has_dictionary_page and col.dictionary_page_offset is not None:
                offsets.append(int(col.dictionary_page_offset))
            start = min((o for o in offsets if o > 0), default=0)
            length = int(col.total_compressed_size)
            if min(offsets) < 0 or length < 0 or (start == 0 and length > 0):
                raise ValueError(f"row group {i} column {j} has offsets {offsets} and size {length}")
            ranges.append((start, start + length))
        groups.append((sorted(ranges), int(rg.num_rows)))
    return groups


def _schema_json(meta: Any) -> bytes:
    """Canonical JSON of the columns (path, types, levels) and the key-value metadata."""
    schema = meta.schema
    columns = []
    for j in range(len(schema)):
        c = schema.column(j)
        columns.append(
            [c.path, c.physical_type, str(c.logical_type), c.max_definition_level, c.max_repetition_level]
        )
    kv = {
        k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in (meta.metadata or {}).items()
    }
    return json.dumps({"columns": columns, "metadata": kv}, sort_keys=True, separators=(",", ":")).encode()


def _hash_range(f: FileIO, name: str, hasher: _Hasher, start: int, end: int) -> None:
    f.seek(start)
    buf = bytearray(min(_READ, max(0, end - start)))
    mv = memoryview(buf)
    left = end - start
    while left > 0:
        n = f.readinto(mv[: min(left, len(buf))])
        if not n:
            raise InputError(f"{name}: file ended at byte {end - left} while reading bytes {start}–{end}")
        hasher.update(mv[:n])
        left -= n


# ---------------------------------------------------------------------------------------- comparison


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangedRows:
    """A run of units that differs between two indexes."""

    change: Change
    """``changed`` (units replaced), ``inserted`` (only in new) or ``deleted`` (only in old)."""
    old_units: tuple[int, int]
    """Unit indexes in the old index, half-open (empty for an insertion: where it goes)."""
    new_units: tuple[int, int]
    """Unit indexes in the new index, half-open (empty for a deletion)."""
    old_rows: tuple[int, int]
    """Rows in old numbering, half-open; empty for an insertion (the old row it comes before)."""
    new_rows: tuple[int, int]
    """Rows in new numbering, half-open; empty for a deletion."""
    old_bytes: tuple[int, int]
    """Bytes in the old file, half-open."""
    new_bytes: tuple[int, int]
    """Bytes in the new file, half-open."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "change": self.change,
            "old_units": list(self.old_units),
            "new_units": list(self.new_units),
            "old_rows": list(self.old_rows),
            "new_rows": list(self.new_rows),
            "old_bytes": list(self.old_bytes),
            "new_bytes": list(self.new_bytes),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ChunkDiff:
    """What differs between two chunk indexes of the same kind and settings."""

    kind: Kind
    """Kind of both indexes."""
    old_size: int
    """Old file size in bytes."""
    new_size: int
    """New file size in bytes."""
    old_rows: int
    """Rows in the old file."""
    new_rows: int
    """Rows in the new file."""
    old_units: int
    """Units in the old index."""
    new_units: int
    """Units in the new index."""
    same_units: int
    """Units found unchanged in both."""
    regions: tuple[ChangedRows, ...]
    """Changed, inserted and deleted runs of units, in file order."""
    parts: tuple[str, ...]
    """Names of Parquet parts that differ (``schema``, ``footer``, ``other``)."""

    @property
    def identical(self) -> bool:
        """No unit and no part differs."""
        return not self.regions and not self.parts

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "old_size": self.old_size,
            "new_size": self.new_size,
            "old_rows": self.old_rows,
            "new_rows": self.new_rows,
            "old_units": self.old_units,
            "new_units": self.new_units,
            "same_units": self.same_units,
            "regions": [r.to_dict() for r in self.regions],
            "parts": list(self.parts),
        }


def compare_chunks(old: ChunkIndex, new: ChunkIndex) -> ChunkDiff:
    """Line up ``old`` and ``new`` by digest and report the runs of units that differ.

    :class:`UsageError` if the two were made with a different kind, algorithm or chunk size: their
    digests could not be compared.
    """
    mine = (old.kind, old.algorithm, old.avg_chunk, old.min_chunk, old.max_chunk)
    theirs = (new.kind, new.algorithm, new.avg_chunk, new.min_chunk, new.max_chunk)
    if mine != theirs:
        raise UsageError(
            f"chunk indexes were made differently: {mine} vs {theirs}",
            hint="recompute the new index with the old one's settings (verify_chunks does)",
        )
    a, b = [u.digest for u in old.units], [u.digest for u in new.units]
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    regions = []
    for tag, i0, i1, j0, j1 in matcher.get_opcodes():
        if tag == "equal":
            continue
        change: Change = "changed" if tag == "replace" else "inserted" if tag == "insert" else "deleted"
        regions.append(
            ChangedRows(
                change=change,
                old_units=(i0, i1),
                new_units=(j0, j1),
                old_rows=_rows(old, i0, i1),
                new_rows=_rows(new, j0, j1),
                old_bytes=_bytes(old, i0, i1),
                new_bytes=_bytes(new, j0, j1),
            )
        )
    same = sum(block.size for block in matcher.get_matching_blocks())
    old_parts, new_parts = {p.name: p.digest for p in old.parts}, {p.name: p.digest for p in new.parts}
    parts = tuple(n for n in _PARTS if old_parts.get(n) != new_parts.get(n))
    return ChunkDiff(
        kind=old.kind,
        old_size=old.size,
        new_size=new.size,
        old_rows=old.rows,
        new_rows=new.rows,
        old_units=len(a),
        new_units=len(b),
        same_units=same,
        regions=tuple(regions),
        parts=parts,
    )


def _rows(index: ChunkIndex, i0: int, i1: int) -> tuple[int, int]:
    if i0 == i1:
        at = index.units[i0].first_row if i0 < len(index.units) else index.rows
        return (at, at)
    return (index.units[i0].first_row, max(u.end_row for u in index.units[i0:i1]))


def _bytes(index: ChunkIndex, i0: int, i1: int) -> tuple[int, int]:
    if i0 == i1:
        at = index.units[i0].byte_start if i0 < len(index.units) else index.size
        return (at, at)
    return (index.units[i0].byte_start, index.units[i1 - 1].byte_end)


_PART_NOTES = {
    "schema": "schema changed (columns, types or key-value metadata)",
    "footer": "footer changed (it records row-group offsets, sizes and statistics, so it follows them)",
    "other": "bytes outside row groups and footer changed (page indexes, bloom filters, padding)",
}


def render_chunk_diff(diff: ChunkDiff) -> str:
    """Human-readable lines, one per changed region and part, after a summary line."""
    noun = "row groups" if diff.kind == "parquet" else "chunks"
    lines = [
        f"{diff.kind}: {diff.old_rows:,} → {diff.new_rows:,} rows, "
        f"{diff.old_size:,} → {diff.new_size:,} bytes; "
        f"{diff.same_units:,} of {diff.old_units:,} {noun} unchanged"
    ]
    if diff.identical:
        lines.append("no change")
    for r in diff.regions:
        lines.append(_region_line(diff.kind, r))
    lines.extend(_PART_NOTES[p] for p in diff.parts)
    return "\n".join(lines)


def _region_line(kind: Kind, r: ChangedRows) -> str:
    old_desc, new_desc = _describe(kind, r.old_units, r.old_rows), _describe(kind, r.new_units, r.new_rows)
    ob, nb = f"{r.old_bytes[0]:,}–{r.old_bytes[1]:,}", f"{r.new_bytes[0]:,}–{r.new_bytes[1]:,}"
    if r.change == "inserted":
        return f"{new_desc} inserted (new numbering; bytes {nb}), before old row {r.old_rows[0]:,}"
    if r.change == "deleted":
        return f"{old_desc} deleted (old numbering; bytes {ob}), before new row {r.new_rows[0]:,}"
    if old_desc == new_desc:
        return f"{old_desc} changed (bytes {ob} → {nb})"
    return f"{old_desc} changed (now {new_desc}; bytes {ob} → {nb})"


def _describe(kind: Kind, units: tuple[int, int], rows: tuple[int, int]) -> str:
    first, end = rows
    text = f"rows {first:,}–{end - 1:,}"
    if end - first < 2:
        text = "no rows" if end == first else f"row {first:,}"
    if kind == "lines":
        return text
    i0, i1 = units
    groups = f"row group {i0}" if i1 - i0 == 1 else f"row groups {i0}–{i1 - 1}"
    return f"{groups} ({text})"


__all__ = [
    "FORMAT",
    "WINDOW",
    "ChangedRows",
    "Chunk",
    "ChunkDiff",
    "ChunkIndex",
    "Part",
    "chunk_digests",
    "compare_chunks",
    "render_chunk_diff",
    "verify_chunks",
]
