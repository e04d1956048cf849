"""Every raw malicious pickle of the shared generator, wrapped in containers, is still flagged.

Wrappers: a PyTorch zip (``data.pkl``, CRC broken so zipfile-based tools choke), the same with the
member upper-cased and deflated, compressed joblib, and a zip of checkpoints scanned through the
engine. Only samples in the raw ``pickle`` format are wrapped; the rules the sample expects must
come out of the container unchanged.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import pytest

from garrison.core.assets import Asset, AssetKind
from garrison.core.findings import Finding
from garrison.core.registry import FileTarget
from garrison.core.severity import Severity
from garrison.supplychain.containers import PickleContainers, PyTorchCheckpoint
from tests.supplychain.containers.zipcraft import Entry, build_zip

malicious = pytest.importorskip("tests.supplychain.malicious")


def _wrappers(data: bytes) -> dict[str, tuple[str, bytes]]:
    version = Entry(name="archive/version", data=b"3\n")
    return {
        "torch-zip-bad-crc": (
            "pytorch-zip",
            build_zip([Entry(name="archive/data.pkl", data=data, crc=0), version]),
        ),
        "torch-zip-case-deflate": (
            "pytorch-zip",
            build_zip([Entry(name="ARCHIVE/DATA.PKL", data=data, method=8), version]),
        ),
        "joblib-zlib": ("joblib", zlib.compress(data)),
        "joblib-gzip": ("joblib", gzip.compress(data)),
    }


def _scan(tmp: Path, name: str, fmt: str, blob: bytes) -> list[Finding]:
    path = tmp / name
    path.write_bytes(blob)
    asset = Asset(kind=AssetKind.FILE, locator=name, size=len(blob), format=fmt)
    target = FileTarget(path=path, asset=asset, head=blob[:65536])
    out: list[Finding] = []
    for detector in (PyTorchCheckpoint(), PickleContainers()):
        if detector.applies_to(target):
            out.extend(detector.scan(target))
    return out


def test_wrapped_malicious_samples_keep_their_rules(tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    samples = [s for s in malicious.malicious_samples(canary) if s.format == "pickle"]
    assert len(samples) >= 50
    missed: dict[str, list[str]] = {}
    for sample in samples:
        for wrapper, (fmt, blob) in _wrappers(sample.data).items():
            found = _scan(tmp_path, f"{sample.name}.{wrapper}", fmt, blob)
            rules = {f.rule.id for f in found}
            worst = max((f.severity for f in found), default=Severity.INFO)
            if not sample.expected_rules <= rules or worst < Severity.HIGH:
                missed.setdefault(sample.name, []).append(wrapper)
    assert missed == {}
    assert not canary.exists()


def test_wrapped_benign_samples_stay_clean(tmp_path: Path) -> None:
    samples = [s for s in malicious.benign_samples(tmp_path) if s.format == "pickle"]
    flagged: dict[str, list[str]] = {}
    for sample in samples:
        for wrapper, (fmt, blob) in _wrappers(sample.data).items():
            found = _scan(tmp_path, f"{sample.name}.{wrapper}", fmt, blob)
            pickle_level = [f.message for f in found if f.rule.family == "PKL"]
            if pickle_level:
                flagged[f"{sample.name}/{wrapper}"] = pickle_level
    assert flagged == {}
