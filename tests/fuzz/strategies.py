"""Structured Hypothesis strategies that build hostile pickle, zip and GGUF files.

Shared by the fuzz smoke tests (``tests/fuzz/test_parsers_fuzz.py``) and the long fuzz runner
(``benchmarks/fuzz/run.py``). Every strategy yields ``bytes``. Inputs are built the way real files
are, then lied about: pickles are opcode programs from :mod:`pickletools`' table with plausible
arguments (and ``pickle.dumps`` of nested data, and the malicious and benign samples of
``tests/supplychain/malicious.py``); zips are written byte by byte with every header field under
control, or taken from :mod:`zipfile` and ``torch.save``, then their size, offset, CRC, flag,
name-length, extra-field, comment and zip64 fields are overwritten with edge values; GGUF files
are built from typed metadata and tensor tables, then their counts, lengths and types are bent.
A generic mutator (bit flips, truncation, deletion, duplication, splicing) runs on top.

Nothing here loads what it builds; the malicious samples would at most touch a canary path.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import io
import lzma
import pickle
import pickletools
import struct
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import strategies as st

CANARY = Path("/tmp/garrison-fuzz-canary-never-created")

# Strategies built once: Hypothesis validates every new strategy object on its first draw.
ints = functools.cache(st.integers)
blobs = functools.cache(st.binary)
texts = functools.cache(st.text)
floats = functools.cache(st.floats)

# =================================================================================================
# Generic mutation engine
# =================================================================================================


@dataclass(frozen=True, slots=True)
class Field:
    """An integer field inside a file: where it is, how wide, which byte order."""

    offset: int
    size: int
    big: bool = False


@dataclass(frozen=True, slots=True)
class Layout:
    """A file's bytes and the integer fields a structure-aware mutation may overwrite."""

    data: bytes
    fields: tuple[Field, ...] = ()


_EDGE = (0, 1, 2, 3, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x10000, 0x7FFFFFFF)
_EDGE += (0x80000000, 0xFFFFFFFE, 0xFFFFFFFF, 2**32, 2**40, 2**62, 2**63 - 1, 2**63, 2**64 - 1)


def pick(draw: st.DrawFn, n: int) -> int:
    """A branch index in ``range(n)`` (cheaper for Hypothesis than ``one_of`` over many strategies)."""
    return draw(ints(0, n - 1))


def rare(draw: st.DrawFn, odds: int) -> bool:
    """True about once in ``odds`` draws.

    Hypothesis often draws the smallest choice everywhere (its all-zero example, its mutations),
    so the rare outcome is a middle value and every choice's index 0 is the ordinary case.
    """
    return draw(ints(0, odds - 1)) == odds // 2


def _fit(value: int, size: int) -> int:
    return value & ((1 << (size * 8)) - 1)


def _field_value(draw: st.DrawFn, current: int, size: int, total: int) -> int:
    kind = pick(draw, 4)
    if kind == 0:
        return _fit(_EDGE[pick(draw, len(_EDGE))], size)
    if kind == 1:
        return _fit(current + draw(ints(-40, 40)), size)
    if kind == 2:
        return _fit(total + draw(ints(-64, 64)), size)
    return draw(ints(0, (1 << (size * 8)) - 1))


_OPS = ("flip", "byte", "int", "truncate", "delete", "insert", "dup", "splice")


@st.composite
def mutate(draw: st.DrawFn, layout: Layout, pool: Sequence[bytes] = ()) -> bytes:
    """``layout.data`` with a few field edits, then a few byte-level edits."""
    data = bytearray(layout.data)
    fields = [f for f in layout.fields if f.offset + f.size <= len(data)]
    if fields:
        for _ in range(draw(ints(0, 4))):
            spot = fields[pick(draw, len(fields))]
            order = "big" if spot.big else "little"
            current = int.from_bytes(data[spot.offset : spot.offset + spot.size], order)
            value = _field_value(draw, current, spot.size, len(data))
            data[spot.offset : spot.offset + spot.size] = value.to_bytes(spot.size, order)
    for _ in range(draw(ints(0 if fields else 1, 4))):
        op = _OPS[pick(draw, len(_OPS))]
        size = len(data)
        pos = draw(ints(0, max(size - 1, 0)))
        if op == "flip" and size:
            data[pos] ^= 1 << draw(ints(0, 7))
        elif op == "byte" and size:
            data[pos] = (0, 1, 0x2E, 0x7F, 0x80, 0xFF)[pick(draw, 6)] if pick(draw, 2) else draw(ints(0, 255))
        elif op == "int" and size:
            width = (4, 8, 2, 1)[pick(draw, 4)]
            value = _fit(_EDGE[pick(draw, len(_EDGE))], width)
            data[pos : pos + width] = value.to_bytes(width, "little")
        elif op == "truncate":
            del data[pos:]
        elif op == "delete":
            del data[pos : pos + draw(ints(1, 64))]
        elif op == "insert":
            data[pos:pos] = draw(blobs(min_size=1, max_size=16))
        elif op == "dup" and size:
            length = draw(ints(1, 256))
            data[pos:pos] = data[pos : pos + length]
        elif op == "splice" and pool:
            other = pool[draw(ints(0, len(pool) - 1))]
            if other:
                start = draw(ints(0, len(other) - 1))
                data[pos:pos] = other[start : start + draw(ints(1, 512))]
    return bytes(data)


def mutated(base: st.SearchStrategy[Layout], pool: Sequence[bytes] = ()) -> st.SearchStrategy[bytes]:
    """Mutations of what ``base`` draws."""
    return base.flatmap(lambda layout: mutate(layout, pool))


def plain(base: st.SearchStrategy[bytes]) -> st.SearchStrategy[Layout]:
    """Bytes as a :class:`Layout` without known fields."""
    return base.map(Layout)


# =================================================================================================
# Pickle
# =================================================================================================

OP: dict[str, bytes] = {o.name: o.code.encode("latin-1") for o in pickletools.opcodes}
"""Opcode name -> its byte, from the standard library's table (protocols 0 to 5)."""

_NAMES: tuple[tuple[str, str], ...] = (
    ("os", "system"),
    ("posix", "system"),
    ("nt", "system"),
    ("builtins", "eval"),
    ("builtins", "exec"),
    ("builtins", "getattr"),
    ("builtins", "__import__"),
    ("__builtin__", "eval"),
    ("subprocess", "Popen"),
    ("runpy", "_run_code"),
    ("pickle", "loads"),
    ("torch", "load"),
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("copyreg", "_reconstructor"),
    ("copy_reg", "_reconstructor"),
    ("copyreg", "__newobj__"),
    ("builtins", "object"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch", "FloatStorage"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("joblib.numpy_pickle", "NumpyArrayWrapper"),
    ("sklearn.pipeline", "Pipeline"),
    ("__torch__.m", "Net"),
    ("torch.jit._pickle", "build_intlist"),
    ("os.path", "join"),
    ("builtins", "getattr.__call__"),
    ("", ""),
    ("a" * 300, "b"),
    ("m\x00", "n"),
)

_WORDS = ("", "os", "system", "module", "shape", "dtype", "order", "f8", "O", "<i4", "C")


def _text(draw: st.DrawFn) -> str:
    return _WORDS[pick(draw, len(_WORDS))] if pick(draw, 2) else draw(texts(max_size=24))


def su(text: str) -> bytes:
    """A str constant (SHORT_BINUNICODE or BINUNICODE)."""
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) < 256:
        return OP["SHORT_BINUNICODE"] + bytes([len(raw)]) + raw
    return OP["BINUNICODE"] + struct.pack("<I", len(raw)) + raw


def sb(data: bytes) -> bytes:
    """A bytes constant (SHORT_BINBYTES or BINBYTES)."""
    if len(data) < 256:
        return OP["SHORT_BINBYTES"] + bytes([len(data)]) + data
    return OP["BINBYTES"] + struct.pack("<I", len(data)) + data


def _global(draw: st.DrawFn) -> bytes:
    module, attr = _NAMES[pick(draw, len(_NAMES))]
    form = pick(draw, 3)
    if form == 0:
        return OP["GLOBAL"] + f"{module}\n{attr}\n".encode("utf-8", "surrogatepass")
    if form == 1:
        return su(module) + su(attr) + OP["STACK_GLOBAL"]
    return su(module) + OP["MEMOIZE"] + su(attr) + OP["MEMOIZE"] + OP["STACK_GLOBAL"]


def _long1(value: int) -> bytes:
    raw = value.to_bytes((value.bit_length() + 8) // 8 or 1, "little", signed=True)
    return OP["LONG1"] + bytes([len(raw)]) + raw


_TINY_PICKLES: tuple[bytes, ...] = (
    b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.",
    b"\x80\x04\x95\x1a\x00\x00\x00\x00\x00\x00\x00\x8c\x08builtins\x8c\x04eval\x93\x8c\x011\x85R.",
    pickle.dumps({"a": [1, 2]}, protocol=2),
    b"N.",
    b"cposix\nsystem\n(S'true'\ntR.",
)
_SIMPLE = tuple(OP[n] for n in ("NONE", "NEWTRUE", "NEWFALSE", "EMPTY_TUPLE", "EMPTY_LIST", "EMPTY_DICT"))
_SIMPLE += (OP["EMPTY_SET"], OP["NEXT_BUFFER"])


def _const(draw: st.DrawFn) -> bytes:
    kind = pick(draw, 19)
    if kind == 0:
        return _SIMPLE[pick(draw, len(_SIMPLE))]
    if kind == 1:
        return OP["BININT1"] + bytes([draw(ints(0, 255))])
    if kind == 2:
        return OP["BININT2"] + struct.pack("<H", draw(ints(0, 0xFFFF)))
    if kind == 3:
        return OP["BININT"] + struct.pack("<i", draw(ints(-(2**31), 2**31 - 1)))
    if kind == 4:
        return OP["INT"] + str(draw(ints())).encode() + b"\n"
    if kind == 5:
        return OP["LONG"] + str(draw(ints())).encode() + b"L\n"
    if kind == 6:
        return _long1(draw(ints(-(2**200), 2**200)))
    if kind == 7:
        return OP["BINFLOAT"] + struct.pack(">d", draw(floats()))
    if kind == 8:
        return OP["FLOAT"] + repr(draw(floats())).encode() + b"\n"
    if kind == 9:
        return su(_text(draw))
    if kind == 10:
        return OP["STRING"] + repr(_text(draw).encode("utf-8", "surrogatepass"))[1:].encode() + b"\n"
    if kind == 11:
        return OP["UNICODE"] + _text(draw).encode("raw-unicode-escape").replace(b"\n", b"") + b"\n"
    if kind == 12:
        return sb(draw(blobs(max_size=40)))
    if kind == 13:
        data = draw(blobs(max_size=40))
        return OP["BYTEARRAY8"] + struct.pack("<Q", len(data)) + data
    if kind == 14:
        data = draw(blobs(max_size=40))
        return OP["SHORT_BINSTRING"] + bytes([len(data)]) + data
    if kind == 15:
        return sb(_TINY_PICKLES[pick(draw, len(_TINY_PICKLES))])
    if kind == 16:  # a latin-1 pickle carried in a str
        return su(_TINY_PICKLES[pick(draw, len(_TINY_PICKLES))].decode("latin-1"))
    if kind == 17:
        return OP["EXT2"] + struct.pack("<H", draw(ints(1, 0xFFFF)))
    return _global(draw)


def _joblib_array(dtype: str, count: int, payload: bytes) -> bytes:
    """A joblib NumpyArrayWrapper whose BUILD makes joblib read raw bytes (or a pickle) after it."""
    dtype_call = OP["GLOBAL"] + b"numpy\ndtype\n" + su(dtype) + OP["TUPLE1"] + OP["REDUCE"]
    shape = OP["BININT"] + struct.pack("<i", count) + OP["TUPLE1"]
    state = OP["EMPTY_DICT"] + OP["MARK"] + su("shape") + shape + su("dtype") + dtype_call
    state += su("order") + su("C") + OP["SETITEMS"]
    wrapper = OP["GLOBAL"] + b"joblib.numpy_pickle\nNumpyArrayWrapper\n" + OP["EMPTY_TUPLE"] + OP["NEWOBJ"]
    return wrapper + state + OP["BUILD"] + payload


class _Budget:
    def __init__(self, leaves: int) -> None:
        self.leaves = leaves


def _value(draw: st.DrawFn, budget: _Budget, depth: int = 0) -> bytes:
    """Opcodes that push one value: constants, globals, containers, calls, memo round trips..."""
    budget.leaves -= 1
    if budget.leaves <= 0 or depth >= 6 or (depth > 0 and pick(draw, 3) == 0):
        return _const(draw)

    def inner() -> bytes:
        return _value(draw, budget, depth + 1)

    def items(limit: int = 4) -> bytes:
        return b"".join(inner() for _ in range(pick(draw, limit + 1)))

    def pairs() -> bytes:
        return b"".join(su(_text(draw)) + inner() for _ in range(pick(draw, 4)))

    def args() -> bytes:
        return OP["MARK"] + items() + OP["TUPLE"]

    o = OP
    kind = pick(draw, 32)
    if kind == 0:
        return o["MARK"] + items() + o["TUPLE"]
    if kind == 1:
        return inner() + o["TUPLE1"]
    if kind == 2:
        return inner() + inner() + o["TUPLE2"]
    if kind == 3:
        return inner() + inner() + inner() + o["TUPLE3"]
    if kind == 4:
        return o["EMPTY_LIST"] + o["MEMOIZE"] + o["MARK"] + items() + o["APPENDS"]
    if kind == 5:
        return o["EMPTY_LIST"] + inner() + o["APPEND"]
    if kind == 6:
        return o["MARK"] + items() + o["LIST"]
    if kind == 7:
        return o["EMPTY_DICT"] + o["MARK"] + pairs() + o["SETITEMS"]
    if kind == 8:
        return o["MARK"] + pairs() + o["DICT"]
    if kind == 9:
        return o["EMPTY_DICT"] + su(_text(draw)) + inner() + o["SETITEM"]
    if kind == 10:
        return o["EMPTY_SET"] + o["MARK"] + items() + o["ADDITEMS"]
    if kind == 11:
        return o["MARK"] + items() + o["FROZENSET"]
    if kind == 12:
        return _global(draw) + args() + o["REDUCE"]
    if kind == 13:
        return _global(draw) + args() + o["NEWOBJ"]
    if kind == 14:
        return _global(draw) + args() + o["EMPTY_DICT"] + o["NEWOBJ_EX"]
    if kind == 15:
        state = o["EMPTY_DICT"] + o["MARK"] + pairs() + o["SETITEMS"]
        return _global(draw) + args() + o["REDUCE"] + state + o["BUILD"]
    if kind == 16:
        return _global(draw) + inner() + o["BUILD"]
    if kind == 17:
        return o["MARK"] + _global(draw) + items() + o["OBJ"]
    if kind == 18:
        module, attr = _NAMES[pick(draw, len(_NAMES))]
        return o["MARK"] + items() + o["INST"] + f"{module}\n{attr}\n".encode("utf-8", "replace")
    if kind == 19:
        key = struct.pack("<I", draw(ints(0, 300)))
        return inner() + o["LONG_BINPUT"] + key + o["POP"] + o["LONG_BINGET"] + key
    if kind == 20:
        key = bytes([draw(ints(0, 255))])
        return inner() + o["BINPUT"] + key + o["BINGET"] + key + o["POP"]
    if kind == 21:
        key = b"%d\n" % draw(ints(0, 99))
        return inner() + o["PUT"] + key + o["GET"] + key + o["POP"]
    if kind == 22:
        return inner() + o["MEMOIZE"]
    if kind == 23:
        return inner() + o["DUP"] + o["POP"]
    if kind == 24:
        return inner() + o["BINPERSID"]
    if kind == 25:
        return o["PERSID"] + _text(draw).encode("ascii", "replace").replace(b"\n", b"") + b"\n"
    if kind == 26:
        return inner() + o["READONLY_BUFFER"]
    if kind == 27:  # a pickle inside a bytes constant
        return sb(o["PROTO"] + b"\x02" + inner() + o["STOP"])
    if kind == 28:  # a latin-1 pickle inside a str constant
        return su((o["PROTO"] + b"\x02" + inner() + o["STOP"]).decode("latin-1"))
    if kind == 29:
        dtype = ("<f8", "<i4", "|u1", "O", "<U3", "zz")[pick(draw, 6)]
        payload = (o["PROTO"] + b"\x02" + inner() + o["STOP"]) if dtype == "O" else b"\x00" * 64
        return _joblib_array(dtype, draw(ints(-2, 8)), payload)
    if kind == 30:
        return inner() + o["MARK"] + inner() + inner() + o["POP_MARK"]
    return inner() + draw(RAW_OPCODE)  # something off the grammar


PICKLE_VALUE = st.composite(lambda draw: _value(draw, _Budget(24)))()
"""Opcodes that push one value (a few dozen leaves at most)."""


def _raw_arg(draw: st.DrawFn, name: str | None, opname: str) -> bytes:
    def length() -> int:
        return (255, 2**31 - 1, 2**32 - 1, 2**63)[pick(draw, 4)] if rare(draw, 4) else draw(ints(0, 40))

    def small(top: int) -> int:
        return draw(ints(0, 8)) if pick(draw, 2) else draw(ints(0, top))

    if name is None:
        return b""
    if name == "uint1":
        return bytes([draw(ints(0, 6)) if opname == "PROTO" else small(255)])
    if name == "uint2":
        return struct.pack("<H", small(0xFFFF))
    if name == "uint4":
        return struct.pack("<I", small(2**32 - 1))
    if name == "uint8":
        return struct.pack("<Q", 2**64 - 1 if rare(draw, 8) else small(64))
    if name == "int4":
        return struct.pack("<i", draw(ints(-(2**31), 2**31 - 1)))
    if name == "float8":
        return draw(blobs(min_size=8, max_size=8))
    data = draw(blobs(max_size=40))
    if name in ("long1", "long4"):
        size = 1 if name == "long1" else 4
        n = length()
        return _fit(n, size).to_bytes(size, "little") + data[:n]
    if name in ("string1", "bytes1", "unicodestring1"):
        n = draw(ints(0, 255))
        return bytes([n]) + data[:n]
    if name in ("string4", "bytes4", "unicodestring4"):
        n = length()
        return struct.pack("<I", _fit(n, 4)) + data[:n]
    if name in ("bytes8", "unicodestring8", "bytearray8"):
        n = length()
        return struct.pack("<Q", _fit(n, 8)) + data[:n]
    if name == "stringnl_noescape_pair":
        module, attr = _NAMES[pick(draw, len(_NAMES))]
        return f"{module}\n{attr}\n".encode("utf-8", "replace")
    if name == "stringnl":
        odd = (b"'\\x'\n", b"'abc\n", b"\n", b"'\\777'\n", b'"a"\n')
        return (
            odd[pick(draw, 5)]
            if rare(draw, 3)
            else repr(_text(draw))[:-1].encode("utf-8", "replace") + b"'\n"
        )
    if name == "stringnl_noescape":
        text = str(draw(ints(-3, 300))) if pick(draw, 2) else _text(draw)
        return text.encode("utf-8", "replace").replace(b"\n", b"") + b"\n"
    if name in ("decimalnl_short", "decimalnl_long"):
        odd = (b"00\n", b"01\n", b"0x10\n", b"1_0\n", b" 1\n", b"\n", b"9" * 6000 + b"\n")
        suffix = b"L\n" if name == "decimalnl_long" else b"\n"
        return odd[pick(draw, 7)] if rare(draw, 3) else str(draw(ints())).encode() + suffix
    if name == "floatnl":
        return (
            (b"nan\n", b"1e999\n", b"x\n")[pick(draw, 3)]
            if rare(draw, 3)
            else repr(draw(floats())).encode() + b"\n"
        )
    if name == "unicodestringnl":
        return (
            b"\\u12\n"
            if rare(draw, 8)
            else _text(draw).encode("raw-unicode-escape").replace(b"\n", b"") + b"\n"
        )
    raise AssertionError(f"unknown pickle argument type {name}")  # pragma: no cover - a new protocol


_OPCODES = tuple(pickletools.opcodes)


@st.composite
def _raw_opcode(draw: st.DrawFn) -> bytes:
    op = _OPCODES[pick(draw, len(_OPCODES))]
    return OP[op.name] + _raw_arg(draw, op.arg.name if op.arg else None, op.name)


RAW_OPCODE = _raw_opcode()
"""Any opcode of the table, with an argument of its type (lengths sometimes lie)."""


@st.composite
def pickle_program(draw: st.DrawFn) -> bytes:
    """A pickle: a header, one value (or an opcode soup around values), STOP."""
    proto = (2, 4, 5, None, 0, 1, 3)[pick(draw, 7)]
    head = OP["PROTO"] + bytes([proto]) if proto is not None and proto >= 2 else b""
    if pick(draw, 10) < 6:
        body = draw(PICKLE_VALUE)
    else:
        parts = [draw(PICKLE_VALUE) if pick(draw, 2) else draw(RAW_OPCODE) for _ in range(1 + pick(draw, 12))]
        body = b"".join(parts)
    if proto is not None and proto >= 4 and pick(draw, 2):
        body = OP["FRAME"] + struct.pack("<Q", len(body) + 1) + body
    return head + body + (b"" if rare(draw, 10) else OP["STOP"])


@st.composite
def pickle_stream(draw: st.DrawFn) -> bytes:
    """Several pickles back to back (``pickle.load`` called repeatedly), maybe trailing bytes."""
    parts = [draw(pickle_program()) for _ in range(1 + pick(draw, 5))]
    return b"".join(parts) + (draw(blobs(max_size=32)) if pick(draw, 2) else b"")


@st.composite
def deep_pickle(draw: st.DrawFn) -> bytes:
    """Deep nesting: many MARKs, nested tuples or lists, a huge stack (up to the stack limit)."""
    huge = rare(draw, 50)  # past the million-item stack limit
    depth = (100_000, 1_000_001)[pick(draw, 2)] if huge else draw(ints(1, 2000))
    kind = pick(draw, 4)
    if kind == 0:
        return OP["PROTO"] + b"\x02" + OP["MARK"] * depth + OP["NONE"] + OP["TUPLE"] * depth + OP["STOP"]
    if kind == 1:
        return OP["EMPTY_LIST"] * depth + OP["APPEND"] * (depth - 1) + OP["STOP"]
    if kind == 2:
        return OP["NONE"] + (OP["TUPLE1"] + OP["MEMOIZE"]) * depth + OP["STOP"]
    return OP["PROTO"] + b"\x04" + OP["MARK"] * depth + OP["STOP"]


_PY_LEAVES = (
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20), st.binary(max_size=20),
    st.complex_numbers(), st.datetimes(), st.decimals(allow_nan=False), st.binary(max_size=20).map(bytearray),
)  # fmt: skip


def _py_leaf(draw: st.DrawFn) -> object:
    return draw(_PY_LEAVES[pick(draw, len(_PY_LEAVES))])


_HASHABLE = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8), st.binary(max_size=8))


def _py_data(draw: st.DrawFn, budget: _Budget, depth: int = 0) -> object:
    budget.leaves -= 1
    if budget.leaves <= 0 or depth >= 5 or pick(draw, 3) == 0:
        return _py_leaf(draw)
    kind = pick(draw, 5)
    if kind == 0:
        return [_py_data(draw, budget, depth + 1) for _ in range(pick(draw, 5))]
    if kind == 1:
        return (_py_data(draw, budget, depth + 1), _py_data(draw, budget, depth + 1))
    if kind == 2:
        return {draw(_HASHABLE): _py_data(draw, budget, depth + 1) for _ in range(pick(draw, 4))}
    if kind == 3:
        return draw(st.sets(_HASHABLE, max_size=4))
    return draw(st.frozensets(_HASHABLE, max_size=4))


PY_DATA = st.composite(lambda draw: _py_data(draw, _Budget(30)))()
"""Nested plain Python data that :func:`pickle.dumps` can write."""

PICKLE_DUMPS = st.tuples(PY_DATA, st.integers(0, pickle.HIGHEST_PROTOCOL)).map(
    lambda t: pickle.dumps(t[0], protocol=t[1])
)


@functools.cache
def pickle_pool(full: bool = False) -> tuple[bytes, ...]:
    """Valid pickles to mutate: the malicious samples, plain data, and (``full``) the benign samples.

    The benign samples fit scikit-learn models and write torch checkpoints (a few seconds, once).
    """
    from tests.supplychain.malicious import benign_samples, malicious_samples

    out = [s.data for s in malicious_samples(CANARY)]
    out += [pickle.dumps({"a": [1, 2.5, "x", b"y", None, (1, 2)], "s": {1}}, protocol=p) for p in range(6)]
    if full:
        with tempfile.TemporaryDirectory(prefix="garrison-fuzz-") as tmp:
            out += [s.data for s in benign_samples(Path(tmp)) if s.format != "pytorch-zip"]
    return tuple(out)


def pickle_inputs(pool: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    """Every kind of pickle input: programs, streams, deep nesting, dumps, and mutations of each."""
    return st.one_of(
        pickle_program(),
        pickle_stream(),
        PICKLE_DUMPS,
        deep_pickle(),
        mutated(st.sampled_from(pool).map(Layout), pool),
        mutated(plain(pickle_program() | PICKLE_DUMPS), pool),
    )


# =================================================================================================
# Zip
# =================================================================================================

_LOCAL_FIELDS = ((4, 2), (6, 2), (8, 2), (10, 2), (12, 2), (14, 4), (18, 4), (22, 4), (26, 2), (28, 2))
_CENTRAL_FIELDS = ((4, 2), (6, 2), (8, 2), (10, 2), (12, 2), (14, 2), (16, 4), (20, 4), (24, 4), (28, 2))
_CENTRAL_FIELDS += ((30, 2), (32, 2), (34, 2), (36, 2), (38, 4), (42, 4))
_EOCD_FIELDS = ((4, 2), (6, 2), (8, 2), (10, 2), (12, 4), (16, 4), (20, 2))
_Z64_FIELDS = ((4, 8), (12, 2), (14, 2), (16, 4), (20, 4), (24, 8), (32, 8), (40, 8), (48, 8))
_LOCATOR_FIELDS = ((4, 4), (8, 8), (16, 4))
_SIGNATURES = (
    (b"PK\x03\x04", _LOCAL_FIELDS),
    (b"PK\x01\x02", _CENTRAL_FIELDS),
    (b"PK\x05\x06", _EOCD_FIELDS),
    (b"PK\x06\x06", _Z64_FIELDS),
    (b"PK\x06\x07", _LOCATOR_FIELDS),
)
_MAX_FIELDS = 4000


def zip_layout(data: bytes) -> Layout:
    """The zip's header fields (every record whose signature is found), for field mutations."""
    fields: list[Field] = []
    for sig, layout in _SIGNATURES:
        pos = data.find(sig)
        while pos >= 0 and len(fields) < _MAX_FIELDS:
            fields += [Field(pos + off, size) for off, size in layout if pos + off + size <= len(data)]
            if sig == b"PK\x01\x02" and pos + 46 <= len(data):  # the extra field's tag and length
                n, m = struct.unpack_from("<HH", data, pos + 28)
                extra = pos + 46 + n
                if m >= 4 and extra + 4 <= len(data):
                    fields += [Field(extra, 2), Field(extra + 2, 2)]
                    fields += [Field(at, 8) for at in range(extra + 4, min(extra + m, len(data)) - 7, 8)]
            pos = data.find(sig, pos + 1)
    return Layout(data, tuple(fields))


@dataclass
class ZipMember:
    """One member of a crafted zip, and every lie it may tell."""

    name: bytes
    data: bytes = b""
    method: int = 0
    flags: int = 0x800
    local_name: bytes | None = None
    local_flags: int | None = None
    local_method: int | None = None
    crc: int | None = None
    compressed: int | None = None
    size: int | None = None
    offset_delta: int = 0
    zip64_extra: bool = False
    extra: bytes = b""
    external_attr: int = 0
    comment: bytes = b""
    payload: bytes = field(default=b"", init=False)


@functools.lru_cache(maxsize=64)
def _compress(method: int, data: bytes) -> bytes:
    if method == 8:
        comp = zlib.compressobj(6, zlib.DEFLATED, -15)
        return comp.compress(data) + comp.flush()
    if method == 12:
        return bz2.compress(data)
    if method == 14:
        return lzma.compress(data, format=lzma.FORMAT_ALONE, preset=0)
    return data


def build_zip(
    members: Sequence[ZipMember],
    *,
    prefix: bytes = b"",
    relative: bool = False,
    zip64: bool = False,
    comment: bytes = b"",
    count_lie: int | None = None,
) -> bytes:
    """The bytes of a zip of ``members`` after ``prefix`` junk; offsets absolute unless ``relative``."""
    out = bytearray(prefix)
    skew = len(prefix) if relative else 0
    central = bytearray()
    for m in members:
        payload = _compress(m.method, m.data)
        crc = zlib.crc32(m.data) if m.crc is None else _fit(m.crc, 4)
        csize = len(payload) if m.compressed is None else m.compressed
        usize = len(m.data) if m.size is None else m.size
        offset = len(out) - skew + m.offset_delta
        lname = m.name if m.local_name is None else m.local_name
        lflags = m.flags if m.local_flags is None else m.local_flags
        lmethod = m.method if m.local_method is None else m.local_method
        out += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, lflags, lmethod, 0, 0x21, crc, _fit(csize, 4), _fit(usize, 4),
            len(lname), 0,
        ) + lname + payload  # fmt: skip
        extra = m.extra
        c32, u32, o32 = _fit(csize, 4), _fit(usize, 4), _fit(offset, 4)
        if m.zip64_extra:
            extra = struct.pack("<HHQQQ", 1, 24, _fit(usize, 8), _fit(csize, 8), _fit(offset, 8)) + extra
            c32 = u32 = o32 = 0xFFFFFFFF
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 0x31E, 45 if m.zip64_extra else 20, m.flags, m.method, 0, 0x21,
            crc, c32, u32, len(m.name), len(extra), len(m.comment), 0, 0, m.external_attr, o32,
        ) + m.name + extra + m.comment  # fmt: skip
    cd_offset = len(out) - skew
    out += central
    count = len(members) if count_lie is None else count_lie
    if zip64:
        z64 = len(out) - skew
        out += struct.pack(
            "<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, len(central), cd_offset
        )  # fmt: skip
        out += struct.pack("<IIQI", 0x07064B50, 0, z64, 1)
    out += struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, _fit(count, 2), _fit(count, 2), len(central), _fit(cd_offset, 4),
        len(comment),
    ) + comment  # fmt: skip
    return bytes(out)


_MEMBER_NAMES = (
    b"archive/data.pkl",
    b"archive/version",
    b"archive/data/0",
    b"archive/byteorder",
    b"archive/constants.pkl",
    b"archive/code/__torch__/m.py",
    b"archive/.data/serialization_id",
    b"ARCHIVE/DATA.PKL",
    b"arr_0.npy",
    b"obj.npy",
    b"config.json",
    b"model.weights.h5",
    b"inner.zip",
    b"payload.bin.gz",
    b"nested.tar.gz",
    b"dir/",
    b"../../evil.py",
    b"/abs/path",
    b"C:\\win.txt",
    b"link",
    b"x" * 300,
    b"",
)


def _member_name(draw: st.DrawFn) -> bytes:
    return draw(blobs(max_size=24)) if rare(draw, 6) else _MEMBER_NAMES[pick(draw, len(_MEMBER_NAMES))]


def _tar_gz(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


_WRAPPERS: tuple[Callable[[bytes], bytes], ...] = (
    gzip.compress,
    bz2.compress,
    functools.partial(lzma.compress, preset=0),
    lambda d: _tar_gz("inner.pkl", d),
)
_NPY_OBJECT = b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
_NPY_OBJECT = _NPY_OBJECT.ljust(127) + b"\n" + _TINY_PICKLES[0]
_BOMB = b"\x00" * (3 << 20)
"""Three MiB of zeros: deflated, a ratio of about 1000 (a decompression bomb)."""


def _member_data(draw: st.DrawFn, depth: int) -> bytes:
    kind = pick(draw, 8)
    if kind == 0:
        return draw(blobs(max_size=64))
    if kind == 1:
        return _TINY_PICKLES[pick(draw, len(_TINY_PICKLES))]
    if kind == 2:
        return draw(pickle_program())
    if kind == 3:
        return _NPY_OBJECT
    if kind == 4:
        return _BOMB if rare(draw, 4) else b"\x00" * (1 << draw(ints(0, 20)))
    if kind == 5 and depth < 6:
        return _crafted_zip(draw, depth + 1)
    if kind == 6:
        inside = _TINY_PICKLES[0] if pick(draw, 2) or depth >= 6 else _crafted_zip(draw, depth + 1)
        return _WRAPPERS[pick(draw, len(_WRAPPERS))](inside)
    return draw(blobs(max_size=8))


_LIES = ("local_name", "local_flags", "local_method", "crc", "compressed", "size", "offset_delta")
_LIES += ("zip64_extra", "extra", "external_attr", "comment")


def _zip_member(draw: st.DrawFn, depth: int) -> ZipMember:
    data = _member_data(draw, depth)
    method = 8 if len(data) > (1 << 20) else (0, 8, 8, 12, 14, 99)[pick(draw, 6)]
    flags = draw(ints(0, 0xFFFF)) if rare(draw, 8) else (0, 0x800, 0x808, 0x1, 0x20, 0x40)[pick(draw, 6)]
    m = ZipMember(name=_member_name(draw), data=data, method=method, flags=flags)
    if rare(draw, 4):  # lie about something
        lie = _LIES[pick(draw, len(_LIES))]
        if lie == "local_name":
            m.local_name = _member_name(draw)
        elif lie in ("local_flags", "local_method"):
            setattr(m, lie, draw(ints(0, 0xFFFF)))
        elif lie in ("crc", "compressed", "size"):
            setattr(m, lie, _EDGE[pick(draw, len(_EDGE))] if pick(draw, 2) else draw(ints(0, 2**32 - 1)))
        elif lie == "offset_delta":
            m.offset_delta = draw(ints(-64, 64)) if pick(draw, 3) else (2**31, -(2**20))[pick(draw, 2)]
        elif lie == "zip64_extra":
            m.zip64_extra = True
        elif lie == "extra":
            m.extra = draw(blobs(max_size=24))
        elif lie == "external_attr":
            m.external_attr = (0o120777 << 16, 0o040755 << 16, draw(ints(0, 2**32 - 1)))[pick(draw, 3)]
        else:
            m.comment = draw(blobs(max_size=16))
    return m


def _crafted_zip(draw: st.DrawFn, depth: int = 0) -> bytes:
    members = [_zip_member(draw, depth) for _ in range(1 + pick(draw, 5 if depth == 0 else 2))]
    if members and pick(draw, 2):  # a torch-style archive: every member under one folder
        for m in members:
            if not m.name.startswith(b"archive/"):
                m.name = b"archive/" + m.name
    comments = (b"", b"", draw(blobs(max_size=40)), b"PK\x05\x06" + b"\x00" * 18)
    return build_zip(
        members,
        prefix=(b"", b"", b"", b"MZ" + b"\x00" * 30, b"\x80\x02N.")[pick(draw, 5)],
        relative=rare(draw, 4),
        zip64=rare(draw, 3),
        comment=comments[pick(draw, 4)],
        count_lie=(0, 1, 0xFFFF, 2**32, 2**63)[pick(draw, 5)] if rare(draw, 20) else None,
    )


CRAFTED_ZIP = st.composite(_crafted_zip)()
"""Crafted zips, members possibly crafted zips themselves (zip in zip in zip...), bombs, lies."""


def _zipfile(members: Sequence[tuple[str, bytes, int]], **kwargs: object) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", **kwargs) as archive:  # type: ignore[arg-type]
        for name, data, method in members:
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return out.getvalue()


def _nest(blob: bytes, levels: int) -> bytes:
    for level in range(levels):
        blob = _zipfile([(f"level{level}.zip", blob, zipfile.ZIP_DEFLATED)])
    return blob


@functools.cache
def zip_pool(full: bool = False) -> tuple[bytes, ...]:
    """Real zips to mutate: zipfile-written, torch.save'd (``full``), npz, nested, bombs."""
    pkl = pickle.dumps({"w": [1.0, 2.0], "n": "x"}, protocol=2)
    zs, zd, zb, zl = zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA
    torchish = [
        ("archive/data.pkl", pkl, zd),
        ("archive/version", b"3\n", zs),
        ("archive/data/0", b"\0" * 64, zs),
    ]
    out = [
        _zipfile(torchish),
        _zipfile([("a.txt", b"hello", zs), ("b/c.bin", b"\x01" * 300, zb), ("d.xz", b"z" * 99, zl)]),
        _zipfile([("x.pkl", _TINY_PICKLES[0], zd)]) + b"trailing",
        b"junk" * 10 + _zipfile(torchish),
        _nest(_zipfile([("deep.pkl", _TINY_PICKLES[0], zd)]), 6),
        _zipfile([("zeros.bin", b"\x00" * (16 << 20), zd)]),  # ratio ~1000: a bomb
        _zipfile([(f"f{i}", b"x", zs) for i in range(300)]),
        _zipfile(
            [("p.pkl.gz", gzip.compress(_TINY_PICKLES[1]), zs), ("t.tar.gz", _tar_gz("t.pkl", pkl), zs)]
        ),
        build_zip([ZipMember(b"archive/data.pkl", pkl, method=8, zip64_extra=True)], zip64=True),
        build_zip([ZipMember(b"a/data.pkl", pkl)], prefix=b"junk", relative=True, zip64=True),
    ]
    big = io.BytesIO()
    with zipfile.ZipFile(big, "w") as archive:
        with archive.open(zipfile.ZipInfo("forced64.pkl"), "w", force_zip64=True) as handle:
            handle.write(pkl)
        archive.comment = b"comment"
    out.append(big.getvalue())
    try:
        import numpy as np

        npz = io.BytesIO()
        np.savez(npz, obj=np.array([1, "a", None], dtype=object), num=np.arange(3))
        out.append(npz.getvalue())
    except ImportError:  # pragma: no cover - numpy is in the dev extras
        pass
    if full:
        out += _torch_zips()
    return tuple(out)


def _torch_zips() -> list[bytes]:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is in the dev extras
        return []
    out = []
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    for obj in (net.state_dict(), net, {"epoch": 1, "opt": {"lr": 0.1}}):
        buf = io.BytesIO()
        torch.save(obj, buf)
        out.append(buf.getvalue())
    scripted = io.BytesIO()
    torch.jit.save(torch.jit.script(net), scripted)
    out.append(scripted.getvalue())
    return out


def zip_inputs(pool: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    """Crafted zips (nested, bombs, lies), real zips, and field-aware mutations of both."""
    return st.one_of(
        CRAFTED_ZIP,
        mutated(CRAFTED_ZIP.map(zip_layout), pool),
        mutated(st.sampled_from(pool).map(zip_layout), pool),
        mutated(st.sampled_from(pool).map(zip_layout), pool),
        st.tuples(st.sampled_from(pool), st.integers(1, 8)).map(lambda t: _nest(t[0], t[1])),
    )


# =================================================================================================
# GGUF
# =================================================================================================

_GGUF_KEYS = (
    "general.architecture",
    "general.name",
    "general.alignment",
    "tokenizer.chat_template",
    "tokenizer.chat_template.tool_use",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.scores",
)


def _gguf_key(draw: st.DrawFn) -> bytes:
    if rare(draw, 60):
        return draw(blobs(max_size=8))  # maybe not UTF-8
    text = _GGUF_KEYS[pick(draw, len(_GGUF_KEYS))] if pick(draw, 3) else draw(texts(max_size=20))
    return text.encode("utf-8", "surrogatepass")


_TEMPLATES = (
    "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{% set x = cycler.__init__.__globals__.os.popen('id').read() %}{{ x }}",
    "{{ self._TemplateReference__context.joiner.__init__.__globals__ }}",
    "{% for i in range(999999999) %}{{ i }}{% endfor %}",
    "{{ '{{' * 1000 }}",
    "{%" * 200,
)

_FMT = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "B", 10: "Q", 11: "q", 12: "d"}


class _GgufWriter:
    def __init__(self, order: str, wide: bool) -> None:
        self.out = bytearray()
        self.fields: list[Field] = []
        self.order, self.wide = order, wide

    def int(self, fmt: str, value: int) -> None:
        size = struct.calcsize(fmt)
        self.fields.append(Field(len(self.out), size, big=self.order == ">"))
        self.out += struct.pack(self.order + fmt, _fit(value, size))

    def raw(self, fmt: str, value: object) -> None:
        self.out += struct.pack(self.order + fmt, value)

    def count(self, value: int) -> None:
        self.int("Q" if self.wide else "I", value)

    def string(self, raw: bytes) -> None:
        self.count(len(raw))
        self.out += raw


def _gguf_value(draw: st.DrawFn, w: _GgufWriter, kind: int, key: bytes, depth: int = 0) -> None:
    if kind in _FMT:
        fmt = _FMT[kind]
        if fmt in "fd":
            w.raw(fmt, draw(floats(width=32 if fmt == "f" else 64)))
        else:
            size = struct.calcsize(fmt)
            common = (0, 1, 32, 64, 3)
            w.int(
                fmt.upper(), common[pick(draw, 5)] if pick(draw, 2) else draw(ints(0, (1 << (8 * size)) - 1))
            )
    elif kind == 8:
        if key.startswith(b"tokenizer.chat_template"):
            text = _TEMPLATES[pick(draw, len(_TEMPLATES))] if pick(draw, 3) else draw(texts(max_size=60))
            w.string(text.encode("utf-8", "surrogatepass"))
        else:
            w.string(draw(blobs(max_size=24)))
    elif kind == 9:
        inner = draw(ints(0, 13)) if rare(draw, 40) else (8, 0, 4, 6, 7, 10, 12)[pick(draw, 7)]
        count = draw(ints(0, 6))
        w.int("I", inner)
        w.count(count)
        if depth < 2:
            for _ in range(count):
                _gguf_value(draw, w, inner, b"", depth + 1)
    else:  # an unknown type: some bytes follow
        w.out += draw(blobs(max_size=8))


_KINDS = (8, 4, 9, 0, 1, 2, 3, 5, 6, 7, 10, 11, 12)
_DIMS = (1, 2, 3, 7, 32)
_ODD_DIMS = (0, 2**31, 2**32 + 1, 2**63, 5, 9)


@st.composite
def gguf_file(draw: st.DrawFn) -> Layout:
    """A GGUF file (v1 to v3, either byte order): typed metadata, a tensor table, aligned data."""
    version = draw(ints(0, 2**32 - 1)) if rare(draw, 20) else (3, 2, 1)[pick(draw, 3)]
    w = _GgufWriter(">" if rare(draw, 5) else "<", wide=version != 1)
    kvs = []
    for _ in range(pick(draw, 9)):
        kind = (13, 20, 2**31)[pick(draw, 3)] if rare(draw, 60) else _KINDS[pick(draw, len(_KINDS))]
        kvs.append((_gguf_key(draw), kind))
    if pick(draw, 2):
        kvs.append((b"general.alignment", 4))
    tensors = []
    for _ in range(pick(draw, 7)):
        if rare(draw, 20):
            dims = [_ODD_DIMS[pick(draw, len(_ODD_DIMS))] for _ in range(pick(draw, 7))]
        else:
            dims = [_DIMS[pick(draw, len(_DIMS))] for _ in range(pick(draw, 5))]
        offset = draw(ints(0, 2**64 - 1)) if rare(draw, 8) else 32 * pick(draw, 9)
        tensors.append((draw(blobs(max_size=16)), dims, draw(ints(0, 42)), offset))
    w.out += b"GGUF"
    w.int("I", version)
    w.count(len(tensors))
    w.count(len(kvs))
    for key, kind in kvs:
        w.string(key)
        w.int("I", kind)
        _gguf_value(draw, w, kind, key)
    for name, dims, ggml_type, offset in tensors:
        w.string(name)
        w.int("I", len(dims))
        for dim in dims:
            w.count(dim)
        w.int("I", ggml_type)
        w.int("Q", offset)
    w.out += b"\x00" * (-len(w.out) % 32)
    w.out += draw(blobs(max_size=128)) if pick(draw, 2) else b"\x00" * draw(ints(0, 4096))
    return Layout(bytes(w.out), tuple(w.fields))


def gguf_inputs() -> st.SearchStrategy[bytes]:
    """GGUF files, and field-aware mutations of them (counts, lengths, types, offsets)."""
    return st.one_of(gguf_file().map(lambda layout: layout.data), mutated(gguf_file()), mutated(gguf_file()))


# =================================================================================================

TARGETS = ("pickle", "zip", "gguf")


def inputs_for(target: str, *, full: bool = False) -> st.SearchStrategy[bytes]:
    """The strategy for one target; ``full`` adds the slow-to-build seeds (sklearn, torch)."""
    if target == "pickle":
        return pickle_inputs(pickle_pool(full))
    if target == "zip":
        return zip_inputs(zip_pool(full))
    if target == "gguf":
        return gguf_inputs()
    raise ValueError(f"unknown fuzz target {target!r}")
