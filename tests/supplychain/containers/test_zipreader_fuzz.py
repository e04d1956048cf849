"""Hypothesis fuzzing of the zip reader and the torch view: hostile bytes raise only GarrisonError."""

from __future__ import annotations

import contextlib
import io
import pickle
import zipfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from garrison.core.errors import GarrisonError
from garrison.formats.zipreader import BytesSource, read_directory
from garrison.supplychain.containers.npjob import npz_members
from garrison.supplychain.containers.torchzip import torch_zip_view
from tests.supplychain.containers.zipcraft import Entry, build_zip


def _seeds() -> list[bytes]:
    data = pickle.dumps({"a": [1, 2, 3]}, protocol=2)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", data)
        archive.writestr("archive/version", "3\n")
        archive.writestr("archive/data/0", b"\x00" * 64)
    return [
        out.getvalue(),
        build_zip(
            [Entry(name="archive/data.pkl", data=data, method=8), Entry(name="archive/version", data=b"3")]
        ),
        build_zip([Entry(name="a/data.pkl", data=data)], prefix=b"junk", relative_offsets=True, zip64=False),
    ]


SEEDS = _seeds()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    blob = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.integers(0, 2))
        pos = draw(st.integers(0, len(blob) - 1))
        if kind == 0:
            blob[pos] = draw(st.integers(0, 255))
        elif kind == 1:
            blob[pos : pos + 4] = draw(st.binary(min_size=4, max_size=4))
        else:
            del blob[pos : pos + draw(st.integers(1, 16))]
        if not blob:
            break
    return bytes(blob)


def _survives(blob: bytes) -> None:
    src = BytesSource(blob)
    for call in (read_directory, torch_zip_view, lambda s: list(npz_members(s))):
        with contextlib.suppress(GarrisonError):
            call(src)


@given(mutated())
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_zips_raise_only_garrison_errors(blob: bytes) -> None:
    _survives(blob)


@given(st.binary(max_size=2048))
@settings(max_examples=200, deadline=None)
def test_random_bytes_raise_only_garrison_errors(blob: bytes) -> None:
    _survives(b"PK\x03\x04" + blob)
