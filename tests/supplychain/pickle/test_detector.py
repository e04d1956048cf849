"""The pickle-scanner detector on real files: memory-mapped, format-aware, registry-clean."""

from __future__ import annotations

from pathlib import Path

from garrison.core.assets import Asset, AssetKind
from garrison.core.registry import FileTarget, Registry
from garrison.formats import HEAD_BYTES, identify
from garrison.supplychain.pickle import DETECTORS, PickleScanner
from tests.supplychain.malicious import Sample


def _target(tmp_path: Path, sample: Sample) -> FileTarget:
    path = tmp_path / f"{sample.name}.bin"
    path.write_bytes(sample.data)
    found = identify(path, sample.data[:HEAD_BYTES], len(sample.data))
    asset = Asset(kind=AssetKind.FILE, locator=path.name, size=len(sample.data), format=found.format)
    return FileTarget(path=path, asset=asset, head=sample.data[:HEAD_BYTES], details=found.details)


def test_detector_registers_cleanly() -> None:
    registry = Registry()
    for detector in DETECTORS:
        registry.add(detector)
    assert {r.id for r in registry.rules()} >= {"GAR-PKL-001", "GAR-PKL-101", "GAR-PKL-201"}


def test_detector_flags_malicious_files(tmp_path: Path, malicious: list[Sample], canary: Path) -> None:
    scanner = PickleScanner()
    for sample in malicious:
        target = _target(tmp_path, sample)
        if not scanner.applies_to(target):
            continue
        found = {f.rule.id for f in scanner.scan(target)}
        assert sample.expected_rules <= found, sample.name
    assert not canary.exists()


def test_detector_is_silent_on_benign_files(tmp_path: Path, benign: list[Sample]) -> None:
    scanner = PickleScanner()
    scanned = 0
    for sample in benign:
        target = _target(tmp_path, sample)
        if scanner.applies_to(target):
            scanned += 1
            assert [f.message for f in scanner.scan(target)] == [], sample.name
    assert scanned >= 20


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pkl"
    path.write_bytes(b"")
    asset = Asset(kind=AssetKind.FILE, locator="empty.pkl", size=0, format="pickle")
    findings = list(PickleScanner().scan(FileTarget(path=path, asset=asset, head=b"")))
    assert [f.rule.id for f in findings] == ["GAR-PKL-101"]
