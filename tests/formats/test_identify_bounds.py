"""Identification never crashes on hostile bytes and never reads more than its budget."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from garrison.core.errors import GarrisonError
from garrison.formats import FORMATS, HEAD_BYTES, READ_BUDGET, Identification, identify
from garrison.formats import source as source_module
from tests.fixtures_gen import FIXTURES, harmless_pickle, torch_zip

VALID = {f.name: f.make() for f in FIXTURES}


class CountingFile:
    """A file wrapper that counts the bytes read through it."""

    def __init__(self, handle: IO[bytes], counter: list[int]) -> None:
        self._handle = handle
        self._counter = counter

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._counter[0] += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._handle.seek(offset, whence)

    def close(self) -> None:
        self._handle.close()


@contextmanager
def counting_reads() -> Iterator[list[int]]:
    counter = [0]

    def opener(path: Path) -> CountingFile:
        return CountingFile(path.open("rb"), counter)

    with mock.patch.object(source_module, "_open", opener):
        yield counter


def identify_bytes(data: bytes, directory: Path) -> Identification | None:
    path = directory / "sample"
    path.write_bytes(data)
    refusal = ""
    with counting_reads() as counter:
        try:
            found = identify(path, data[:HEAD_BYTES], len(data))
        except GarrisonError as exc:
            refusal = exc.message
    if refusal:
        assert "sniffer" not in refusal  # a sniffer bug, not a refusal
        return None
    assert counter[0] <= READ_BUDGET
    assert found.format in FORMATS
    return found


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        identify_bytes(data, Path(tmp))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(VALID)), st.data())
def test_truncations_of_valid_fixtures(name: str, data: st.DataObject) -> None:
    whole = VALID[name]
    cut = data.draw(st.integers(min_value=0, max_value=max(len(whole) - 1, 0)))
    with tempfile.TemporaryDirectory() as tmp:
        identify_bytes(whole[:cut], Path(tmp))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(VALID)), st.data())
def test_corruptions_of_valid_fixtures(name: str, data: st.DataObject) -> None:
    whole = bytearray(VALID[name])
    if not whole:
        return
    for _ in range(data.draw(st.integers(min_value=1, max_value=8))):
        at = data.draw(st.integers(min_value=0, max_value=len(whole) - 1))
        whole[at] = data.draw(st.integers(min_value=0, max_value=255))
    with tempfile.TemporaryDirectory() as tmp:
        identify_bytes(bytes(whole), Path(tmp))


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (harmless_pickle(4), "pickle"),
        (torch_zip()[:300], "pytorch-zip"),
        (b"a,b,c\n1,2,3\n" * 7000, "csv"),
        (b"\x00" * 64, "unknown"),
    ],
)
def test_huge_sparse_files_are_read_within_budget(head: bytes, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "huge"
    with path.open("wb") as handle:
        handle.write(head)
        handle.truncate(8 * 2**30)
    with path.open("rb") as handle:
        first = handle.read(HEAD_BYTES)
    with counting_reads() as counter:
        found = identify(path, first, path.stat().st_size)
    assert found.format == expected
    assert counter[0] <= READ_BUDGET


def test_bad_string_escapes_in_protocol_0_do_not_warn(tmp_path: Path) -> None:
    # A protocol-0 STRING whose escape is invalid: decoding it raises a DeprecationWarning,
    # which (with warnings as errors) used to surface as a sniffer failure.
    found = identify_bytes(b"S'\\\xa4'\np0\n.", tmp_path)
    assert found is not None


def test_safetensors_whose_header_length_starts_like_a_pickle(tmp_path: Path) -> None:
    import json
    import struct

    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    header += b" " * (0x280 - len(header))  # length 0x280: first byte 0x80, second 0x02 (like PROTO 2)
    data = struct.pack("<Q", len(header)) + header + b"\x00" * 4
    found = identify_bytes(data, tmp_path)
    assert found is not None
    assert found.format == "safetensors"
