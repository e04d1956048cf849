"""One method per pickle opcode: what it does to the symbolic stack, memo and records.

Each handler takes the offset just after the opcode byte and returns the offset of the next opcode.
Errors follow ``Modules/_pickle.c``: where CPython raises, the handler raises :class:`BrokenStreamError`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from garrison.supplychain.pickle.model import GlobalRef, PersistentRef
from garrison.supplychain.pickle.state import BrokenStreamError, LimitReachedError, State, StopReachedError
from garrison.supplychain.pickle.values import MAX_NAME_TEXT, OPAQUE, DictVal, Dynamic, Result, Str, plain

_U2 = struct.Struct("<H")
_U4 = struct.Struct("<I")
_I4 = struct.Struct("<i")
_U8 = struct.Struct("<Q")
_F8 = struct.Struct(">d")
_UNSIGNED = {2: _U2, 4: _U4, 8: _U8}
_HIGHEST_PROTOCOL = 5

Handler = Callable[["Handlers", int], int]
"""An opcode's semantics: called with the machine and the offset after the opcode byte, returns the
offset of the next opcode. Handlers are plain functions, shared by every machine of a class."""


class Handlers(State):
    """The opcode semantics, on top of :class:`State`."""

    # -- helpers -------------------------------------------------------------------------------
    def u(self, pos: int, size: int) -> int:
        """Unsigned little-endian int of ``size`` bytes at ``pos``."""
        self.need(pos, size)
        view = self.view
        if size == 1:
            return int(view[pos])
        return int(_UNSIGNED[size].unpack_from(view, pos)[0])

    def text_arg(self, pos: int, size: int, kind: str, opname: str) -> int:
        """A length-prefixed str constant."""
        if opname == "BINSTRING":
            self.need(pos, 4)
            length = int(_I4.unpack_from(self.view, pos)[0])
            if length < 0:
                raise BrokenStreamError("BINSTRING pickle has negative byte count", self.at)
        else:
            length = self.u(pos, size)
        pos += size
        self.need(pos, length)
        self.push_text(pos, length, kind, opname)
        return pos + length

    def bytes_arg(self, pos: int, size: int) -> int:
        """A length-prefixed bytes constant."""
        length = self.u(pos, size)
        pos += size
        self.need(pos, length)
        self.push_bytes(pos, length)
        return pos + length

    def memo_get(self, key: int, opname: str) -> None:
        """Push memo[key] (a name constant carries the GET in its provenance)."""
        if key not in self.memo:
            raise BrokenStreamError(f"{opname} {key}: memo key not found", self.at)
        value = self.memo[key]
        if isinstance(value, Str):
            value = value.fetched(f"{opname} {key}")
        self.stack.append(value)

    def memo_put(self, key: int) -> None:
        """memo[key] = top of stack."""
        stack, memo = self.stack, self.memo
        if len(stack) <= self.fence:
            raise BrokenStreamError("unpickling stack underflow", self.at)
        if len(memo) >= self.limits.max_memo and key not in memo:
            raise LimitReachedError("max_memo")
        memo[key] = stack[-1]

    def name_of(self, value: object, role: str) -> tuple[str, str] | None:
        """A STACK_GLOBAL operand as (text, provenance), ``None`` when it is not a constant."""
        if isinstance(value, Str):
            text = value.text
            if text is None:
                raw = self.view[value.offset : value.offset + min(value.length, MAX_NAME_TEXT)].tobytes()
                try:
                    text = (
                        raw.decode("utf-8", "surrogatepass")
                        if value.kind == "utf-8"
                        else raw.decode("latin-1")
                    )
                except UnicodeDecodeError:
                    raise BrokenStreamError(f"STACK_GLOBAL {role} is not valid UTF-8", self.at) from None
            return text, value.via
        if isinstance(value, Result | Dynamic) or value is OPAQUE:
            return None
        raise BrokenStreamError("STACK_GLOBAL requires str", self.at)

    # -- opcodes -------------------------------------------------------------------------------
    def op_proto(self, pos: int) -> int:
        proto = self.u(pos, 1)
        if proto > _HIGHEST_PROTOCOL:
            raise BrokenStreamError(f"unsupported pickle protocol: {proto}", self.at)
        self.proto = proto
        self.max_proto = max(self.max_proto, proto)
        return pos + 1

    def op_frame(self, pos: int) -> int:
        length = self.u(pos, 8)
        if pos + 8 + length > self.size:
            raise BrokenStreamError("FRAME runs past the end of the data", self.at)
        return pos + 8

    def op_stop(self, pos: int) -> int:
        self.pop()
        self.discard(self.stack[:-1] if self.stack else [])
        raise StopReachedError(pos)

    def op_mark(self, pos: int) -> int:
        self.push_mark()
        return pos

    def op_pop(self, pos: int) -> int:
        if self.marks and self.marks[-1] == len(self.stack):
            self.marks.pop()
            self.fence = self.marks[-1] if self.marks else 0
        else:
            self.discard([self.pop()])
        return pos

    def op_pop_mark(self, pos: int) -> int:
        self.discard(self.pop_mark())
        return pos

    def op_dup(self, pos: int) -> int:
        self.stack.append(self.top())
        return pos

    @staticmethod
    def op_const(value: object) -> Handler:
        def push(m: Handlers, pos: int) -> int:
            m.stack.append(value)
            return pos

        return push

    def number(self, pos: int, opname: str) -> tuple[object, int]:
        """A protocol 0 INT/LONG/FLOAT text argument, parsed the way CPython does."""
        raw, pos = self.line(pos, limit=5000)
        if opname == "LONG" and raw.endswith(b"L"):
            raw = raw[:-1]
        try:
            if opname == "FLOAT":
                return float(raw), pos
            if opname == "INT" and raw in (b"00", b"01"):
                return raw == b"01", pos
            return int(raw, 0), pos
        except ValueError:
            raise BrokenStreamError(f"invalid literal for {opname}", self.at) from None

    @staticmethod
    def op_number(opname: str) -> Handler:
        def push(m: Handlers, pos: int) -> int:
            value, pos = m.number(pos, opname)
            m.stack.append(value)
            return pos

        return push

    def op_binfloat(self, pos: int) -> int:
        self.need(pos, 8)
        self.stack.append(float(_F8.unpack_from(self.view, pos)[0]))
        return pos + 8

    @staticmethod
    def op_fixed_int(size: int, signed: bool) -> Handler:
        packer = {(1, False): struct.Struct("<B"), (2, False): _U2, (4, True): _I4}[(size, signed)]
        unpack_from = packer.unpack_from

        def push(m: Handlers, pos: int) -> int:
            if pos + size > m.bound:
                m.need(pos, size)
            m.stack.append(unpack_from(m.view, pos)[0])
            return pos + size

        return push

    @staticmethod
    def op_long_n(size: int) -> Handler:
        def push(m: Handlers, pos: int) -> int:
            m.need(pos, size)
            length = int.from_bytes(m.view[pos : pos + size].tobytes(), "little", signed=True)
            if length < 0:
                raise BrokenStreamError("LONG pickle has negative byte count", m.at)
            pos += size
            m.need(pos, length)
            raw = m.view[pos : pos + min(length, 16)].tobytes()
            m.stack.append(int.from_bytes(raw, "little", signed=True) if length <= 16 else OPAQUE)
            return pos + length

        return push

    def op_string(self, pos: int) -> int:
        end = self.line_end(pos)
        quote = self.view[pos] if end > pos else 0
        if end - pos < 2 or quote not in b"'\"" or self.view[end - 1] != quote:
            raise BrokenStreamError("the STRING opcode argument must be quoted", self.at)
        self.push_text(pos + 1, end - pos - 2, "escape", "STRING")
        return end + 1

    def op_unicode(self, pos: int) -> int:
        end = self.line_end(pos)
        self.push_text(pos, end - pos, "raw-unicode-escape", "UNICODE")
        return end + 1

    def op_global(self, pos: int) -> int:
        module, pos = self.line(pos)
        name, pos = self.line(pos)
        try:
            mod_text, name_text = module.decode("utf-8"), name.decode("utf-8")
        except UnicodeDecodeError:
            raise BrokenStreamError("GLOBAL operands are not valid UTF-8", self.at) from None
        self.stack.append(self.make_global(mod_text, name_text, "GLOBAL", f"GLOBAL@{self.at}"))
        return pos

    def op_stack_global(self, pos: int) -> int:
        name = self.name_of(self.pop(), "name")
        module = self.name_of(self.pop(), "module")
        if module is None or name is None:
            self.dynamic.append((self.index, self.at, "STACK_GLOBAL operands are computed at load time"))
            self.stack.append(Dynamic("STACK_GLOBAL with computed operands"))
            return pos
        via = f"STACK_GLOBAL <- module {module[1]}, name {name[1]}"
        self.stack.append(self.make_global(module[0], name[0], "STACK_GLOBAL", via))
        return pos

    def op_inst(self, pos: int) -> int:
        args = self.pop_mark()
        module, pos = self.line(pos)
        name, pos = self.line(pos)
        try:
            mod_text, name_text = module.decode("ascii"), name.decode("ascii")
        except UnicodeDecodeError:
            raise BrokenStreamError("INST operands are not ASCII", self.at) from None
        ref = self.make_global(mod_text, name_text, "INST", f"INST@{self.at}")
        self.call(ref, "INST", tuple(args))
        return pos

    def op_obj(self, pos: int) -> int:
        items = self.pop_mark()
        if not items:
            raise BrokenStreamError("unpickling stack underflow", self.at)
        self.call(items[0], "OBJ", tuple(items[1:]))
        return pos

    def op_reduce(self, pos: int) -> int:
        args = self.pop()
        func = self.pop()
        self.call(func, "REDUCE", args)
        return pos

    def op_newobj(self, pos: int) -> int:
        args = self.pop()
        cls = self.pop()
        self.call(cls, "NEWOBJ", args)
        return pos

    def op_newobj_ex(self, pos: int) -> int:
        self.pop()
        args = self.pop()
        cls = self.pop()
        self.call(cls, "NEWOBJ_EX", args)
        return pos

    def op_build(self, pos: int) -> int:
        if len(self.stack) - 2 < self.fence:
            raise BrokenStreamError("unpickling stack underflow", self.at)
        self.pos_after = pos
        skip_to = self.build()
        return pos if skip_to is None else skip_to

    @staticmethod
    def op_ext(size: int) -> Handler:
        def ext(m: Handlers, pos: int) -> int:
            code = m.u(pos, size)
            if code <= 0:
                raise BrokenStreamError("EXT specifies code <= 0", m.at)
            why = f"EXT{size} {code}: import through the copyreg extension registry (none by default)"
            m.dynamic.append((m.index, m.at, why))
            m.stack.append(Dynamic(why))
            return pos + size

        return ext

    def op_persid(self, pos: int) -> int:
        raw, pos = self.line(pos, limit=1 << 20)
        try:
            pid: object = raw.decode("ascii")
        except UnicodeDecodeError:
            raise BrokenStreamError("persistent IDs in protocol 0 must be ASCII strings", self.at) from None
        self.pids.append(PersistentRef(index=self.index, offset=self.at, value=pid))
        self.stack.append(OPAQUE)
        return pos

    def op_binpersid(self, pos: int) -> int:
        pid = self.pop()
        self.pids.append(PersistentRef(index=self.index, offset=self.at, value=plain(pid)))
        # torch's legacy loader answers ('module', cls, source_file, source) with cls itself.
        is_module = isinstance(pid, tuple) and len(pid) >= 2 and isinstance(pid[0], Str)
        if is_module and pid[0].text == "module" and isinstance(pid[1], GlobalRef):  # type: ignore[index]
            self.stack.append(pid[1])  # type: ignore[index]
        else:
            self.stack.append(OPAQUE)
        return pos

    def op_get(self, pos: int) -> int:
        raw, pos = self.line(pos)
        if not raw.strip().lstrip(b"+-").isdigit():
            raise BrokenStreamError("invalid GET argument", self.at)
        self.memo_get(int(raw), "GET")
        return pos

    def op_put(self, pos: int) -> int:
        raw, pos = self.line(pos)
        if not raw.strip().lstrip(b"+-").isdigit():
            raise BrokenStreamError("invalid PUT argument", self.at)
        key = int(raw)
        if key < 0:
            raise BrokenStreamError("negative PUT argument", self.at)
        self.memo_put(key)
        return pos

    @staticmethod
    def op_memo(kind: str, size: int) -> Handler:
        if size == 1:  # BINGET and BINPUT: the commonest opcodes after the constants

            def memo1(m: Handlers, pos: int) -> int:
                if pos >= m.bound:
                    m.need(pos, 1)
                if kind == "get":
                    m.memo_get(m.view[pos], "BINGET")
                else:
                    m.memo_put(m.view[pos])
                return pos + 1

            return memo1
        names = {("get", 1): "BINGET", ("get", 4): "LONG_BINGET"}

        def memo(m: Handlers, pos: int) -> int:
            key = m.u(pos, size)
            if kind == "get":
                m.memo_get(key, names[(kind, size)])
            else:
                m.memo_put(key)
            return pos + size

        return memo

    def op_memoize(self, pos: int) -> int:
        self.memo_put(len(self.memo))
        return pos

    @staticmethod
    def op_tuple_n(count: int) -> Handler:
        def build(m: Handlers, pos: int) -> int:
            stack = m.stack
            if len(stack) - count < m.fence:
                raise BrokenStreamError("unpickling stack underflow", m.at)
            items = tuple(stack[-count:])
            del stack[-count:]
            stack.append(items)
            return pos

        return build

    def op_tuple(self, pos: int) -> int:
        self.stack.append(tuple(self.pop_mark()))
        return pos

    def op_collection(self, pos: int) -> int:  # LIST, FROZENSET
        self.pop_mark()
        self.stack.append(OPAQUE)
        return pos

    def op_dict(self, pos: int) -> int:
        items = self.pop_mark()
        if len(items) % 2:
            raise BrokenStreamError("odd number of items for DICT", self.at)
        value = DictVal()
        for i in range(0, len(items), 2):
            value.set(items[i], items[i + 1])
        self.stack.append(value)
        return pos

    def op_empty_dict(self, pos: int) -> int:
        self.stack.append(DictVal())
        return pos

    def op_append(self, pos: int) -> int:
        self.pop()
        if not self.stack:
            raise BrokenStreamError("unpickling stack underflow", self.at)
        return pos

    def op_appends(self, pos: int) -> int:  # APPENDS, ADDITEMS
        self.below_mark()
        self.pop_mark()
        return pos

    def op_setitem(self, pos: int) -> int:
        value = self.pop()
        key = self.pop()
        if not self.stack:
            raise BrokenStreamError("unpickling stack underflow", self.at)
        target = self.stack[-1]
        if isinstance(target, DictVal):
            target.set(key, value)
        return pos

    def op_setitems(self, pos: int) -> int:
        target = self.below_mark()
        items = self.pop_mark()
        if len(items) % 2:
            raise BrokenStreamError("odd number of items for SETITEMS", self.at)
        if isinstance(target, DictVal):
            for i in range(0, len(items), 2):
                target.set(items[i], items[i + 1])
        return pos

    def op_next_buffer(self, pos: int) -> int:
        self.buffers += 1
        self.stack.append(OPAQUE)
        return pos

    def op_readonly_buffer(self, pos: int) -> int:
        self.top()
        return pos
