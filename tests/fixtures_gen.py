"""Generators of test fixtures: one small file per format, valid or deliberately broken.

Every "malicious" pickle here is harmless: its ``__reduce__`` calls ``builtins.print``. The tests
never load any of them; they only identify and scan the bytes.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import pickle
import struct
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np

HARMLESS_MESSAGE = "garrison test fixture: this pickle only prints"


class HarmlessReduce:
    """Pickles to a call of ``builtins.print`` (what a real payload would put ``os.system`` in)."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, (HARMLESS_MESSAGE,))


def harmless_pickle(protocol: int = 4) -> bytes:
    """A pickle whose load would call ``print``."""
    return pickle.dumps({"weights": [1.0, 2.0], "hook": HarmlessReduce()}, protocol=protocol)


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _tar(members: dict[str, bytes], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:  # type: ignore[call-overload]
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def torch_zip() -> bytes:
    """The layout ``torch.save`` writes: ``<name>/data.pkl`` plus storages, with a harmless pickle."""
    return _zip(
        {
            "archive/data.pkl": harmless_pickle(2),
            "archive/byteorder": b"little",
            "archive/data/0": struct.pack("<4f", 1, 2, 3, 4),
            "archive/version": b"3\n",
        }
    )


def torchscript_zip() -> bytes:
    """The layout ``torch.jit.save`` writes."""
    return _zip(
        {
            "model/data.pkl": pickle.dumps({}, protocol=2),
            "model/constants.pkl": pickle.dumps((), protocol=2),
            "model/code/__torch__/model.py": b"class Model(Module):\n  pass\n",
            "model/version": b"8\n",
        }
    )


def torch_legacy_pickle() -> bytes:
    """The legacy (pre-1.6) ``torch.save`` stream: magic number, version, sys info, the object."""
    parts = [
        b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little") + b".",
        pickle.dumps(1001, protocol=2),
        pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2),
        harmless_pickle(2),
        pickle.dumps([], protocol=2),
    ]
    return b"".join(parts)


def torch_legacy_tar() -> bytes:
    """The legacy tar layout read by ``torch.load``."""
    empty = pickle.dumps([], protocol=2)
    return _tar({"sys_info": empty, "pickle": harmless_pickle(2), "storages": empty, "tensors": empty})


def _dump_joblib(value: object, compress: object = 0) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.joblib"
        joblib.dump(value, path, compress=compress)
        return path.read_bytes()


def joblib_file(compress: object = 0) -> bytes:
    """A joblib dump of a dict with NumPy arrays (what a scikit-learn model looks like)."""
    return _dump_joblib({"coef": np.arange(12.0).reshape(3, 4), "classes": np.array([0, 1, 2])}, compress)


def npy(array: np.ndarray, *, allow_pickle: bool = False) -> bytes:
    """An array saved with ``np.save``."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def npz(*, objects: bool = False) -> bytes:
    """An ``np.savez`` archive, optionally with an object array (pickled inside)."""
    buffer = io.BytesIO()
    arrays: dict[str, np.ndarray] = {"a": np.arange(5), "b": np.ones((2, 2))}
    if objects:
        arrays["c"] = np.array([1, "two", None], dtype=object)
        np.savez_compressed(buffer, allow_pickle=True, **arrays)
    else:
        np.savez(buffer, **arrays)
    return buffer.getvalue()


def safetensors(
    tensors: dict[str, np.ndarray] | None = None, *, metadata: dict[str, str] | None = None
) -> bytes:
    """A safetensors file written by hand: u64 header length, JSON header, raw little-endian data."""
    tensors = tensors if tensors is not None else {"w": np.arange(6, dtype="<f4").reshape(2, 3)}
    names = {"<f4": "F32", "<f8": "F64", "<i8": "I64", "<i4": "I32"}
    header: dict[str, object] = {"__metadata__": metadata or {"format": "pt"}}
    blobs: list[bytes] = []
    offset = 0
    for name, array in tensors.items():
        data = np.ascontiguousarray(array).tobytes()
        header[name] = {
            "dtype": names[array.dtype.str],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"".join(blobs)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _pb_len(field: int, body: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(body)) + body


def onnx_model() -> bytes:
    """A minimal ONNX ``ModelProto``: ir_version, producer, a graph with one node, an opset."""
    node = _pb_len(1, b"x") + _pb_len(2, b"y") + _pb_len(4, b"Relu")
    graph = _pb_len(1, node) + _pb_len(2, b"g")
    opset = _pb_len(1, b"") + b"\x10\x11"
    return b"\x08\x08" + _pb_len(2, b"garrison-tests") + _pb_len(7, graph) + _pb_len(8, opset)


def saved_model_pb() -> bytes:
    """A minimal ``SavedModel``: schema version 1 and one meta graph."""
    meta_graph = _pb_len(1, _pb_len(4, b"serve")) + _pb_len(2, _pb_len(1, b"node"))
    return b"\x08\x01" + _pb_len(2, meta_graph)


def gguf(version: int = 3) -> bytes:
    """A GGUF header with one metadata key and no tensors."""
    key = b"general.name"
    kv = struct.pack("<Q", len(key)) + key + struct.pack("<I", 8) + struct.pack("<Q", 4) + b"test"
    return b"GGUF" + struct.pack("<IQQ", version, 0, 1) + kv


def hdf5(*, keras: bool = False, claimed_size: int | None = None) -> bytes:
    """An HDF5 signature and version-0 superblock (addresses of 8 bytes), then padding."""
    size = 2048
    body = b"keras_version\x00model_config\x00" + b'{"class_name": "Lambda"}' if keras else b""
    sb = b"\x89HDF\r\n\x1a\n" + bytes([0, 0, 0, 0, 0, 8, 8, 0]) + struct.pack("<HHI", 4, 16, 0)
    undefined = b"\xff" * 8
    sb += struct.pack("<Q", 0) + undefined + struct.pack("<Q", claimed_size or size) + undefined
    data = sb + body
    return data + b"\x00" * (size - len(data))


def parquet(*, truncated: bool = False) -> bytes:
    """Parquet's frame only: ``PAR1``, bytes standing for pages, footer length, ``PAR1``."""
    footer = b"\x15\x00" * 8
    data = b"PAR1" + b"\x00" * 32 + footer + struct.pack("<I", len(footer)) + b"PAR1"
    return data[:30] if truncated else data


def keras_v3() -> bytes:
    """A ``.keras`` archive whose config has a Lambda layer."""
    config = {"class_name": "Sequential", "config": {"layers": [{"class_name": "Lambda"}]}}
    return _zip(
        {
            "metadata.json": b'{"keras_version": "3.0.0"}',
            "config.json": json.dumps(config).encode(),
            "model.weights.h5": hdf5(),
        },
        zipfile.ZIP_DEFLATED,
    )


def broken_central_directory() -> bytes:
    """A torch zip whose central directory signature was overwritten."""
    data = bytearray(torch_zip())
    at = data.rfind(b"PK\x01\x02", 0, data.rfind(b"PK\x05\x06"))
    data[at : at + 4] = b"XXXX"
    return bytes(data)


def with_zip64_records(data: bytes) -> bytes:
    """The same zip with zip64 end records before its end record, as PyTorch writes them."""
    eocd = data.rfind(b"PK\x05\x06")
    entries, cd_size, cd_offset = struct.unpack_from("<10xHII", data, eocd)
    record = b"PK\x06\x06" + struct.pack("<QHHIIQQQQ", 44, 45, 45, 0, 0, entries, entries, cd_size, cd_offset)
    locator = b"PK\x06\x07" + struct.pack("<IQI", 0, eocd, 1)
    return data[:eocd] + record + locator + data[eocd:]


CSV_TEXT = (
    b"sepal_length,sepal_width,petal_length,petal_width,species\n5.1,3.5,1.4,0.2,0\n4.9,3.0,1.4,0.2,0\n"
)
JSONL_TEXT = b'{"text": "hello", "label": 1}\n{"text": "bye", "label": 0}\n{"text": "ok", "label": 1}\n'
JSON_TEXT = b'{"model": "iris", "layers": [4, 16, 3]}\n'
PLAIN_TEXT = b"This is a README for a model.\nIt has two lines.\n"
BINARY = bytes(range(256)) * 4


@dataclass(frozen=True, slots=True)
class Fixture:
    """One generated file and what identification should say about it."""

    name: str
    """File name to write it under (its extension matches its content unless noted)."""
    make: Callable[[], bytes]
    """Produces the bytes."""
    format: str
    """Expected format id."""
    malformed: bool = False
    """Whether identification should report it broken."""


FIXTURES: tuple[Fixture, ...] = (
    *(
        Fixture(f"pickle-p{p}.pkl", lambda p=p: harmless_pickle(p), "pickle")  # type: ignore[misc]
        for p in range(6)
    ),
    Fixture("pickle-plain-p0.pkl", lambda: pickle.dumps({"a": [1, 2, "x"], "b": 1.5}, protocol=0), "pickle"),
    Fixture("pickle-truncated.pkl", lambda: harmless_pickle(4)[:-5], "pickle", malformed=True),
    Fixture(
        "pickle-p0-truncated.pkl",
        lambda: pickle.dumps(list(range(200)), protocol=0)[:-20],
        "pickle",
        malformed=True,
    ),
    Fixture("legacy.pt", torch_legacy_pickle, "pytorch-legacy"),
    Fixture("legacy-tar.pt", torch_legacy_tar, "pytorch-legacy"),
    Fixture("model.pt", torch_zip, "pytorch-zip"),
    Fixture("model-truncated.pt", lambda: torch_zip()[:200], "pytorch-zip", malformed=True),
    Fixture("model-broken-cd.pt", broken_central_directory, "pytorch-zip", malformed=True),
    Fixture("model-zip64.pt", lambda: with_zip64_records(torch_zip()), "pytorch-zip"),
    Fixture("scripted.pt", torchscript_zip, "torchscript"),
    Fixture("model.joblib", joblib_file, "joblib"),
    *(
        Fixture(f"model-{c}.joblib", lambda c=c: joblib_file((c, 3)), "joblib")  # type: ignore[misc]
        for c in ("zlib", "gzip", "bz2", "xz", "lzma")
    ),
    # A valid LZ4 frame (sixteen zero bytes, no content checksum), written out so no lz4 package is needed.
    Fixture("frame.lz4", lambda: b'\x04"M\x18`@\x82\n\x00\x00\x00\x16\x00\x01\x00P' + b"\x00" * 9, "lz4"),
    Fixture("array.npy", lambda: npy(np.arange(10, dtype="<f4")), "numpy"),
    Fixture(
        "objects.npy", lambda: npy(np.array([1, "a", None], dtype=object), allow_pickle=True), "numpy-object"
    ),
    Fixture("array-header-cut.npy", lambda: npy(np.arange(10))[:40], "numpy", malformed=True),
    Fixture("array-data-cut.npy", lambda: npy(np.arange(100, dtype="<f8"))[:-8], "numpy", malformed=True),
    Fixture("arrays.npz", npz, "numpy-npz"),
    Fixture("objects.npz", lambda: npz(objects=True), "numpy-npz-object"),
    Fixture("model.safetensors", safetensors, "safetensors"),
    Fixture(
        "long-header.safetensors",
        lambda: struct.pack("<Q", 10_000) + b'{"a": 1}',
        "safetensors",
        malformed=True,
    ),
    Fixture("bad-json.safetensors", lambda: struct.pack("<Q", 6) + b"{oops}", "safetensors", malformed=True),
    Fixture("model.onnx", onnx_model, "onnx"),
    Fixture("truncated.onnx", lambda: onnx_model()[:-3], "onnx", malformed=True),
    Fixture("saved_model.pb", saved_model_pb, "tf-savedmodel"),
    Fixture("model.gguf", gguf, "gguf"),
    Fixture("bad-version.gguf", lambda: gguf(9), "gguf", malformed=True),
    Fixture("weights.h5", hdf5, "hdf5"),
    Fixture("model.h5", lambda: hdf5(keras=True), "hdf5-keras"),
    Fixture("cut.h5", lambda: hdf5(claimed_size=10_000), "hdf5", malformed=True),
    Fixture("model.keras", keras_v3, "keras-v3"),
    Fixture("docs.zip", lambda: _zip({"readme.txt": PLAIN_TEXT}), "zip"),
    Fixture("docs.tar", lambda: _tar({"readme.txt": PLAIN_TEXT}), "tar"),
    Fixture("docs.tar.gz", lambda: _tar({"readme.txt": PLAIN_TEXT}, "w:gz"), "tar"),
    Fixture("docs.tar-cut", lambda: _tar({"readme.txt": PLAIN_TEXT * 40})[:1200], "tar", malformed=True),
    Fixture("notes.gz", lambda: gzip.compress(PLAIN_TEXT), "gzip"),
    Fixture("notes-cut.gz", lambda: gzip.compress(PLAIN_TEXT * 50)[:60], "gzip", malformed=True),
    Fixture("notes.bz2", lambda: bz2.compress(PLAIN_TEXT), "bz2"),
    Fixture("notes.xz", lambda: lzma.compress(PLAIN_TEXT), "xz"),
    Fixture("archive.7z", lambda: b"7z\xbc\xaf\x27\x1c\x00\x04" + b"\x00" * 24, "7z"),
    Fixture("table.parquet", parquet, "parquet"),
    Fixture("cut.parquet", lambda: parquet(truncated=True), "parquet", malformed=True),
    Fixture("iris.csv", lambda: CSV_TEXT, "csv"),
    Fixture("rows.jsonl", lambda: JSONL_TEXT, "jsonl"),
    Fixture("bad-rows.jsonl", lambda: JSONL_TEXT + b"{not json\n", "jsonl", malformed=True),
    Fixture("config.json", lambda: JSON_TEXT, "json"),
    Fixture("README.txt", lambda: PLAIN_TEXT, "text"),
    Fixture("empty.txt", lambda: b"", "empty"),
    Fixture("blob.bin", lambda: BINARY, "unknown"),
)
"""One fixture (at least) per format id, plus broken variants."""


def write(fixture: Fixture, directory: Path) -> Path:
    """Write one fixture into ``directory`` and return its path."""
    path = directory / fixture.name
    path.write_bytes(fixture.make())
    return path
