"""Symbolic execution of pickles: CPython's unpickler, with imports and calls recorded, not made.

The stack, the marks and the memo follow ``Modules/_pickle.c`` (the unpickler ``pickle.load`` uses):
items below the innermost MARK are out of reach, POP removes a MARK when the stack top is one,
PUT/BINPUT/LONG_BINPUT store at their argument while MEMOIZE stores at the number of memo entries,
and every error the real unpickler would raise ends the analysis as *malformed* at that offset, with
what came before still reported (the real unpickler has already run it). Nothing is imported, called
or copied: constants are references into the buffer, so large byte payloads cost nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import time

from garrison.supplychain.pickle.handlers import Handler, Handlers
from garrison.supplychain.pickle.model import CallRef, PickleAnalysis, PickleLimits
from garrison.supplychain.pickle.opcodes import CODES
from garrison.supplychain.pickle.state import BrokenStreamError, Buffer, LimitReachedError, StopReachedError
from garrison.supplychain.pickle.values import OPAQUE

_MAX_REENCODE = 64 * 1024 * 1024
_CLOCK_EVERY = 1 << 16
DEFAULT_LIMITS = PickleLimits()
"""The bounds used when none are given."""


@functools.cache
def dispatch_table(m: type[Handlers]) -> tuple[Handler | None, ...]:
    """Opcode byte -> handler, built once per machine class and shared by all its runs."""

    def text(size: int, kind: str, opname: str) -> Handler:
        if size != 1:
            return lambda h, p: h.text_arg(p, size, kind, opname)

        def short_text(h: Handlers, pos: int) -> int:  # text_arg(pos, 1, ...) without the calls
            if pos >= h.bound:
                h.need(pos, 1)
            length = h.view[pos]
            pos += 1
            if pos + length > h.bound:
                h.need(pos, length)
            h.push_text(pos, length, kind, opname)
            return pos + length

        return short_text

    def blob(size: int) -> Handler:
        return lambda h, p: h.bytes_arg(p, size)

    table: dict[str, Handler] = {
        "PROTO": m.op_proto, "FRAME": m.op_frame, "STOP": m.op_stop, "MARK": m.op_mark,
        "POP": m.op_pop, "POP_MARK": m.op_pop_mark, "DUP": m.op_dup,
        "NONE": m.op_const(None), "NEWTRUE": m.op_const(True), "NEWFALSE": m.op_const(False),
        "EMPTY_TUPLE": m.op_const(()), "EMPTY_LIST": m.op_const(OPAQUE), "EMPTY_SET": m.op_const(OPAQUE),
        "EMPTY_DICT": m.op_empty_dict,
        "INT": m.op_number("INT"), "LONG": m.op_number("LONG"), "FLOAT": m.op_number("FLOAT"),
        "BINFLOAT": m.op_binfloat,
        "BININT": m.op_fixed_int(4, True), "BININT1": m.op_fixed_int(1, False),
        "BININT2": m.op_fixed_int(2, False), "LONG1": m.op_long_n(1), "LONG4": m.op_long_n(4),
        "STRING": m.op_string, "UNICODE": m.op_unicode,
        "BINSTRING": text(4, "latin-1", "BINSTRING"),
        "SHORT_BINSTRING": text(1, "latin-1", "SHORT_BINSTRING"),
        "BINUNICODE": text(4, "utf-8", "BINUNICODE"),
        "SHORT_BINUNICODE": text(1, "utf-8", "SHORT_BINUNICODE"),
        "BINUNICODE8": text(8, "utf-8", "BINUNICODE8"),
        "BINBYTES": blob(4), "SHORT_BINBYTES": blob(1),
        "BINBYTES8": blob(8), "BYTEARRAY8": blob(8),
        "GLOBAL": m.op_global, "STACK_GLOBAL": m.op_stack_global, "INST": m.op_inst, "OBJ": m.op_obj,
        "REDUCE": m.op_reduce, "NEWOBJ": m.op_newobj, "NEWOBJ_EX": m.op_newobj_ex, "BUILD": m.op_build,
        "EXT1": m.op_ext(1), "EXT2": m.op_ext(2), "EXT4": m.op_ext(4),
        "PERSID": m.op_persid, "BINPERSID": m.op_binpersid,
        "GET": m.op_get, "BINGET": m.op_memo("get", 1), "LONG_BINGET": m.op_memo("get", 4),
        "PUT": m.op_put, "BINPUT": m.op_memo("put", 1), "LONG_BINPUT": m.op_memo("put", 4),
        "MEMOIZE": m.op_memoize,
        "TUPLE": m.op_tuple, "TUPLE1": m.op_tuple_n(1), "TUPLE2": m.op_tuple_n(2), "TUPLE3": m.op_tuple_n(3),
        "LIST": m.op_collection, "FROZENSET": m.op_collection, "DICT": m.op_dict,
        "APPEND": m.op_append, "APPENDS": m.op_appends, "ADDITEMS": m.op_appends,
        "SETITEM": m.op_setitem, "SETITEMS": m.op_setitems,
        "NEXT_BUFFER": m.op_next_buffer, "READONLY_BUFFER": m.op_readonly_buffer,
    }  # fmt: skip
    out: list[Handler | None] = [None] * 256
    for name, handler in table.items():
        out[CODES[name]] = handler
    missing = set(CODES) - set(table)
    if missing:  # pragma: no cover - a new protocol would add opcodes
        raise RuntimeError(f"pickle opcodes without a handler: {sorted(missing)}")
    return tuple(out)


class Machine(Handlers):
    """One run of the symbolic unpickler over one pickle."""

    def run_inner(self, pos: int) -> PickleAnalysis:
        """Analyse a pickle that joblib loads from inside this one (object arrays)."""
        return Machine(self.buf, pos, self.limits, self.depth + 1).run()

    def run(self) -> PickleAnalysis:
        """Execute opcodes from ``start`` to STOP, an error or a limit."""
        pos = self.start
        view, table, stack = self.view, dispatch_table(type(self)), self.stack
        max_ops, max_stack, bound, size = (
            self.limits.max_opcodes,
            self.limits.max_stack,
            self.bound,
            self.size,
        )
        malformed: str | None = None
        malformed_at: int | None = None
        limit: str | None = None
        seconds = self.limits.max_seconds
        deadline = time.monotonic() + seconds if seconds is not None else None
        checkpoint = min(max_ops, self.index + _CLOCK_EVERY)
        try:
            while True:
                if pos >= bound:
                    if pos >= size:
                        raise BrokenStreamError("pickle ends before its STOP opcode", pos)
                    raise LimitReachedError("max_bytes")
                if self.index >= checkpoint:  # one comparison per opcode; the clock every 65,536
                    if self.index >= max_ops:
                        raise LimitReachedError("max_opcodes")
                    if deadline is not None and time.monotonic() > deadline:
                        raise LimitReachedError("max_seconds")
                    checkpoint = min(max_ops, self.index + _CLOCK_EVERY)
                if len(stack) > max_stack:  # marks are bounded in push_mark
                    raise LimitReachedError("max_stack")
                handler = table[view[pos]]
                if handler is None:
                    raise BrokenStreamError(f"invalid opcode 0x{view[pos]:02x}", pos)
                self.at = pos
                pos = handler(self, pos + 1)
                self.index += 1
        except StopReachedError as stopped:
            end = stopped.end
            self.index += 1
        except BrokenStreamError as broken:
            malformed, malformed_at, end = broken.why, broken.offset, broken.offset
        except LimitReachedError as hit:
            limit, end = hit.which, self.at
        except RecursionError:  # pragma: no cover - nothing here recurses on input depth
            limit, end = "max_nesting", self.at
        return self.result(end, malformed, malformed_at, limit)

    def result(self, end: int, malformed: str | None, at: int | None, limit: str | None) -> PickleAnalysis:
        """Freeze what was recorded."""
        calls = tuple(
            CallRef(
                callee=c.callee,
                opcode=c.opcode,
                index=c.index,
                offset=c.offset,
                result_discarded=c.discarded,
                on_global=c.on_global,
            )
            for c in self.calls
        )
        return PickleAnalysis(
            start=self.start,
            end=end,
            protocol=self.max_proto,
            opcodes=self.index,
            globals=tuple(self.globals),
            calls=calls,
            dynamic_imports=tuple(self.dynamic),
            nested=tuple(self.nested),
            malformed=malformed,
            malformed_offset=at,
            persistent_ids=tuple(self.pids),
            out_of_band_buffers=self.buffers,
            limit_hit=limit,
            skipped=tuple(self.skipped),
            inline=tuple(self.inline),
            nested_analyses=self.nested_pickles(),
        )

    def nested_pickles(self) -> tuple[tuple[int, PickleAnalysis], ...]:
        """Analyse the constants that look like pickles; keep those that parse to STOP."""
        if self.depth + 1 > self.limits.max_nesting:
            return ()
        found: list[tuple[int, PickleAnalysis]] = []
        for offset, length in self.nested:
            piece = self.view[offset : offset + length]
            data: Buffer = piece
            if self.view[offset] == 0xC2 and length <= _MAX_REENCODE:  # latin-1 pickle inside a str
                try:
                    data = piece.tobytes().decode("utf-8").encode("latin-1")
                except (UnicodeDecodeError, UnicodeEncodeError):
                    continue
            inner = Machine(data, 0, self.limits, self.depth + 1).run()
            if inner.malformed is None and inner.limit_hit is None:
                found.append((offset, inner))
        return tuple(found)


def analyze_pickle(buf: Buffer, start: int = 0, *, limits: PickleLimits = DEFAULT_LIMITS) -> PickleAnalysis:
    """Analyse the one pickle that starts at ``start`` in ``buf``, without unpickling it.

    Never imports or calls what the pickle names. A truncated or invalid stream comes back with
    :attr:`~PickleAnalysis.malformed` set, a bound reached with :attr:`~PickleAnalysis.limit_hit`;
    in both cases what the unpickler would already have done is reported.
    """
    return Machine(buf, start, limits).run()


MEMO_MAX_BYTES = _CLOCK_EVERY
"""Largest stream whose analysis :func:`analyze_stream` remembers. A stream this short cannot run
enough opcodes for the clock to be read, so its analysis is a function of its bytes and the limits
alone: the same stream analysed twice gives the same result."""
MEMO_ENTRIES = 128
"""Streams remembered at once (at most 8 MiB of keys); the oldest is forgotten first."""
_memo: dict[tuple[bytes, PickleLimits, int | None, bool], tuple[PickleAnalysis, ...]] = {}


def analyze_stream(
    buf: Buffer, *, limits: PickleLimits = DEFAULT_LIMITS, max_pickles: int | None = None
) -> list[PickleAnalysis]:
    """Analyse every pickle stored back to back from offset 0 (``pickle.load`` called repeatedly).

    Stops at the first malformed pickle or bound, after ``max_pickles`` pickles (PyTorch's legacy
    layout is five pickles followed by raw storage bytes), or when the bytes after a pickle do not
    start another one; their length is then the last analysis's :attr:`~PickleAnalysis.trailing`.

    Short streams are remembered (:data:`MEMO_MAX_BYTES`): checkpoints of one architecture carry
    the same ``data.pkl``, analysed once per process. The analyses are frozen and shared.
    """
    size = len(buf) if not isinstance(buf, memoryview) else buf.nbytes
    if size > MEMO_MAX_BYTES:
        return _analyze_stream(buf, size, limits, max_pickles)
    key = (bytes(buf), limits, max_pickles, isinstance(buf, memoryview))
    known = _memo.get(key)
    if known is None:
        known = tuple(_analyze_stream(buf, size, limits, max_pickles))
        if len(_memo) >= MEMO_ENTRIES:
            del _memo[next(iter(_memo))]
        _memo[key] = known
    return list(known)


def _analyze_stream(
    buf: Buffer, size: int, limits: PickleLimits, max_pickles: int | None
) -> list[PickleAnalysis]:
    out: list[PickleAnalysis] = []
    pos = 0
    while True:
        found = analyze_pickle(buf, pos, limits=limits)
        real_pickle = found.malformed is None or bool(found.globals or found.calls or found.opcodes > 2)
        if out and not real_pickle:
            out[-1] = dataclasses.replace(out[-1], trailing=size - pos)
            return out
        out.append(found)
        if found.malformed is not None or found.limit_hit is not None or found.end >= size:
            return out
        pos = found.end
        if max_pickles is not None and len(out) >= max_pickles:
            out[-1] = dataclasses.replace(out[-1], trailing=size - pos)
            return out
