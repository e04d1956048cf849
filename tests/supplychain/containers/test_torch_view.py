"""The scanner reads what torch.load reads, on real checkpoints and on tampered ones.

Each tampering case is loaded with torch (benign payloads only, weights_only=True) to pin down what
PyTorch 2.13 actually does, then read with :func:`torch_zip_view`, which must hand the pickle
engine exactly the bytes torch unpickled.
"""

from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path

import pytest

from garrison.formats.zipreader import BytesSource, FileSource
from garrison.supplychain.containers.torchzip import torch_zip_view
from tests.supplychain.containers.zipcraft import Entry, build_zip, write_sparse_checkpoint

torch = pytest.importorskip("torch")

GOOD = pickle.dumps({"a": 1}, protocol=2)
ALT = pickle.dumps({"b": 2}, protocol=2)


def _base(**kw: object) -> list[Entry]:
    return [Entry(name="archive/data.pkl", data=GOOD, **kw), Entry(name="archive/version", data=b"3\n")]  # type: ignore[arg-type]


def _torch_load(blob: bytes) -> object:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(io.BytesIO(blob), weights_only=True)


def _rules(blob: bytes) -> set[str]:
    return {a.rule.id for a in torch_zip_view(BytesSource(blob)).anomalies}


def _pickles(blob: bytes) -> list[bytes]:
    return [r.data for r in torch_zip_view(BytesSource(blob)).records if not r.code]


CASES = [
    ("crc-wrong-stored", build_zip(_base(crc=1234)), {"GAR-PT-101"}),
    ("crc-wrong-deflate", build_zip(_base(crc=1234, method=8)), {"GAR-PT-101"}),
    ("local-name-differs", build_zip(_base(local_name="archive/readme.txt")), {"GAR-PT-102"}),
    (
        "upper-case-names",
        build_zip([Entry(name="ARCHIVE/DATA.PKL", data=GOOD), Entry(name="ARCHIVE/version", data=b"3\n")]),
        set(),
    ),
    (
        "any-prefix",
        build_zip([Entry(name="x y/data.pkl", data=GOOD), Entry(name="x y/version", data=b"3\n")]),
        set(),
    ),
    ("local-encryption-bit-only", build_zip(_base(local_flags=0x801)), {"GAR-PT-106"}),
    ("data-descriptor-bit", build_zip(_base(flags=0x808)), set()),
    ("pk-junk-before", build_zip(_base(), prefix=b"PK\x03\x04junkjunk"), set()),
]


@pytest.mark.parametrize(("label", "blob", "rules"), CASES, ids=[c[0] for c in CASES])
def test_tampered_checkpoints_torch_loads_are_read_as_torch_reads_them(
    label: str, blob: bytes, rules: set[str]
) -> None:
    assert _torch_load(blob) == {"a": 1}
    assert GOOD in _pickles(blob)
    assert rules <= _rules(blob)


REFUSED = [
    ("encrypted-bit", build_zip(_base(flags=0x801)), "GAR-PT-105"),
    ("strong-encryption-bit", build_zip(_base(flags=0x840)), "GAR-PT-105"),
    ("patch-bit", build_zip(_base(flags=0x820)), "GAR-PT-105"),
    ("bzip2-method", build_zip(_base(method=12)), "GAR-PT-105"),
    (
        "member-outside-prefix",
        build_zip([*_base(), Entry(name="other", data=b"x")]),
        "GAR-PT-107",
    ),
]


@pytest.mark.parametrize(("label", "blob", "rule"), REFUSED, ids=[c[0] for c in REFUSED])
def test_what_torch_refuses_is_reported(label: str, blob: bytes, rule: str) -> None:
    with pytest.raises(RuntimeError):
        _torch_load(blob)
    assert rule in _rules(blob)


def test_duplicates_every_copy_is_scanned_whichever_torch_picks() -> None:
    orders = [
        [
            Entry(name="archive/data.pkl", data=GOOD),
            Entry(name="archive/version", data=b"3\n"),
            Entry(name="archive/data.pkl", data=ALT),
        ],
        [
            Entry(name="archive/DATA.pkl", data=ALT),
            Entry(name="archive/version", data=b"3\n"),
            Entry(name="archive/data.pkl", data=GOOD),
        ],
    ]
    loaded = []
    for entries in orders:
        blob = build_zip(entries)
        loaded.append(_torch_load(blob))
        assert {GOOD, ALT} <= set(_pickles(blob))
        assert "GAR-PT-103" in _rules(blob)
    assert {"a": 1} in loaded or {"b": 2} in loaded


def test_member_renamed_to_bin_is_still_scanned_when_it_is_a_pickle() -> None:
    blob = build_zip([*_base(), Entry(name="archive/whatever.bin", data=ALT, method=8)])
    assert ALT in _pickles(blob)


def test_junk_before_the_zip_is_read_as_the_legacy_path_reads_it() -> None:
    blob = build_zip(_base(), prefix=ALT, relative_offsets=True)
    view = torch_zip_view(BytesSource(blob))
    assert "GAR-PT-104" in {a.rule.id for a in view.anomalies}
    assert view.records[0].data == ALT
    assert view.records[0].max_pickles == 5
    assert GOOD in [r.data for r in view.records]  # what lenient zip readers see


def test_real_checkpoints_have_no_anomalies(tmp_path: Path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
    for name, obj in (("sd.pt", model.state_dict()), ("module.pt", model)):
        torch.save(obj, tmp_path / name)
        view = torch_zip_view(BytesSource((tmp_path / name).read_bytes()))
        assert view.anomalies == []
        assert [r.member for r in view.records] == [f"{name[:-3]}/data.pkl"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(model), tmp_path / "ts.pt")
    view = torch_zip_view(BytesSource((tmp_path / "ts.pt").read_bytes()))
    assert view.torchscript
    assert view.anomalies == []
    members = {r.member.split("/", 1)[1] for r in view.records}
    assert {"data.pkl", "constants.pkl"} <= members
    assert any(r.code for r in view.records)


def test_a_1gb_checkpoint_is_scanned_reading_a_few_kilobytes(tmp_path: Path) -> None:
    path = tmp_path / "big.pt"
    write_sparse_checkpoint(path, GOOD, 2**30)
    assert path.stat().st_size > 2**30
    with path.open("rb") as handle:
        src = FileSource(handle, path.stat().st_size)
        view = torch_zip_view(src)
    assert [r.data for r in view.records] == [GOOD]
    assert view.anomalies == []
    # The end-record search reads the last 64 KiB + 22 bytes (the zip comment may be that long);
    # past that, only the directory, two local headers and data.pkl. Storages are never read.
    assert src.bytes_read < 70_000, src.bytes_read
    print(f"bytes read for a 1 GiB checkpoint: {src.bytes_read}")
