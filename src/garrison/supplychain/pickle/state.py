"""State of the symbolic unpickler: stack, marks, memo, and what it records.

The stack, the marks and the memo follow ``Modules/_pickle.c`` (the unpickler ``pickle.load`` uses):
items below the innermost MARK are out of reach, POP removes a MARK when the stack top is one,
PUT/BINPUT/LONG_BINPUT store at their argument while MEMOIZE stores at the number of memo entries,
and every error the real unpickler would raise ends the analysis as *malformed* at that offset, with
what came before still reported (the real unpickler has already run it). Nothing is imported, called
or copied: constants are references into the buffer.
"""

from __future__ import annotations

import mmap
from abc import ABC, abstractmethod

from garrison.supplychain.pickle.model import GlobalRef, PersistentRef, PickleAnalysis, PickleLimits
from garrison.supplychain.pickle.opcodes import decode, is_opcode
from garrison.supplychain.pickle.values import (
    OPAQUE,
    SHORT_TEXT,
    Blob,
    Dynamic,
    Result,
    Str,
    joblib_array_bytes,
)
from garrison.supplychain.policy import compat_resolve

Buffer = bytes | bytearray | memoryview | mmap.mmap
"""What can be analysed: anything exposing the buffer protocol as bytes."""

_JOBLIB_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
_CLASS_HELPERS = frozenset({"copyreg._reconstructor", "copyreg.__newobj__", "copyreg.__newobj_ex__"})
_MAX_NESTED = 10_000


class CallRecord:
    """A call as it is being recorded (mutable until the analysis ends)."""

    __slots__ = ("callee", "discarded", "index", "offset", "on_global", "opcode")

    def __init__(
        self, callee: GlobalRef | None, opcode: str, index: int, offset: int, on_global: bool
    ) -> None:
        self.callee = callee
        self.opcode = opcode
        self.index = index
        self.offset = offset
        self.discarded = False
        self.on_global = on_global


class BrokenStreamError(Exception):
    """The real unpickler would fail here."""

    def __init__(self, why: str, offset: int) -> None:
        super().__init__(why)
        self.why = why
        self.offset = offset


class LimitReachedError(Exception):
    """A :class:`PickleLimits` bound was reached."""

    def __init__(self, which: str) -> None:
        super().__init__(which)
        self.which = which


class StopReachedError(Exception):
    """STOP was executed; ``end`` is the offset after it."""

    def __init__(self, end: int) -> None:
        super().__init__(end)
        self.end = end


class State(ABC):
    """The unpickler's state during one run over one pickle, and the helpers opcodes share."""

    def __init__(self, buf: Buffer, start: int, limits: PickleLimits, depth: int = 0) -> None:
        view = buf if isinstance(buf, memoryview) else memoryview(buf)
        if view.ndim != 1 or view.format not in ("B", "b", "c"):
            view = view.cast("B")
        self.view = view
        self.size = len(view)
        self.find = buf.find if isinstance(buf, bytes | bytearray | mmap.mmap) else None
        self.buf = buf
        self.start = start
        self.limits = limits
        self.depth = depth
        bound = self.size if limits.max_bytes is None else min(self.size, start + limits.max_bytes)
        self.bound = bound
        self.stack: list[object] = []
        self.marks: list[int] = []
        self.fence = 0
        self.memo: dict[int, object] = {}
        self.proto = 0
        self.max_proto = 0
        self.index = 0
        self.at = start
        self.globals: list[GlobalRef] = []
        self.calls: list[CallRecord] = []
        self.dynamic: list[tuple[int, int, str]] = []
        self.nested: list[tuple[int, int]] = []
        self.pids: list[PersistentRef] = []
        self.buffers = 0
        self.skipped: list[tuple[int, int]] = []
        self.inline: list[PickleAnalysis] = []
        self.pos_after = start

    # -- bounds --------------------------------------------------------------------------------
    def need(self, pos: int, count: int) -> None:
        """Raise unless ``count`` bytes from ``pos`` are inside the pickle."""
        if pos + count > self.bound:
            if pos + count > self.size:
                raise BrokenStreamError("pickle data was truncated", self.at)
            raise LimitReachedError("max_bytes")

    # -- stack ---------------------------------------------------------------------------------
    def pop(self) -> object:
        """Pop one item above the innermost mark."""
        if len(self.stack) <= self.fence:
            raise BrokenStreamError("unpickling stack underflow", self.at)
        return self.stack.pop()

    def top(self) -> object:
        """The item on top of the stack, above the innermost mark."""
        if len(self.stack) <= self.fence:
            raise BrokenStreamError("unpickling stack underflow", self.at)
        return self.stack[-1]

    def below_mark(self) -> object:
        """The item under the innermost mark (the target of APPENDS, SETITEMS, ADDITEMS)."""
        if not self.marks or self.marks[-1] < 1:
            raise BrokenStreamError("unpickling stack underflow", self.at)
        return self.stack[self.marks[-1] - 1]

    def pop_mark(self) -> list[object]:
        """Pop the innermost mark and everything above it."""
        if not self.marks:
            raise BrokenStreamError("could not find MARK", self.at)
        mark = self.marks.pop()
        self.fence = self.marks[-1] if self.marks else 0
        items = self.stack[mark:]
        del self.stack[mark:]
        return items

    def push_mark(self) -> None:
        """MARK."""
        if len(self.marks) >= self.limits.max_stack:
            raise LimitReachedError("max_stack")
        self.marks.append(len(self.stack))
        self.fence = len(self.stack)

    def discard(self, items: list[object]) -> None:
        """Note call results thrown away (POP, POP_MARK, left under the top at STOP)."""
        for item in items:
            if isinstance(item, Result):
                self.calls[item.call].discarded = True

    # -- constants -----------------------------------------------------------------------------
    def push_text(self, offset: int, length: int, kind: str, opname: str) -> None:
        """Push a str constant, decoding it only if short."""
        text = None
        if length <= SHORT_TEXT:
            try:
                if kind == "utf-8":
                    text = str(self.view[offset : offset + length], "utf-8", "surrogatepass")
                else:
                    text = decode(self.view[offset : offset + length].tobytes(), kind)
            except (UnicodeDecodeError, ValueError):
                if kind == "utf-8":
                    raise BrokenStreamError(f"{opname} holds invalid UTF-8", self.at) from None
                raise BrokenStreamError(f"{opname} holds an invalid escape", self.at) from None
        self.stack.append(Str(text, opname, self.at, offset, length, kind))
        if length >= 3:
            self.note_nested(offset, length)

    def push_bytes(self, offset: int, length: int) -> None:
        """Push a bytes constant by reference."""
        self.stack.append(Blob(offset, length))
        if length >= 3:
            self.note_nested(offset, length)

    def note_nested(self, offset: int, length: int) -> None:
        """Record a constant that looks like a pickle itself (protocol 2+ header, or an opcode...STOP)."""
        if length < 3 or len(self.nested) >= _MAX_NESTED:
            return
        view = self.view
        first = view[offset]
        if first == 0x80:
            hit = 2 <= view[offset + 1] <= 5
        elif first == 0xC2:  # a latin-1 pickle carried in a str: '\x80' is C2 80 in UTF-8
            hit = view[offset + 1] == 0x80 and 2 <= view[offset + 2] <= 5
        else:
            hit = view[offset + length - 1] == 0x2E and is_opcode(first)
        if hit:
            self.nested.append((offset, length))

    # -- imports and calls ---------------------------------------------------------------------
    def make_global(self, module: str, name: str, opname: str, via: str) -> GlobalRef:
        """Record an import of ``module.name`` as CPython's ``find_class`` would resolve it."""
        mapped_module, mapped_name = compat_resolve(module, name, self.proto)
        if (mapped_module, mapped_name) != (module, name):
            via = f"{via} (mapped from {module}.{name} by _compat_pickle, protocol {self.proto})"
        ref = GlobalRef(
            module=mapped_module, name=mapped_name, opcode=opname, index=self.index, offset=self.at, via=via
        )
        self.globals.append(ref)
        return ref

    def call(self, func: object, opname: str, args: object) -> None:
        """Record a call of ``func`` and push its result."""
        callee = func if isinstance(func, GlobalRef) else None
        if callee is None:
            what = (
                "a dynamically imported value"
                if isinstance(func, Dynamic)
                else "a value that is not a global"
            )
            self.dynamic.append((self.index, self.at, f"{opname} calls {what}"))
        number = len(self.calls)
        self.calls.append(CallRecord(callee, opname, self.index, self.at, False))
        cls = callee
        if callee is not None and callee.dotted in _CLASS_HELPERS and isinstance(args, tuple) and args:
            first = args[0]
            cls = first if isinstance(first, GlobalRef) else None
        self.stack.append(Result(number, cls, args))

    def build(self) -> int | None:
        """BUILD: record the state-setting; return bytes joblib reads from the stream, if any."""
        state = self.pop()
        target = self.top()
        if isinstance(target, GlobalRef):
            self.calls.append(CallRecord(target, "BUILD", self.index, self.at, True))
        elif isinstance(target, Result):
            self.calls.append(CallRecord(target.callee, "BUILD", self.index, self.at, False))
            target.state = state
            if target.callee is not None and target.callee.dotted == _JOBLIB_WRAPPER:
                return self.joblib_array(target)
        return None

    def joblib_array(self, wrapper: Result) -> int:
        """Skip the array data joblib wrote after the wrapper; analyse an object array's pickle."""
        layout = joblib_array_bytes(wrapper.state)
        if layout is None:
            raise BrokenStreamError("joblib array header that cannot be sized", self.at)
        has_objects, nbytes, padded = layout
        pos = self.pos_after
        self.stack[-1] = OPAQUE
        if has_objects:
            if self.depth + 1 > self.limits.max_nesting:
                raise LimitReachedError("max_nesting")
            inner = self.run_inner(pos)
            self.inline.append(inner)
            if inner.malformed is not None or inner.limit_hit is not None:
                raise BrokenStreamError(
                    f"object array pickle inside joblib stream: {inner.malformed}", inner.end
                )
            return inner.end
        start = pos
        if padded:
            self.need(pos, 1)
            pos += 1 + self.view[pos]
        self.need(pos, nbytes)
        self.skipped.append((start, pos + nbytes - start))
        return pos + nbytes

    @abstractmethod
    def run_inner(self, pos: int) -> PickleAnalysis:
        """Analyse a pickle that starts at ``pos`` inside this one (joblib object arrays)."""

    def line_end(self, pos: int) -> int:
        """Offset of the newline ending the text argument that starts at ``pos``."""
        if self.find is not None:
            newline = int(self.find(b"\n", pos, self.bound))
        else:
            newline = -1
            at = pos
            while at < self.bound and newline < 0:
                chunk = self.view[at : min(at + 65_536, self.bound)].tobytes()
                found = chunk.find(b"\n")
                newline = at + found if found >= 0 else -1
                at += len(chunk)
        if newline < 0:
            if self.bound < self.size:
                raise LimitReachedError("max_bytes")
            raise BrokenStreamError("pickle data was truncated (text argument without newline)", self.at)
        return newline

    def line(self, pos: int, limit: int = 4096) -> tuple[bytes, int]:
        """A short text argument (a number, a name) and the offset after its newline."""
        end = self.line_end(pos)
        if end - pos > limit:
            raise BrokenStreamError("text argument too long", self.at)
        return self.view[pos:end].tobytes(), end + 1
