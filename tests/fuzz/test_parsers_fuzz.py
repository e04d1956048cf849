"""A short fuzz run of the pickle, zip and GGUF parsers (the long one is benchmarks/fuzz/run.py).

Same strategies and the same judge as the long run: every input goes through the parser's entry
points and a whole ``scan_path``; only GarrisonError may come out, no input may run past the
per-input time limit or grow resident memory past the limit.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz.harness import Harness
from tests.fuzz.strategies import TARGETS, inputs_for

_SMOKE = settings(max_examples=300, database=None, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def harnesses(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Harness]:
    root: Path = tmp_path_factory.mktemp("fuzz")
    return {target: Harness(target, root / target) for target in TARGETS}


def _check(harness: Harness, data: bytes) -> None:
    failure = harness.run(data)
    assert failure is None, failure.describe()


@_SMOKE
@given(data=inputs_for("pickle"))
def test_pickle_parser_survives_hostile_streams(harnesses: dict[str, Harness], data: bytes) -> None:
    _check(harnesses["pickle"], data)


@settings(_SMOKE, max_examples=200)
@given(data=inputs_for("zip"))
def test_zip_readers_survive_hostile_archives(harnesses: dict[str, Harness], data: bytes) -> None:
    _check(harnesses["zip"], data)


@settings(_SMOKE, max_examples=400)
@given(data=inputs_for("gguf"))
def test_gguf_parser_survives_hostile_headers(harnesses: dict[str, Harness], data: bytes) -> None:
    _check(harnesses["gguf"], data)


def test_the_judge_catches_crashes_hangs_and_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    import tests.fuzz.harness as harness_module

    harness = Harness("gguf", tmp_path, timeout=0.5, timeout_per_mib=0, memory_limit=32 * 2**20, system=False)

    def crash(buf: bytes) -> None:
        raise IndexError("boom")

    monkeypatch.setattr(harness_module, "parse_gguf", crash)
    failure = harness.run(b"GGUF")
    assert failure is not None
    assert failure.kind == "crash"
    assert failure.signature.startswith("parse_gguf:IndexError@")

    def spin(buf: bytes) -> None:
        end = time.monotonic() + 5
        while time.monotonic() < end:
            pass

    monkeypatch.setattr(harness_module, "parse_gguf", spin)
    failure = harness.run(b"GGUF")
    assert failure is not None
    assert failure.kind == "hang"

    def hog(buf: bytes) -> None:
        block = bytearray(96 * 2**20)
        block[::4096] = b"\x01" * len(block[::4096])

    monkeypatch.setattr(harness_module, "parse_gguf", hog)
    failure = harness.run(b"GGUF")
    assert failure is not None
    assert failure.kind == "memory"
