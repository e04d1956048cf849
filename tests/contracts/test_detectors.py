"""Contract tests that walk every registered detector and rule (built-in and plugin)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from garrison.core.assets import Asset, AssetKind
from garrison.core.errors import GarrisonError
from garrison.core.findings import Finding
from garrison.core.registry import FileDetector, FileTarget
from garrison.core.rules import RULE_ID_RE, RULE_NAME_RE, rule_problems
from garrison.detectors import RULE_REDIRECTS, default_registry
from garrison.formats import FORMATS, HEAD_BYTES, identify

REGISTRY = default_registry(plugins=False)
FILE_DETECTORS = [d for d in REGISTRY.detectors(kind="file") if issubclass(d, FileDetector)]


def test_the_registry_is_not_empty() -> None:
    assert FILE_DETECTORS
    assert len(REGISTRY.rules()) >= 5


@pytest.mark.parametrize("rule", REGISTRY.rules(), ids=lambda r: r.id)
def test_every_rule_is_documented_and_referenced(rule: object) -> None:
    from garrison.core.rules import Rule

    assert isinstance(rule, Rule)
    assert RULE_ID_RE.match(rule.id)
    assert RULE_NAME_RE.match(rule.name)
    assert rule_problems(rule) == []
    assert rule.remediation.strip()
    assert rule.references(), "every rule needs at least one reference"
    assert any(
        r.framework in ("CWE", "OWASP-LLM-2025", "OWASP-ML-2023", "MITRE-ATLAS") for r in rule.references()
    )


def test_rule_ids_and_names_are_unique() -> None:
    rules = REGISTRY.rules()
    assert len({r.id for r in rules}) == len(rules)
    assert len({r.name for r in rules}) == len(rules)
    assert not set(RULE_REDIRECTS) & {r.id for r in rules}


@pytest.mark.parametrize("detector", REGISTRY.detectors(), ids=lambda d: d.name)
def test_every_detector_declares_itself(detector: type) -> None:
    assert detector.summary.strip()
    assert detector.rules
    options = detector.Options()
    assert detector.Options.model_validate(options.model_dump()) == options


def _target(tmp_path: Path, data: bytes, name: str) -> FileTarget:
    path = tmp_path / name
    path.write_bytes(data)
    ident = identify(path, data[:HEAD_BYTES], len(data))
    assert ident.format in FORMATS
    asset = Asset(kind=AssetKind.FILE, locator=name, size=len(data), format=ident.format)
    return FileTarget(
        path=path, asset=asset, head=data[:HEAD_BYTES], details=ident.details, malformed=ident.malformed
    )


@pytest.mark.parametrize("detector", FILE_DETECTORS, ids=lambda d: d.name)
@pytest.mark.parametrize("name", ["model.pt", "weights.safetensors", "data.csv", "x"])
@given(
    data=st.one_of(
        st.binary(max_size=512),
        st.sampled_from(
            [
                b"",
                b"\x80",
                b"\x80\x04",
                b"PK\x03\x04",
                b"GGUF",
                b"\x93NUMPY",
                b"\x89HDF\r\n\x1a\n",
                b"PAR1",
                b"\x1f\x8b",
            ]
        ),
    )
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_detectors_survive_hostile_bytes(
    detector: type[FileDetector], name: str, data: bytes, tmp_path: Path
) -> None:
    target = _target(tmp_path, data, name)
    instance = detector()
    try:
        findings = list(instance.scan(target)) if instance.applies_to(target) else []
    except GarrisonError:
        return
    for finding in findings:
        assert isinstance(finding, Finding)
        assert finding.rule.id in {r.id for r in detector.rules}
        assert finding.detector == detector.name
    os.unlink(target.path)
