"""The file-inventory detector: a table of (file name, content) -> rule ids, and its contract."""

from __future__ import annotations

import hashlib
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from garrison.core.assets import Asset, AssetKind
from garrison.core.errors import GarrisonError
from garrison.core.evidence import ByteRange, Observation
from garrison.core.findings import Finding
from garrison.core.registry import FileTarget, Registry
from garrison.core.severity import Severity
from garrison.formats import HEAD_BYTES
from garrison.inventory import DETECTORS, RULES, FileInventory
from tests import fixtures_gen as gen

PICKLE = gen.harmless_pickle(4)


def target_for(path: Path, locator: str | None = None) -> FileTarget:
    data = path.read_bytes()
    asset = Asset(
        kind=AssetKind.FILE,
        locator=locator or path.name,
        digest="sha256:" + hashlib.sha256(data).hexdigest(),
        size=len(data),
    )
    return FileTarget(path=path, asset=asset, head=data[:HEAD_BYTES])


def scan(path: Path, locator: str | None = None) -> list[Finding]:
    return list(FileInventory().scan(target_for(path, locator)))


CASES: list[tuple[str, Callable[[], bytes], set[str]]] = [
    ("model.pkl", lambda: PICKLE, {"GAR-FMT-001"}),
    ("model.safetensors", lambda: PICKLE, {"GAR-FMT-001", "GAR-FMT-101"}),
    ("model.onnx", lambda: PICKLE, {"GAR-FMT-001", "GAR-FMT-101"}),
    ("model.gguf", lambda: PICKLE, {"GAR-FMT-001", "GAR-FMT-101"}),
    ("config.json", lambda: PICKLE, {"GAR-FMT-001", "GAR-FMT-101"}),
    ("weights.npy", lambda: PICKLE, {"GAR-FMT-001", "GAR-FMT-101"}),
    ("table.parquet", gen.torch_zip, {"GAR-FMT-001", "GAR-FMT-101"}),
    ("weights.npy", lambda: gen.npy(np.arange(3)), set()),
    ("objects.npy", lambda: gen.npy(np.array([None], dtype=object), allow_pickle=True), {"GAR-FMT-001"}),
    ("model.safetensors", gen.safetensors, set()),
    ("model.pt", gen.torch_zip, {"GAR-FMT-001"}),
    ("checkpoint.pth.tar", gen.torch_zip, {"GAR-FMT-001"}),
    ("model.pt", lambda: PICKLE, {"GAR-FMT-001", "GAR-FMT-102"}),
    ("model.keras", lambda: PICKLE, {"GAR-FMT-001", "GAR-FMT-102"}),
    ("model.pkl", gen.safetensors, {"GAR-FMT-102"}),
    ("data.csv", lambda: gen.JSON_TEXT, {"GAR-FMT-102"}),
    ("random.safetensors", lambda: gen.BINARY, {"GAR-FMT-102"}),
    ("long-header.safetensors", lambda: b"\x00\x00\x01\x00\x00\x00\x00\x00{}", {"GAR-FMT-103"}),
    ("truncated.pkl", lambda: PICKLE[:-3], {"GAR-FMT-001", "GAR-FMT-103"}),
    ("cut.npy", lambda: gen.npy(np.arange(100))[:-8], {"GAR-FMT-103"}),
    ("cut.pt", lambda: gen.torch_zip()[:200], {"GAR-FMT-001", "GAR-FMT-103"}),
    ("model.h5", lambda: gen.hdf5(keras=True), {"GAR-FMT-001"}),
    ("weights.h5", gen.hdf5, set()),
    ("model.keras", gen.keras_v3, {"GAR-FMT-001"}),
    ("arrays.npz", gen.npz, set()),
    ("arrays.zip", gen.npz, set()),
    ("model.joblib", gen.joblib_file, {"GAR-FMT-001"}),
    ("model.bin", lambda: PICKLE, {"GAR-FMT-001"}),
    ("Makefile", lambda: PICKLE, {"GAR-FMT-001"}),
    ("iris.csv", lambda: gen.CSV_TEXT, set()),
    ("notes.txt", lambda: gen.CSV_TEXT, set()),
    ("empty.txt", lambda: b"", set()),
    ("empty.safetensors", lambda: b"", {"GAR-FMT-102"}),
    ("model.onnx", gen.onnx_model, set()),
    ("model.gguf", gen.gguf, set()),
]


@pytest.mark.parametrize(
    ("name", "make", "expected"), CASES, ids=[f"{i}-{c[0]}" for i, c in enumerate(CASES)]
)
def test_rules_raised(name: str, make: Callable[[], bytes], expected: set[str], tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(make())
    findings = scan(path)
    assert {f.rule.id for f in findings} == expected
    for finding in findings:
        assert finding.detector == "file-inventory"
        assert name in finding.message
        assert any(isinstance(e, Observation) and e.name == "content-format" for e in finding.evidence)


def test_disguised_pickle_is_high_and_says_why(tmp_path: Path) -> None:
    path = tmp_path / "embeddings.safetensors"
    path.write_bytes(PICKLE)
    (finding,) = [f for f in scan(path) if f.rule.id == "GAR-FMT-101"]
    assert finding.severity is Severity.HIGH
    assert "Python pickle" in finding.message
    assert ".safetensors" in finding.message
    (evidence,) = finding.evidence
    assert isinstance(evidence, Observation)
    assert (evidence.actual, evidence.expected) == ("pickle", "safetensors")


@pytest.mark.parametrize(
    ("name", "content", "phrase"),
    [
        ("random.safetensors", gen.BINARY, "is an unknown binary file"),
        ("empty.safetensors", b"", "is an empty file"),
        ("data.csv", gen.JSON_TEXT, "is a JSON file"),
    ],
)
def test_messages_use_the_right_article(name: str, content: bytes, phrase: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    (finding,) = scan(path)
    assert phrase in finding.message


def test_malformed_finding_carries_a_byte_range(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\xff\xff\x00\x00\x00\x00\x00\x00{}")
    (finding,) = scan(path)
    assert finding.rule.id == "GAR-FMT-103"
    ranges = [e for e in finding.evidence if isinstance(e, ByteRange)]
    assert ranges
    assert (ranges[0].start, ranges[0].end) == (0, 8)
    assert finding.location.offset == 0


def test_archive_member_names_come_from_the_locator(tmp_path: Path) -> None:
    path = tmp_path / "tmp-extracted-0001"
    path.write_bytes(PICKLE)
    findings = scan(path, locator="bundle.zip!weights/model.safetensors")
    assert "GAR-FMT-101" in {f.rule.id for f in findings}
    assert all("model.safetensors" in f.message for f in findings)


def test_fingerprints_are_stable_across_content_edits(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(PICKLE)
    first = {f.fingerprint for f in scan(path)}
    path.write_bytes(pickle.dumps({"other": 1}, protocol=2))
    assert {f.fingerprint for f in scan(path)} == first


def test_registers_cleanly_and_rules_are_complete() -> None:
    registry = Registry()
    for detector in DETECTORS:
        registry.add(detector)
    assert registry.detector("file-inventory") is FileInventory
    assert [r.id for r in registry.rules()] == sorted(r.id for r in RULES)
    for rule in RULES:
        assert rule.family == "FMT"
        assert rule.description
        assert rule.remediation
        assert rule.controls
        assert rule.cwe
        assert rule.atlas
    assert FileInventory.formats == frozenset()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.binary(max_size=1024), st.sampled_from(["x.safetensors", "x.pkl", "x.json", "x.npy", "x", "x.tar.gz"])
)
def test_hostile_bytes_raise_only_garrison_errors(data: bytes, name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            findings = scan(path)
        except GarrisonError:
            return
        assert all(f.rule in RULES for f in findings)
