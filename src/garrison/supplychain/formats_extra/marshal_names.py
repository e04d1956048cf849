"""Names used by marshalled Python code, read without :func:`marshal.loads`.

Keras ``Lambda`` layers store a function's code object as base64 of :func:`marshal.dumps`. Loading
that with ``marshal.loads`` builds a real code object from hostile bytes (CPython documents marshal
as unsafe for untrusted data, and malformed code objects can crash the interpreter when used), so
this reader walks the marshal stream by hand: it understands every type code, keeps the strings it
finds, builds no code objects, and stops at a hard limit on depth, object count and size.

Code objects are laid out differently by Python version. The reader tries the layouts of CPython
3.11 to 3.13 (five leading int32 fields) and 3.8 to 3.10 (six) and keeps the first that consumes
the stream exactly; when neither fits it falls back to the strings it could collect.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

MAX_DEPTH = 48
MAX_OBJECTS = 200_000
MAX_BYTES = 4 * 2**20

_FLAG_REF = 0x80
_SINGLETONS = frozenset(b"0NFTS.")


@dataclass(frozen=True, slots=True)
class _Code:
    name: str


class MarshalFormatError(ValueError):
    """The stream is not marshal data this reader understands (or it passes a limit)."""


@dataclass(slots=True)
class CodeNames:
    """Names a marshalled code object (and the code objects nested in it) refer to."""

    names: list[str] = field(default_factory=list)
    """Global and attribute names used (``co_names``), in order, without repeats."""
    functions: list[str] = field(default_factory=list)
    """Names of the code objects (``co_name``)."""
    strings: list[str] = field(default_factory=list)
    """String constants (first 50)."""
    layout: str = ""
    """Which code-object layout fitted: ``3.11+``, ``3.8-3.10`` or ``strings-only``."""


@dataclass(slots=True)
class _Reader:
    data: bytes
    ints_before_code: int
    pos: int = 0
    objects: int = 0
    refs: list[object] = field(default_factory=list)
    out: CodeNames = field(default_factory=CodeNames)

    def take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise MarshalFormatError("marshal data is truncated")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def int32(self) -> int:
        return int(struct.unpack("<i", self.take(4))[0])

    def size(self) -> int:
        value = self.int32()
        if value < 0 or value > len(self.data):
            raise MarshalFormatError(f"marshal size {value} is out of range")
        return value

    def read(self, depth: int = 0) -> object:
        if depth > MAX_DEPTH:
            raise MarshalFormatError("marshal data is nested too deeply")
        self.objects += 1
        if self.objects > MAX_OBJECTS:
            raise MarshalFormatError("marshal data has too many objects")
        code = self.take(1)[0]
        flag, kind = code & _FLAG_REF, code & ~_FLAG_REF
        slot = -1
        if flag:
            slot = len(self.refs)
            self.refs.append(None)
        value = self._value(chr(kind), depth)
        if slot >= 0:
            self.refs[slot] = value
        return value

    def _value(self, kind: str, depth: int) -> object:
        if ord(kind) in _SINGLETONS:
            return None
        if kind == "i":
            return self.int32()
        if kind == "l":
            digits = self.int32()
            self.take(2 * min(abs(digits), len(self.data)))
            return 0
        if kind == "g":
            self.take(8)
            return 0.0
        if kind == "y":
            self.take(16)
            return 0.0
        if kind == "f":
            self.take(self.take(1)[0])
            return 0.0
        if kind == "x":
            self.take(self.take(1)[0])
            self.take(self.take(1)[0])
            return 0.0
        if kind in "stuaA":
            raw = self.take(self.size())
            return raw if kind == "s" else raw.decode("utf-8", "replace")
        if kind in "zZ":
            return self.take(self.take(1)[0]).decode("latin-1")
        if kind == ")":
            return tuple(self.read(depth + 1) for _ in range(self.take(1)[0]))
        if kind in "([<>":
            return tuple(self.read(depth + 1) for _ in range(self.size()))
        if kind == "{":
            items = []
            while self.data[self.pos : self.pos + 1] not in (b"0", b""):
                items.append((self.read(depth + 1), self.read(depth + 1)))
            self.take(1)
            return tuple(items)
        if kind == "r":
            index = self.int32()
            if not 0 <= index < len(self.refs):
                raise MarshalFormatError(f"marshal back-reference {index} is out of range")
            return self.refs[index]
        if kind == "c":
            return self._code(depth)
        raise MarshalFormatError(f"unknown marshal type code {kind!r}")

    def _code(self, depth: int) -> _Code:
        for _ in range(self.ints_before_code):
            self.int32()
        self.read(depth + 1)  # bytecode
        consts = self.read(depth + 1)
        names = self.read(depth + 1)
        rest = [self.read(depth + 1) for _ in range(5)]  # objects before co_firstlineno
        self.int32()  # co_firstlineno
        for _ in range(2 if self.ints_before_code == 5 else 1):
            self.read(depth + 1)  # line table, exception table
        name_index = 3 if self.ints_before_code == 5 else 4  # co_name among ``rest``
        found = rest[name_index]
        name = found if isinstance(found, str) else "?"
        self._note(consts, names, name)
        return _Code(name)

    def _note(self, consts: object, names: object, name: str) -> None:
        if name not in self.out.functions:
            self.out.functions.append(name)
        for item in names if isinstance(names, tuple) else ():
            if isinstance(item, str) and item not in self.out.names:
                self.out.names.append(item)
        for item in consts if isinstance(consts, tuple) else ():
            if isinstance(item, str) and len(self.out.strings) < 50:
                self.out.strings.append(item)


def _strings_only(data: bytes) -> CodeNames:
    """Printable identifier-like runs of the stream: the fallback when no layout fits."""
    out = CodeNames(layout="strings-only")
    run = bytearray()
    for byte in data[:MAX_BYTES] + b"\x00":
        if 32 < byte < 127:
            run.append(byte)
            continue
        if len(run) >= 2:
            word = run.decode("ascii")
            if word.replace("_", "a").replace(".", "a").isalnum() and word not in out.names:
                out.names.append(word)
        run.clear()
    return out


def code_names(data: bytes) -> CodeNames:
    """The names used by the marshalled code object in ``data`` (never executed, never built)."""
    if len(data) > MAX_BYTES:
        raise MarshalFormatError(f"marshal data is {len(data)} bytes, over the {MAX_BYTES}-byte limit")
    for ints, label in ((5, "3.11+"), (6, "3.8-3.10")):
        reader = _Reader(data=data, ints_before_code=ints)
        try:
            first = reader.read()
        except (MarshalFormatError, UnicodeDecodeError, IndexError, struct.error):
            continue
        if reader.pos == len(data) and isinstance(first, _Code):
            reader.out.layout = label
            return reader.out
    return _strings_only(data)
