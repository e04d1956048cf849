"""Symbolic values on the pickle machine's stack, and the small decoders they need.

Large constants are never copied: a bytes or long str constant is an ``(offset, length)`` reference
into the buffer. Only what the analysis needs (short strings for module and attribute names, small
ints and tuples for shapes and persistent ids) is materialised.
"""

from __future__ import annotations

import codecs
import re
import warnings

from garrison.supplychain.pickle.model import GlobalRef

SHORT_TEXT = 256
"""Strings up to this many bytes are decoded when pushed; longer ones are decoded only if used."""

MAX_NAME_TEXT = 65_536
"""Longest string decoded for use as a module or attribute name."""


class Str:
    """A str constant (or a STRING/BINSTRING decoded as text, as Python 3 does by default).

    Provenance is kept lazily (``source`` opcode and its offset, then any GETs that fetched it) and
    only formatted when a finding quotes it.
    """

    __slots__ = ("at", "gets", "kind", "length", "offset", "source", "text")

    def __init__(
        self,
        text: str | None,
        source: str,
        at: int,
        offset: int,
        length: int,
        kind: str,
        gets: tuple[str, ...] = (),
    ) -> None:
        self.text = text
        self.source = source
        self.at = at
        self.offset = offset
        self.length = length
        self.kind = kind  # "utf-8", "latin-1", "raw-unicode-escape", "escape"
        self.gets = gets

    @property
    def via(self) -> str:
        """How the constant got here, e.g. ``BINGET 3 <- SHORT_BINUNICODE@12``."""
        return " <- ".join((*self.gets, f"{self.source}@{self.at}"))

    def fetched(self, get: str) -> Str:
        """The same constant, fetched from the memo by ``get``."""
        return Str(self.text, self.source, self.at, self.offset, self.length, self.kind, (get, *self.gets))


class Blob:
    """A bytes or bytearray constant, by reference."""

    __slots__ = ("length", "offset")

    def __init__(self, offset: int, length: int) -> None:
        self.offset = offset
        self.length = length


class Result:
    """What a call (REDUCE, NEWOBJ, OBJ, INST, ...) returned."""

    __slots__ = ("args", "call", "callee", "state")

    def __init__(self, call: int, callee: GlobalRef | None, args: object) -> None:
        self.call = call
        self.callee = callee
        self.args = args
        self.state: object = None


class Dynamic:
    """A value the machine cannot know statically (an import with computed operands, an EXT code)."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


class DictVal:
    """A dict built by the pickle; str keys are tracked (joblib array headers need them)."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: dict[str, object] = {}

    def set(self, key: object, value: object) -> None:
        """Record ``key: value`` when the key is a short str constant."""
        if isinstance(key, Str) and key.text is not None and len(self.items) < 256:
            self.items[key.text] = value


class Opaque:
    """A list, set, buffer or other object whose content does not matter to the analysis."""

    __slots__ = ()


OPAQUE = Opaque()


def decode_text(raw: bytes, kind: str) -> str:
    """Decode a string constant the way the unpickler does; ``ValueError`` when it would fail."""
    if kind == "escape":
        with warnings.catch_warnings():  # invalid escapes warn in CPython; hostile input must not
            warnings.simplefilter("ignore")
            return codecs.escape_decode(raw)[0].decode("latin-1")
    return raw.decode(kind)


def plain(value: object, depth: int = 0) -> object:
    """A value as plain data for reports: tuples, str, numbers, None; globals as ``module.name``."""
    if depth > 8:
        return None
    if isinstance(value, Str):
        return value.text
    if isinstance(value, GlobalRef):
        return value.dotted
    if isinstance(value, tuple):
        return tuple(plain(v, depth + 1) for v in value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return None


_DTYPE_RE = re.compile(r"^[<>|=]?([biufcmMOSUV])(\d+)")


def joblib_array_bytes(state: object) -> tuple[bool, int, bool] | None:
    """For a joblib ``NumpyArrayWrapper`` state: (has objects, data bytes, padded), or ``None``.

    joblib writes an array's bytes straight into the pickle stream after the wrapper's BUILD and
    reads them back from inside ``load_build``; an object array is written as a nested pickle.
    """
    if not isinstance(state, DictVal):
        return None
    shape = state.items.get("shape")
    dtype = state.items.get("dtype")
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        return None
    if not (isinstance(dtype, Result) and isinstance(dtype.args, tuple) and dtype.args):
        return None
    spec = dtype.args[0]
    if not (isinstance(spec, Str) and spec.text is not None):
        return None
    match = _DTYPE_RE.match(spec.text)
    if match is None:
        return None
    kind, size = match.group(1), int(match.group(2))
    if kind == "O":
        return True, 0, False
    itemsize = size * 4 if kind == "U" else size
    count = 1
    for dim in shape:
        count *= dim
    padded = state.items.get("numpy_array_alignment_bytes") is not None
    return False, count * itemsize, padded
