"""Format by format: NumPy, npz, safetensors, joblib (every compression) and PyTorch's side doors."""

from __future__ import annotations

import io
import json
import pickle
import struct
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from garrison.core.errors import InputError, UnsupportedFormatError
from garrison.loading import safe_load, safe_load_result
from garrison.supplychain.safeload import Gate, LoadRefusedError, RefusedPickleError
from garrison.supplychain.safeload.joblibfile import load_joblib
from garrison.supplychain.safeload.numpyfile import load_npy, load_npz, load_safetensors
from tests.supplychain.malicious import call, sg
from tests.supplychain.safeload.helpers import same
from tests.supplychain.safeload.test_safe_load import SCANNER_OFF

np = pytest.importorskip("numpy")

Write = Callable[[str, bytes], Path]


def evil_pickle(canary: Path, protocol: int = 3) -> bytes:
    """``os.system('touch CANARY')`` as a pickle of the given protocol."""
    return bytes([0x80, protocol]) + call(sg("os", "system"), f"touch {canary}") + b"."


def npy_bytes(array: object, *, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def evil_npy(canary: Path) -> bytes:
    """An .npy header promising an object array, followed by a malicious pickle."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    return buf.getvalue() + evil_pickle(canary)


def safetensors_bytes(tensors: dict[str, tuple[str, list[int], bytes]], metadata: dict[str, str]) -> bytes:
    header: dict[str, object] = {"__metadata__": metadata}
    body = b""
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(body), len(body) + len(data)]}
        body += data
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + body


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12.0).reshape(3, 4),
        np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3)),
        np.zeros(3, dtype=[("a", "<i4"), ("b", ">f8")]),
        np.array([True, False]),
        np.array([{"a": 1}, [1, 2], "x", None], dtype=object),
    ],
    ids=["float", "fortran", "structured", "bool", "object"],
)
def test_npy_arrays_load_and_equal_the_original(array: object, write: Write) -> None:
    result = safe_load_result(write("a.npy", npy_bytes(array, allow_pickle=True)))
    assert result.format in ("numpy", "numpy-object")
    assert same(result.value, array) == []


def test_an_npz_archive_loads_every_member(write: Write) -> None:
    buf = io.BytesIO()
    arrays = {"a": np.zeros(3), "b": np.ones((2, 2)), "o": np.array([1, "x", None], dtype=object)}
    np.savez_compressed(buf, **arrays)
    loaded = safe_load(write("arrays.npz", buf.getvalue()))
    assert same(loaded, arrays) == []


def test_a_malicious_object_array_is_refused_by_the_scan_and_by_the_loader(
    canary: Path, write: Write
) -> None:
    data = evil_npy(canary)
    with pytest.raises(LoadRefusedError) as info:
        safe_load(write("evil.npy", data))
    assert "GAR-PKL-001" in info.value.rule_ids
    with pytest.raises(RefusedPickleError):
        load_npy(io.BytesIO(data), Gate())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("ok.npy", npy_bytes(np.arange(3)))
        archive.writestr("evil.npy", data)
    with pytest.raises(LoadRefusedError):
        safe_load(write("evil.npz", buf.getvalue()))
    with pytest.raises(RefusedPickleError):
        load_npz(io.BytesIO(buf.getvalue()), Gate())
    with pytest.raises(LoadRefusedError):
        safe_load(write("evil2.npz", buf.getvalue()), settings=SCANNER_OFF)
    assert not canary.exists()


def test_safetensors_load_into_numpy_arrays(write: Write) -> None:
    weights = np.arange(6, dtype="<f4").reshape(2, 3)
    ids = np.array([1, 2, 3], dtype="<i8")
    data = safetensors_bytes(
        {"w": ("F32", [2, 3], weights.tobytes()), "ids": ("I64", [3], ids.tobytes())}, {"format": "np"}
    )
    result = safe_load_result(write("model.safetensors", data))
    assert result.format == "safetensors"
    assert same(result.value, {"w": weights, "ids": ids}) == []


def test_safetensors_dtypes_numpy_cannot_hold_are_unsupported(write: Write) -> None:
    data = safetensors_bytes({"w": ("BF16", [2], b"\x00\x00\x00\x00")}, {})
    with pytest.raises(UnsupportedFormatError, match="BF16") as info:
        safe_load(write("bf16.safetensors", data))
    assert "safetensors.torch" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}, "do not match"),
        ({"dtype": "F32", "shape": [2], "data_offsets": [0, 8000]}, "do not match"),
        ({"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}, "lacks a valid"),
        ({"dtype": "F32", "shape": [2]}, "lacks a valid"),
    ],
)
def test_the_safetensors_reader_checks_every_offset(entry: dict[str, object], message: str) -> None:
    raw = json.dumps({"w": entry}).encode()
    data = struct.pack("<Q", len(raw)) + raw + b"\x00" * 8
    with pytest.raises(InputError, match=message):
        load_safetensors(io.BytesIO(data))


COMPRESSIONS = ["zlib", "gzip", "bz2", "xz", "lzma", "lz4"]


def _joblib_bytes(tmp_path: Path, obj: object, compress: object) -> bytes:
    import joblib

    path = tmp_path / "dumped.joblib"
    joblib.dump(obj, path, compress=compress)
    return path.read_bytes()


def _joblib_payload() -> dict[str, object]:
    return {
        "float": np.arange(10.0),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "big-endian": np.arange(4, dtype=">i4"),
        "objects": np.array([1, "x", None], dtype=object),
        "empty": np.zeros((0, 3)),
        "scalar": np.float64(2.5),
    }


@pytest.mark.parametrize("compression", [None, *COMPRESSIONS])
def test_joblib_files_load_through_the_restricted_unpickler(compression: str | None, tmp_path: Path) -> None:
    pytest.importorskip("joblib")
    if compression == "lz4":
        pytest.importorskip("lz4")
    payload = _joblib_payload()
    import joblib

    data = _joblib_bytes(tmp_path, payload, (compression, 3) if compression else 0)
    loaded = load_joblib(io.BytesIO(data), Gate())
    assert same(loaded, joblib.load(io.BytesIO(data))) == []
    assert loaded["big-endian"].dtype.isnative  # as joblib does, arrays come back in native byte order
    assert np.array_equal(loaded["big-endian"], payload["big-endian"])
    assert loaded["fortran"].flags.f_contiguous


def test_an_uncompressed_joblib_file_loads_through_safe_load(write: Write, tmp_path: Path) -> None:
    pytest.importorskip("joblib")
    payload = _joblib_payload()
    import joblib

    data = _joblib_bytes(tmp_path, payload, 0)
    result = safe_load_result(write("model.joblib", data))
    assert result.format == "joblib"
    assert same(result.value, joblib.load(io.BytesIO(data))) == []


def test_a_compressed_joblib_file_loads_through_safe_load(write: Write, tmp_path: Path) -> None:
    pytest.importorskip("joblib")
    payload = {"a": np.arange(10.0)}
    assert same(safe_load(write("model.joblib", _joblib_bytes(tmp_path, payload, 3))), payload) == []


def test_a_malicious_object_array_inside_a_joblib_file_is_refused(canary: Path, tmp_path: Path) -> None:
    pytest.importorskip("joblib")
    objects = np.array([None], dtype=object)
    data = _joblib_bytes(tmp_path, {"o": objects}, 0)
    nested = pickle.dumps(objects, protocol=5)
    assert data.count(nested) == 1, "joblib wrote the object array as a nested protocol 5 pickle"
    evil = data.replace(nested, evil_pickle(canary, protocol=5))
    with pytest.raises(RefusedPickleError):
        load_joblib(io.BytesIO(evil), Gate())
    path = tmp_path / "evil.joblib"
    path.write_bytes(evil)
    with pytest.raises(LoadRefusedError):
        safe_load(path)
    with pytest.raises(LoadRefusedError) as info:
        safe_load(path, settings=SCANNER_OFF)
    assert info.value.refused_globals == ("os.system",)
    assert not canary.exists()


def test_the_old_joblib_layout_with_side_files_is_unsupported() -> None:
    with pytest.raises(UnsupportedFormatError, match="side files"):
        load_joblib(io.BytesIO(b"ZF0x00000010" + b"\x78\x9c" + b"\x00" * 16), Gate())


def test_joblib_data_after_the_stream_is_refused(tmp_path: Path) -> None:
    from garrison.supplychain.safeload.unpickler import TrailingDataError

    pytest.importorskip("joblib")
    data = _joblib_bytes(tmp_path, {"a": np.arange(3.0)}, 0)
    with pytest.raises(TrailingDataError):
        load_joblib(io.BytesIO(data + b"\x80\x04N."), Gate())


def _torch_zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_a_zip_torch_would_hand_to_torch_jit_load_is_refused() -> None:
    pytest.importorskip("torch")
    from garrison.supplychain.safeload.torchfile import load_torch

    data = _torch_zip(
        {
            "archive/data.pkl": pickle.dumps({}, protocol=2),
            "archive/constants.pkl": pickle.dumps((), protocol=2),
            "archive/version": b"3\n",
        }
    )
    with pytest.raises(UnsupportedFormatError, match=r"torch\.jit\.load"):
        load_torch(io.BytesIO(data), "pytorch-zip", Gate(), "cpu")


def test_a_legacy_checkpoint_that_is_also_a_tar_archive_is_refused() -> None:
    pytest.importorskip("torch")
    from garrison.supplychain.safeload.torchfile import load_torch

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        info = tarfile.TarInfo("storages")
        archive.addfile(info, io.BytesIO(b""))
    with pytest.raises(UnsupportedFormatError, match="tar archive"):
        load_torch(io.BytesIO(buf.getvalue()), "pytorch-legacy", Gate(), "cpu")


def test_a_format_disagreement_with_torch_is_refused() -> None:
    pytest.importorskip("torch")
    from garrison.supplychain.safeload.torchfile import load_torch

    with pytest.raises(InputError, match="differently"):
        load_torch(io.BytesIO(_torch_zip({"archive/data.pkl": b"N."})), "pytorch-legacy", Gate(), "cpu")


def test_torch_force_weights_only_is_reported(write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save({"w": torch.zeros(1)}, buf)
    monkeypatch.setenv("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(InputError, match="TORCH_FORCE_WEIGHTS_ONLY_LOAD"):
        safe_load(write("w.pt", buf.getvalue()))


def test_map_location_is_passed_to_torch(write: Write) -> None:
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buf)
    loaded = safe_load(write("w.pt", buf.getvalue()), map_location="meta")
    assert loaded["w"].device.type == "meta"


def test_a_protocol_0_text_stream_is_checked_like_any_other(write: Write, canary: Path) -> None:
    data = b"cposix\nsystem\n(S'touch " + str(canary).encode() + b"'\ntR."
    with pytest.raises(LoadRefusedError) as info:
        safe_load(write("text.pkl", data), settings=SCANNER_OFF)
    assert info.value.refused_globals == ("posix.system",)
    assert not canary.exists()


def test_a_joblib_header_promising_a_huge_array_reserves_no_memory() -> None:
    dtype = pickle.dumps(np.dtype("f8"), protocol=2)[2:-1]
    huge = struct.pack("<q", 2**40)  # 8 TiB of float64, and no data behind it
    data = (
        b"\x80\x02cjoblib.numpy_pickle\nNumpyArrayWrapper\n)\x81}("
        + b"X\x05\x00\x00\x00dtype"
        + dtype
        + b"X\x05\x00\x00\x00shape\x8a\x08"
        + huge
        + b"\x85X\x05\x00\x00\x00orderX\x01\x00\x00\x00Cub."
    )
    with pytest.raises(pickle.UnpicklingError, match="truncated"):
        load_joblib(io.BytesIO(data), Gate())


def test_lz4_without_the_lz4_package_is_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lz4.frame", None)
    with pytest.raises(UnsupportedFormatError, match="lz4"):
        load_joblib(io.BytesIO(b"\x04\x22\x4d\x18" + b"\x00" * 16), Gate())
