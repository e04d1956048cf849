"""The detectors of this part register cleanly and survive arbitrary bytes (until wired globally)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from garrison.core.errors import GarrisonError
from garrison.core.registry import FileDetector, Registry
from garrison.core.rules import rule_problems
from garrison.detectors import default_registry
from garrison.supplychain import gguf, keras, onnx, safetensors, templates
from tests.supplychain.formats.builders import scan_bytes

DETECTORS = (*keras.DETECTORS, *onnx.DETECTORS, *safetensors.DETECTORS, *gguf.DETECTORS, *templates.DETECTORS)


def test_register_alongside_the_built_ins() -> None:
    registry: Registry = default_registry(plugins=False)
    for detector in DETECTORS:
        if detector.name not in {d.name for d in registry.detectors()}:
            registry.add(detector)
    for detector in DETECTORS:
        assert all(rule_problems(rule) == [] for rule in detector.rules)
        assert detector.summary.strip()
        assert detector.__doc__


@pytest.mark.parametrize("detector", DETECTORS, ids=lambda d: d.name)
@pytest.mark.parametrize(
    "name", ["m.keras", "m.h5", "m.onnx", "m.safetensors", "m.gguf", "tokenizer_config.json"]
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.one_of(
        st.binary(max_size=256), st.sampled_from([b"", b"GGUF", b"PK\x05\x06" + b"\x00" * 18, b"\x08\x07:"])
    )
)
def test_random_bytes_raise_only_garrison_errors(
    tmp_path: Path, detector: type[FileDetector], name: str, data: bytes
) -> None:
    with contextlib.suppress(GarrisonError):
        scan_bytes(detector(), tmp_path, name, data)
