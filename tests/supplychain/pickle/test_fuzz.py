"""Hypothesis fuzzing of the pickle engine: only GarrisonError, bounded work, consistent offsets."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from garrison.core.errors import GarrisonError
from garrison.supplychain.pickle import PickleLimits, analyze_stream
from tests.supplychain.malicious import malicious_samples
from tests.supplychain.pickle.helpers import scan_bytes

_SEEDS = [s.data for s in malicious_samples(Path("/nonexistent/canary"))]
_LIMITS = PickleLimits(max_opcodes=100_000, max_memo=10_000, max_stack=10_000)


def _check(data: bytes) -> None:
    try:
        analyses = analyze_stream(data, limits=_LIMITS)
        for found in analyses:
            assert 0 <= found.start <= found.end <= len(data)
        scan_bytes(data)
    except GarrisonError:
        pass


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes(data: bytes) -> None:
    _check(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(_SEEDS),
    edits=st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 255)), max_size=8),
    cut=st.integers(0, 4096),
)
def test_mutated_samples(seed: bytes, edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(seed)
    for where, value in edits:
        if data:
            data[where % len(data)] = value
    _check(bytes(data[: max(1, cut)]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"(", b"0", b"1", b"N", b"t", b"\x94", b"h\x00", b"q\x00", b"2", b"."])))
def test_stack_and_memo_opcode_soup(parts: list[bytes]) -> None:
    _check(b"\x80\x04" + b"".join(parts))
