"""Tensor and columnar formats: NumPy ``.npy``, safetensors, GGUF, HDF5 (and Keras HDF5), Parquet."""

from __future__ import annotations

import ast
import contextlib
import json
import math
import re
import struct
from dataclasses import dataclass
from typing import Any

from garrison.core.errors import GarrisonError
from garrison.formats.info import Identification
from garrison.formats.source import Source

NPY_MAGIC = b"\x93NUMPY"
NPY_HEADER_LIMIT = 1024 * 1024
"""Largest ``.npy`` header parsed (NumPy itself refuses headers over 10 000 bytes by default)."""

SAFETENSORS_HEADER_LIMIT = 100 * 2**20
"""Largest header the safetensors specification allows."""

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
HDF5_KERAS_WINDOW = 1024 * 1024
"""Bytes from the start of an HDF5 file searched for Keras attribute names."""

_SIMPLE_DTYPE = re.compile(r"^[<>|=]?([?bBiufcSUV])(\d*)$")


@dataclass(frozen=True, slots=True, kw_only=True)
class NpyHeader:
    """What the header of a ``.npy`` stream says."""

    descr: str
    """The dtype description, as written."""
    shape: str
    """The shape, as written."""
    objects: bool
    """Whether the dtype holds Python objects, i.e. the data is a pickle (``allow_pickle``)."""
    malformed: str | None = None
    """Why the header or data is broken, if it is."""


def _has_objects(descr: object) -> bool:
    if isinstance(descr, str):
        return descr.lstrip("<>|=").startswith("O")
    if isinstance(descr, list | tuple):
        return any(
            _has_objects(field[1]) for field in descr if isinstance(field, list | tuple) and len(field) > 1
        )
    return False


def _itemsize(descr: object) -> int | None:
    match = _SIMPLE_DTYPE.match(descr) if isinstance(descr, str) else None
    if match is None:
        return None
    kind, digits = match.groups()
    count = int(digits) if digits else (1 if kind in "?bB" else 0)
    return count * 4 if kind == "U" else count


def npy_header(data: bytes, size: int | None = None) -> NpyHeader | None:
    """Parse the header at the start of ``data`` (``None`` if it is not ``.npy``).

    ``size`` is the length of the whole stream, when known, to check that the data is all there.
    The header dict is read with :func:`ast.literal_eval`, which evaluates literals only.
    """
    if not data.startswith(NPY_MAGIC):
        return None
    broken = NpyHeader(descr="", shape="", objects=False, malformed="NumPy header is truncated")
    if len(data) < 10:
        return broken
    major = data[6]
    if major == 1:
        start, length = 10, struct.unpack_from("<H", data, 8)[0]
    elif major in (2, 3) and len(data) >= 12:
        start, length = 12, struct.unpack_from("<I", data, 8)[0]
    elif major in (2, 3):
        return broken
    else:
        return NpyHeader(descr="", shape="", objects=False, malformed=f"unknown NumPy format version {major}")
    if length > NPY_HEADER_LIMIT:
        return NpyHeader(descr="", shape="", objects=False, malformed=f"NumPy header declares {length} bytes")
    if start + length > len(data):
        return broken
    try:
        text = data[start : start + length].decode("utf-8" if major == 3 else "latin-1")
        header: Any = ast.literal_eval(text.strip())
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):  # hostile headers
        header = None
    if not isinstance(header, dict) or not {"descr", "shape", "fortran_order"} <= header.keys():
        return NpyHeader(descr="", shape="", objects=False, malformed="NumPy header is not a header dict")
    descr, shape = header["descr"], header["shape"]
    malformed = None
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        malformed = f"NumPy header has an invalid shape {str(shape)[:80]}"
    elif size is not None and (itemsize := _itemsize(descr)) is not None:
        expected = math.prod(shape) * itemsize
        if start + length + expected > size:
            malformed = f"array data is truncated: the header promises {expected} bytes"
    return NpyHeader(
        descr=str(descr)[:120], shape=str(shape)[:120], objects=_has_objects(descr), malformed=malformed
    )


def sniff_numpy(src: Source) -> Identification | None:
    """Identify a ``.npy`` file; object dtypes get the code-executing id ``numpy-object``."""
    if not src.head.startswith(NPY_MAGIC):
        return None
    data = src.head
    if len(data) >= 12 and data[6] in (2, 3):
        length = struct.unpack_from("<I", data, 8)[0] + 12
        if len(data) < length <= min(src.size, NPY_HEADER_LIMIT + 12):
            with contextlib.suppress(GarrisonError):
                data = src.read_at(0, length)
    header = npy_header(data, src.size)
    assert header is not None
    fmt = "numpy-object" if header.objects else "numpy"
    details = (
        ("dtype", header.descr),
        ("shape", header.shape),
        ("objects", "yes" if header.objects else "no"),
    )
    return Identification(format=fmt, details=details if header.descr else (), malformed=header.malformed)


def _safetensors_problem(header: object, data_len: int) -> str | None:
    if not isinstance(header, dict):
        return "safetensors header is not a JSON object"
    ends = []
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict):
                return "safetensors __metadata__ is not an object"
            continue
        if not isinstance(entry, dict):
            return f"tensor {name[:60]!r} is not an object"
        offsets, shape = entry.get("data_offsets"), entry.get("shape")
        if not isinstance(entry.get("dtype"), str) or not isinstance(shape, list):
            return f"tensor {name[:60]!r} has no dtype or shape"
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            return f"tensor {name[:60]!r} has invalid data_offsets"
        if not 0 <= offsets[0] <= offsets[1] <= data_len:
            return f"tensor {name[:60]!r} lies outside the file ({offsets[1]} > {data_len} data bytes)"
        ends.append(offsets[1])
    if max(ends, default=0) < data_len:
        return f"tensor data covers {max(ends, default=0)} of {data_len} data bytes"
    return None


def sniff_safetensors(src: Source) -> Identification | None:
    """Identify safetensors: a u64 header length, a JSON header, raw tensor bytes."""
    head = src.head
    if len(head) < 9 or head[8:9] != b"{":
        return None
    length = struct.unpack_from("<Q", head, 0)[0]
    if length < 2 or length > SAFETENSORS_HEADER_LIMIT:
        return None
    details: tuple[tuple[str, str], ...] = (("header-bytes", str(length)),)
    if 8 + length > src.size:
        return Identification(
            format="safetensors",
            details=(*details, ("malformed-range", "0:8")),
            malformed=f"header length {length} runs past the end of the {src.size}-byte file",
        )
    try:
        raw = src.read_at(8, length)
    except GarrisonError:
        return Identification(format="safetensors", details=(*details, ("header", "not read: too large")))
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: hostile nesting
        return Identification(
            format="safetensors",
            details=(*details, ("malformed-range", f"8:{8 + length}")),
            malformed="header is not valid JSON",
        )
    problem = _safetensors_problem(header, src.size - 8 - length)
    count = sum(1 for k in header if k != "__metadata__") if isinstance(header, dict) else 0
    return Identification(
        format="safetensors", details=(*details, ("tensors", str(count))), malformed=problem
    )


def sniff_gguf(src: Source) -> Identification | None:
    """Identify GGUF by magic and version, and read its tensor and metadata counts."""
    head = src.head
    if not head.startswith(b"GGUF"):
        return None
    if len(head) < 8:
        return Identification(format="gguf", malformed="GGUF header is truncated")
    version = struct.unpack_from("<I", head, 4)[0]
    order = "<"
    if version > 0xFFFF and struct.unpack_from(">I", head, 4)[0] in (1, 2, 3):
        order, version = ">", struct.unpack_from(">I", head, 4)[0]
    if version not in (1, 2, 3):
        return Identification(
            format="gguf", details=(("malformed-range", "4:8"),), malformed=f"unknown GGUF version {version}"
        )
    fmt = order + ("II" if version == 1 else "QQ")
    if len(head) < 8 + struct.calcsize(fmt):
        return Identification(
            format="gguf", details=(("version", str(version)),), malformed="GGUF header is truncated"
        )
    tensors, keys = struct.unpack_from(fmt, head, 8)
    details = [("version", str(version)), ("tensors", str(tensors)), ("metadata-keys", str(keys))]
    if order == ">":
        details.append(("byteorder", "big"))
    return Identification(format="gguf", details=tuple(details))


def _hdf5_truncation(block: bytes, size: int) -> str | None:
    """Compare the end-of-file address in a superblock with the real size."""
    if len(block) < 16:
        return "HDF5 superblock is truncated"
    version = block[8]
    if version in (0, 1):
        width = block[13]
        base_at = 24 + (4 if version == 1 else 0)
    elif version in (2, 3):
        width = block[9]
        base_at = 12
    else:
        return f"unknown HDF5 superblock version {version}"
    if width not in (2, 4, 8):
        return f"HDF5 superblock declares {width}-byte addresses"
    eof_at = base_at + 2 * width
    if len(block) < eof_at + width:
        return "HDF5 superblock is truncated"
    base = int.from_bytes(block[base_at : base_at + width], "little")
    eof = int.from_bytes(block[eof_at : eof_at + width], "little")
    if eof != (1 << (8 * width)) - 1 and base + eof > size:
        return f"file is shorter than its HDF5 superblock says ({size} of {base + eof} bytes)"
    return None


def sniff_hdf5(src: Source, *, deep: bool = False) -> Identification | None:
    """Identify HDF5 by its signature at 0, 512, 1024, 2048...; ``deep`` also seeks past the head."""
    offset = 0
    while offset + 8 <= src.size:
        if offset + 8 > len(src.head) and not deep:
            return None
        try:
            found = src.read_at(offset, 8) == HDF5_MAGIC
        except GarrisonError:
            return None
        if found:
            break
        offset = 512 if offset == 0 else offset * 2
    else:
        return None
    try:
        window = src.read_at(0, min(src.size, HDF5_KERAS_WINDOW))
        block = src.read_at(offset, 64)
    except GarrisonError:
        window, block = src.head, src.head[offset : offset + 64]
    keras = b"model_config" in window or b"keras_version" in window
    details = [("superblock-offset", str(offset))] if offset else []
    if keras:
        details.append(("keras", "yes"))
        details.append(("lambda", "yes" if b'"class_name": "Lambda"' in window else "not seen"))
    return Identification(
        format="hdf5-keras" if keras else "hdf5",
        details=tuple(details),
        malformed=_hdf5_truncation(block, src.size),
    )


def sniff_parquet(src: Source) -> Identification | None:
    """Identify Parquet: ``PAR1`` at both ends and a footer length that fits."""
    if not src.head.startswith(b"PAR1"):
        return None
    if src.size < 12:
        return Identification(format="parquet", malformed="Parquet file is truncated (no footer)")
    try:
        tail = src.tail(8)
    except GarrisonError:
        return Identification(format="parquet")
    if tail[4:] not in (b"PAR1", b"PARE"):
        return Identification(format="parquet", malformed="Parquet file does not end with PAR1 (truncated)")
    footer = struct.unpack_from("<I", tail, 0)[0]
    details = (("encrypted", "yes"),) if tail[4:] == b"PARE" else ()
    if footer > src.size - 12:
        return Identification(
            format="parquet", details=details, malformed=f"Parquet footer length {footer} exceeds the file"
        )
    return Identification(format="parquet", details=details)
