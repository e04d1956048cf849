"""Pickle streams: plain pickles of every protocol, joblib pickles and the legacy PyTorch layout.

Nothing here unpickles. :func:`pickletools.genops` only parses the opcode stream (it never imports
or calls anything); on top of it a small stack-depth simulation rejects byte strings that happen to
be valid opcodes but are not a program a pickle machine could run, which is what keeps ordinary
text from passing as a protocol 0 pickle.
"""

from __future__ import annotations

import io
import pickletools
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from garrison.core.errors import GarrisonError
from garrison.formats.info import Identification
from garrison.formats.source import Source

PICKLE_PREFIX = 256 * 1024
"""Most bytes of one stream the opcode parser looks at."""

LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C
"""The magic number ``torch.save`` pickles first in its legacy (pre-1.6) format."""

LEGACY_TORCH_PREFIX = b"\x80\x02\x8a\x0a" + LEGACY_TORCH_MAGIC.to_bytes(10, "little") + b"."
"""PROTO 2, LONG1 of 10 bytes holding the magic number, STOP."""

JOBLIB_MARKERS = (b"joblib.numpy_pickle", b"NumpyArrayWrapper", b"NDArrayWrapper")
"""Names a joblib pickle refers to when it holds NumPy arrays."""

_CALL_OPCODES = frozenset({"GLOBAL", "STACK_GLOBAL", "REDUCE", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "BUILD"})

_MIN_OPCODES_FOR_PREFIX = 16
"""Opcodes a protocol 0/1 prefix must parse before an unfinished stream counts as a pickle."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PickleParse:
    """How far the opcode stream of a byte string parses."""

    opcodes: int
    """Opcodes parsed."""
    protocol: int
    """Protocol the opcodes seen need (the ``PROTO`` argument where there is one)."""
    stop: int | None = None
    """Offset just after the ``STOP`` opcode, when it was reached."""
    error: str | None = None
    """Why parsing stopped before the data ran out, if it did."""
    error_offset: int | None = None
    """Where it stopped, with :attr:`error`."""
    calls: bool = False
    """Whether an opcode that imports or calls something was seen."""


def parse_opcodes(data: bytes) -> PickleParse:
    """Parse (never run) the opcode stream in ``data`` and simulate its stack depth."""
    # Decoding a protocol-0 STRING with a bad escape warns; hostile input must not print warnings.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return _parse_opcodes(data)


_OpcodeFacts = tuple[str, Callable[[IO[bytes]], object] | None, int, bool, int, int, bool]


def _opcode_table() -> dict[bytes, _OpcodeFacts]:
    """Opcode byte -> what the parse needs of it, read once from :mod:`pickletools`' descriptions.

    Per opcode: name, argument reader, protocol, whether it pops to a MARK, items it needs on the
    stack (above the MARK, for those that pop to one), items it pushes, whether it imports or calls.
    """
    table = {}
    for op in pickletools.opcodes:
        before = op.stack_before
        marked = pickletools.markobject in before
        need = before.index(pickletools.markobject) if marked else len(before)
        reader = op.arg.reader if op.arg is not None else None
        table[op.code.encode("latin-1")] = (
            op.name,
            reader,
            op.proto,
            marked,
            need,
            len(op.stack_after),
            op.name in _CALL_OPCODES,
        )
    return table


_OPCODES = _opcode_table()


def _parse_opcodes(data: bytes) -> PickleParse:
    # What pickletools.genops reads, read here without its generator: the same argument readers,
    # the same errors, and (as with genops) a failing argument leaves ``pos`` at the opcode before.
    stream = io.BytesIO(data[:PICKLE_PREFIX])
    read, tell, table = stream.read, stream.tell, _OPCODES
    depth = 0
    marks: list[int] = []
    count = 0
    protocol = 0
    pos = 0
    calls = False
    try:
        while True:
            position = tell()
            code = read(1)
            found = table.get(code)
            if found is None:
                if code == b"":
                    raise ValueError("pickle exhausted before seeing STOP")
                raise ValueError(f"at position {position}, opcode {code!r} unknown")
            name, reader, proto, marked, need, pushed, call = found
            arg = reader(stream) if reader is not None else None
            pos = position
            count += 1
            calls = calls or call
            protocol = max(protocol, proto)
            if name == "PROTO" and isinstance(arg, int):
                protocol = arg
            if marked:
                if not marks:
                    return PickleParse(
                        opcodes=count, protocol=protocol, error=f"{name} without MARK", error_offset=pos
                    )
                depth = marks.pop()
            if depth < need:
                return PickleParse(
                    opcodes=count, protocol=protocol, error=f"{name} on a short stack", error_offset=pos
                )
            depth -= need
            if name == "MARK":
                marks.append(depth)
            else:
                depth += pushed
            if name == "STOP":
                return PickleParse(opcodes=count, protocol=protocol, stop=pos + 1, calls=calls)
    except (
        ValueError,
        OverflowError,
        struct.error,
        MemoryError,
        RecursionError,
    ) as exc:  # bad or short input
        if stream.tell() >= len(stream.getbuffer()):
            return PickleParse(opcodes=count, protocol=protocol)
        return PickleParse(opcodes=count, protocol=protocol, error=str(exc)[:200], error_offset=pos)


def has_joblib_marker(data: bytes) -> bool:
    """Whether ``data`` names joblib's array wrappers."""
    return any(marker in data for marker in JOBLIB_MARKERS)


def classify_pickle(data: bytes, *, complete: bool) -> Identification | None:
    """Identify a pickle-family stream from its first bytes; ``None`` if it is not one.

    ``complete`` says whether ``data`` is the whole stream; when it is not, running out of data is
    not a defect.
    """
    if len(data) < 2:
        return None
    if data.startswith(LEGACY_TORCH_PREFIX):
        return Identification(format="pytorch-legacy", details=(("layout", "pickle"), ("protocol", "2")))
    framed = data[0] == 0x80
    if framed and data[1] > 5:
        return None
    parse = parse_opcodes(data)
    joblib = has_joblib_marker(data[:PICKLE_PREFIX])
    if not framed:
        # Unframed (protocol 0/1) streams need more than parsing to tell them from text: a complete
        # short program, one that imports or calls something, or a long run of valid opcodes.
        if parse.error is not None:
            return None
        trailing = parse.stop is not None and parse.stop < len(data)
        convincing = parse.opcodes >= _MIN_OPCODES_FOR_PREFIX or (
            parse.stop is not None and (parse.calls or (parse.opcodes >= 3 and not trailing))
        )
        if not convincing:
            return None
    fmt = "joblib" if joblib else "pickle"
    details: list[tuple[str, str]] = [("protocol", str(parse.protocol))]
    malformed = None
    if joblib:
        pass  # joblib writes raw array bytes inside the stream, so the opcode parse stops early
    elif parse.error is not None:
        malformed = f"invalid pickle opcode stream at byte {parse.error_offset}: {parse.error}"
        details.append(("malformed-range", f"{parse.error_offset}:{(parse.error_offset or 0) + 1}"))
    elif parse.stop is None and complete:
        malformed = "pickle stream ends before its STOP opcode (truncated)"
        details.append(("malformed-range", f"{len(data)}:{len(data)}"))
    elif parse.stop is not None and parse.stop < len(data):
        details.append(("trailing-bytes", str(len(data) - parse.stop)))
    return Identification(format=fmt, details=tuple(details), malformed=malformed)


def sniff_pickle(src: Source) -> Identification | None:
    """Identify a pickle, joblib pickle or legacy PyTorch pickle file."""
    found = classify_pickle(src.head, complete=src.whole)
    if found is None or found.malformed is not None or found.format == "pytorch-legacy":
        return found
    if not src.whole or found.format == "joblib":
        # A pickle written by pickle.dump or joblib.dump ends with STOP; a cut-off copy does not.
        try:
            last = src.tail(1)
        except GarrisonError:
            return found
        trailing = found.detail("trailing-bytes")
        if last != b"." and trailing is None:
            return Identification(
                format=found.format,
                details=(*found.details, ("malformed-range", f"{src.size - 1}:{src.size}")),
                malformed="file does not end with the pickle STOP opcode (truncated)",
            )
    return found
