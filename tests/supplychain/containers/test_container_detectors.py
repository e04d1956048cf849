"""Container detectors on real benign files and on malicious payloads wrapped in every container.

Payload pickles would create a canary file if they ever ran; pickling them runs nothing, and each
test checks at the end that the canary does not exist.
"""

from __future__ import annotations

import importlib.util
import io
import os
import pickle
import tarfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from garrison.core.assets import Asset, AssetKind
from garrison.core.config import Settings
from garrison.core.findings import Finding
from garrison.core.registry import FileTarget, Registry
from garrison.core.severity import Severity
from garrison.engine.rules import ENGINE_RULES
from garrison.engine.runner import scan_path
from garrison.formats import HEAD_BYTES, identify
from garrison.supplychain.containers import PickleContainers, PyTorchCheckpoint
from tests.supplychain.containers.zipcraft import Entry, build_zip

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")
joblib = pytest.importorskip("joblib")

COMPRESSORS = ["zlib", "gzip", "bz2", "xz", "lzma"] + (
    ["lz4"] if importlib.util.find_spec("lz4") is not None else []
)


class Payload:
    """Pickles to ``os.system('touch <canary>')``; never unpickled here."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.canary}",)


def findings(path: Path) -> list[Finding]:
    data = path.read_bytes()
    ident = identify(path, data[:HEAD_BYTES], len(data))
    asset = Asset(kind=AssetKind.FILE, locator=path.name, size=len(data), format=ident.format)
    target = FileTarget(path=path, asset=asset, head=data[:HEAD_BYTES], details=ident.details)
    out: list[Finding] = []
    for detector in (PyTorchCheckpoint(), PickleContainers()):
        if detector.applies_to(target):
            out.extend(detector.scan(target))
    return out


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "canary"
    yield path
    assert not path.exists(), "a payload ran"


def benign_files(tmp: Path) -> list[Path]:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(model.state_dict(), tmp / "state.pt")
        torch.save(model, tmp / "module.pt")
        torch.save(model.state_dict(), tmp / "legacy.pt", _use_new_zipfile_serialization=False)
        torch.jit.save(torch.jit.script(model), tmp / "scripted.pt")
    np.save(tmp / "plain.npy", np.arange(10.0))
    np.save(tmp / "objects.npy", np.array([{"a": 1}, [1, 2], "x"], dtype=object), allow_pickle=True)
    np.savez(tmp / "arrays.npz", a=np.zeros(3), b=np.ones((2, 2)))
    np.savez_compressed(tmp / "mixed.npz", a=np.zeros(3), b=np.array([1, "x"], dtype=object))
    for kind in COMPRESSORS:
        joblib.dump({"w": np.zeros(8), "names": ["a", "b"]}, tmp / f"model.{kind}.joblib", compress=(kind, 3))
    return sorted(tmp.iterdir())


def test_benign_containers_are_not_flagged_high(tmp_path: Path) -> None:
    paths = benign_files(tmp_path)
    assert len(paths) >= 13
    for path in paths:
        high = [f for f in findings(path) if f.severity >= Severity.HIGH]
        assert high == [], (path.name, [f.message for f in high])


def _legacy_tar(path: Path, payload: bytes) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in (
            ("storages", pickle.dumps(0, protocol=2)),
            ("tensors", pickle.dumps(0, protocol=2)),
            ("pickle", payload),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def malicious_files(tmp: Path, canary: Path) -> dict[str, Path]:
    evil = pickle.dumps(Payload(canary), protocol=2)
    files: dict[str, bytes] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save({"w": torch.zeros(2), "x": Payload(canary)}, tmp / "zip.pt")
        torch.save(Payload(canary), tmp / "legacy.pt", _use_new_zipfile_serialization=False)
    version = Entry(name="archive/version", data=b"3\n")
    files["crc.pt"] = build_zip([Entry(name="archive/data.pkl", data=evil, crc=0), version])
    files["names.pt"] = build_zip(
        [Entry(name="archive/data.pkl", data=evil, local_name="archive/readme.txt"), version]
    )
    files["case.pt"] = build_zip([Entry(name="ARCHIVE/Data.Pkl", data=evil, method=8), version])
    files["renamed.pt"] = build_zip(
        [
            Entry(name="archive/data.pkl", data=pickle.dumps({})),
            version,
            Entry(name="archive/whatever.bin", data=evil),
        ]
    )
    # A payload *in* the prefix makes the file a pickle, which the pickle scanner reads from byte 0.
    files["junk.pt"] = build_zip(
        [Entry(name="archive/data.pkl", data=evil), version], prefix=b"MZ\x00JUNK" * 20, relative_offsets=True
    )
    files["flags.pt"] = build_zip(
        [Entry(name="archive/data.pkl", data=evil, flags=0x808, local_flags=0x801), version]
    )
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    _legacy_tar(tmp / "legacy-tar.pt", evil)
    np.save(tmp / "object.npy", np.array([Payload(canary)], dtype=object), allow_pickle=True)
    np.savez(tmp / "object.npz", ok=np.zeros(2), bad=np.array([Payload(canary)], dtype=object))
    for kind in COMPRESSORS:
        joblib.dump([np.zeros(4), Payload(canary)], tmp / f"evil.{kind}.joblib", compress=(kind, 3))
    return {p.name: p for p in tmp.iterdir() if p.name != "canary"}


def test_malicious_payloads_are_found_in_every_container(tmp_path: Path, canary: Path) -> None:
    files = malicious_files(tmp_path, canary)
    assert len(files) >= 15
    for name, path in sorted(files.items()):
        rules = {f.rule.id for f in findings(path) if f.severity >= Severity.HIGH}
        assert "GAR-PKL-001" in rules, (name, rules)


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("crc.pt", "GAR-PT-101"),
        ("names.pt", "GAR-PT-102"),
        ("junk.pt", "GAR-PT-104"),
        ("flags.pt", "GAR-PT-106"),
    ],
)
def test_tampering_is_reported_next_to_the_payload(
    tmp_path: Path, canary: Path, name: str, rule: str
) -> None:
    files = malicious_files(tmp_path, canary)
    assert rule in {f.rule.id for f in findings(files[name])}


def test_torchscript_code_that_reads_files_is_flagged(tmp_path: Path) -> None:
    code = b"def forward(self, x):\n    y = torch.from_file('/etc/passwd', True, 100)\n    return x\n"
    blob = build_zip(
        [
            Entry(name="m/data.pkl", data=pickle.dumps({})),
            Entry(name="m/code/__torch__/m.py", data=code),
            Entry(name="m/constants.pkl", data=pickle.dumps(())),
            Entry(name="m/version", data=b"3\n"),
        ]
    )
    (tmp_path / "m.pt").write_bytes(blob)
    assert "GAR-PT-001" in {f.rule.id for f in findings(tmp_path / "m.pt")}


def test_archives_of_checkpoints_are_scanned_through_the_engine(tmp_path: Path, canary: Path) -> None:
    (tmp_path / "in").mkdir()
    files = malicious_files(tmp_path / "in", canary)
    inner = build_zip([Entry(name="models/evil.pt", data=files["zip.pt"].read_bytes())], zip64=False)
    (tmp_path / "bundle.zip").write_bytes(build_zip([Entry(name="inner.zip", data=inner)], zip64=False))
    registry = Registry()
    registry.add_rules(ENGINE_RULES, owner="engine")
    registry.add(PyTorchCheckpoint)
    report = scan_path(tmp_path / "bundle.zip", settings=Settings(store=False), registry=registry)
    hits = {f.asset.locator for f in report.findings if f.rule.id == "GAR-PKL-001"}
    assert hits == {"bundle.zip!inner.zip!models/evil.pt"}
