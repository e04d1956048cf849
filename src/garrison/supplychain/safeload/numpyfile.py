"""NumPy ``.npy`` and ``.npz`` files, and safetensors files, read into NumPy arrays.

``numpy.load(allow_pickle=True)`` unpickles object arrays with ``pickle.load``; here the header is
parsed with NumPy's public header readers, arrays of plain dtypes are read with
``allow_pickle=False``, and only object arrays go through the restricted unpickler. An ``.npz`` file
is read member by member (a dictionary of arrays, not NumPy's lazy ``NpzFile``).

safetensors holds no code at all. Its reader here needs only NumPy: an 8-byte header length, a JSON
header, and raw little-endian tensors, every offset checked. Dtypes NumPy cannot hold (bfloat16,
float8) are refused with a pointer to ``safetensors.torch``.
"""

from __future__ import annotations

import io
import json
import math
import struct
import zipfile
from typing import IO, Any

from garrison.core.errors import InputError, UnsupportedFormatError
from garrison.supplychain.safeload.unpickler import Gate, RestrictedUnpickler

_NPY_MAGIC = b"\x93NUMPY"

_SAFETENSORS_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U64": "<u8",
    "U32": "<u4",
    "U16": "<u2",
    "U8": "u1",
    "BOOL": "?",
    "C64": "<c8",
}
"""safetensors dtype names NumPy can represent, and their NumPy dtype strings."""

_SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024


def load_npy(fh: IO[bytes], gate: Gate) -> Any:
    """Read one ``.npy`` array; only an object array is unpickled, through ``gate``."""
    import numpy as np
    from numpy.lib import format as npformat

    start = fh.tell()
    version = npformat.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = npformat.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, _, dtype = npformat.read_array_header_2_0(fh)
    else:
        shape, dtype = None, None
    if dtype is None or not dtype.hasobject:
        fh.seek(start)
        return npformat.read_array(fh, allow_pickle=False)
    value = RestrictedUnpickler(fh, gate=gate, encoding="ASCII").load()
    if not isinstance(value, np.ndarray) or value.shape != shape:
        raise InputError(
            f"the object array's pickle holds {type(value).__name__}, not an array of shape {shape}"
        )
    return value


def load_npz(fh: IO[bytes], gate: Gate) -> dict[str, Any]:
    """Read every member of an ``.npz`` archive: arrays by name (``.npy`` dropped), other members as bytes."""
    out: dict[str, Any] = {}
    with zipfile.ZipFile(fh) as archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            data = archive.read(info)
            key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if key in out:
                raise InputError(f"npz member {key!r} appears twice")
            out[key] = load_npy(io.BytesIO(data), gate) if data.startswith(_NPY_MAGIC) else data
    return out


def load_safetensors(fh: IO[bytes]) -> dict[str, Any]:
    """Read a safetensors file into NumPy arrays, checking every offset against the file."""
    import numpy as np

    fh.seek(0, io.SEEK_END)
    size = fh.tell()
    fh.seek(0)
    raw = fh.read(8)
    if len(raw) != 8:
        raise InputError("safetensors file shorter than its header length")
    (length,) = struct.unpack("<Q", raw)
    if length > min(_SAFETENSORS_MAX_HEADER, size - 8):
        raise InputError(f"safetensors header length {length} is out of range")
    try:
        header = json.loads(fh.read(length))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"safetensors header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise InputError("safetensors header is not a JSON object")
    base = 8 + length
    out: dict[str, Any] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype_name, shape, offsets = _entry(name, entry)
        numpy_dtype = _SAFETENSORS_DTYPES.get(dtype_name)
        if numpy_dtype is None:
            raise UnsupportedFormatError(
                f"tensor {name!r} has dtype {dtype_name}, which NumPy cannot hold",
                hint="the file passed the scan and safetensors holds no code: load it with "
                "safetensors.torch.load_file",
            )
        dtype = np.dtype(numpy_dtype)
        begin, end = offsets
        if end - begin != math.prod(shape) * dtype.itemsize or base + end > size:
            raise InputError(f"tensor {name!r}: offsets {offsets} do not match its shape and dtype")
        fh.seek(base + begin)
        data = bytearray(fh.read(end - begin))
        if len(data) != end - begin:
            raise InputError(f"tensor {name!r} is truncated")
        out[name] = np.frombuffer(data, dtype=dtype).reshape(shape)
    return out


def _entry(name: str, entry: object) -> tuple[str, tuple[int, ...], tuple[int, int]]:
    if not isinstance(entry, dict):
        raise InputError(f"safetensors entry {name!r} is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if (
        not isinstance(dtype, str)
        or not isinstance(shape, list)
        or not all(type(n) is int and n >= 0 for n in shape)
        or not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(type(n) is int and n >= 0 for n in offsets)
        or offsets[0] > offsets[1]
    ):
        raise InputError(f"safetensors entry {name!r} lacks a valid dtype, shape or data_offsets")
    return dtype, tuple(shape), (offsets[0], offsets[1])
