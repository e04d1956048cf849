"""Format identification: one table row per fixture, every format id covered, extensions."""

from __future__ import annotations

from pathlib import Path

import pytest

from garrison.formats import FORMATS, HEAD_BYTES, Identification, formats_for_extension, identify
from tests.fixtures_gen import FIXTURES, Fixture, write


def identify_file(path: Path) -> Identification:
    data = path.read_bytes()
    return identify(path, data[:HEAD_BYTES], len(data))


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f.name for f in FIXTURES])
def test_identifies_fixture(fixture: Fixture, tmp_path: Path) -> None:
    found = identify_file(write(fixture, tmp_path))
    assert found.format == fixture.format, found
    assert (found.malformed is not None) == fixture.malformed, found.malformed


def test_every_format_id_has_a_fixture() -> None:
    assert {f.format for f in FIXTURES} == set(FORMATS)


def test_format_infos_are_consistent() -> None:
    for key, info in FORMATS.items():
        assert info.id == key
        assert info.label
        assert all(ext.startswith(".") and ext == ext.lower() for ext in info.extensions)


@pytest.mark.parametrize(
    ("fmt", "executes"),
    [
        ("pickle", True),
        ("joblib", True),
        ("pytorch-zip", True),
        ("pytorch-legacy", True),
        ("torchscript", True),
        ("numpy-object", True),
        ("numpy-npz-object", True),
        ("keras-v3", True),
        ("hdf5-keras", True),
        ("numpy", False),
        ("safetensors", False),
        ("onnx", False),
        ("gguf", False),
        ("parquet", False),
        ("csv", False),
        ("json", False),
        ("hdf5", False),
    ],
)
def test_executes_code(fmt: str, executes: bool) -> None:
    assert FORMATS[fmt].executes_code is executes


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("model.safetensors", {"safetensors"}),
        ("MODEL.SAFETENSORS", {"safetensors"}),
        ("dir/weights.Npy", {"numpy", "numpy-object"}),
        ("data.tar.gz", {"tar"}),
        ("data.tgz", {"tar"}),
        ("checkpoint.pth.tar", {"pickle", "pytorch-zip", "pytorch-legacy"}),
        ("model.pkl", {"pickle", "joblib"}),
        ("x.gz", {"gzip", "tar", "joblib"}),
        ("model.onnx", {"onnx"}),
        ("rows.jsonl", {"jsonl", "json"}),
    ],
)
def test_formats_for_extension(name: str, expected: set[str]) -> None:
    assert formats_for_extension(name) == expected


@pytest.mark.parametrize(
    "name", ["pytorch_model.bin", "README", "archive.dat", ".gitignore", "a.b.c.unknownext"]
)
def test_extensions_that_promise_nothing(name: str) -> None:
    assert formats_for_extension(name) is None


def test_identification_details_lookup(tmp_path: Path) -> None:
    found = identify_file(write(FIXTURES[4], tmp_path))
    assert found.detail("protocol") == "4"
    assert found.detail("missing") is None


def test_text_is_not_taken_for_a_protocol_0_pickle(tmp_path: Path) -> None:
    for text in (b"(just a remark)\n", b"c\n", b"N.\nhello", b"I1\n.", b"[project]\nname = 'x'\n"):
        path = tmp_path / "t.txt"
        path.write_bytes(text * 3)
        assert identify_file(path).format != "pickle", text


def test_joblib_detail_names_its_compression(tmp_path: Path) -> None:
    fixture = next(f for f in FIXTURES if f.name == "model-bz2.joblib")
    assert identify_file(write(fixture, tmp_path)).detail("compression") == "bz2"


def test_zip_with_bytes_in_front_is_still_found(tmp_path: Path) -> None:
    fixture = next(f for f in FIXTURES if f.name == "model.pt")
    path = tmp_path / "polyglot.bin"
    path.write_bytes(b"\x00\x01GIF-like header" * 8 + fixture.make())
    found = identify_file(path)
    assert found.format == "pytorch-zip"
    assert found.detail("prefix-bytes") == "136"
