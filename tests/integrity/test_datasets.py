"""Dataset chunk digests: line chunking, Parquet row groups, comparison, serialization."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from garrison.core.errors import InputError, UsageError
from garrison.integrity.datasets import (
    ChunkDiff,
    ChunkIndex,
    chunk_digests,
    compare_chunks,
    render_chunk_diff,
    verify_chunks,
)

ROWS = 150_000  # about 6 MB of CSV: ~90 chunks at the smallest automatic average (64 KiB)


def _csv_lines(rows: int, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    out = [b"id,name,score,day\n"]
    for i in range(rows):
        out.append(f"{i},user{rng.randrange(10**6)},{rng.random():.5f},2024-03-{i % 28 + 1:02d}\n".encode())
    return out


@pytest.fixture(scope="module")
def csv_lines() -> list[bytes]:
    return _csv_lines(ROWS)


@pytest.fixture(scope="module")
def csv_index(csv_lines: list[bytes], tmp_path_factory: pytest.TempPathFactory) -> ChunkIndex:
    path = tmp_path_factory.mktemp("csv") / "data.csv"
    path.write_bytes(b"".join(csv_lines))
    return chunk_digests(path)


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(lines))
    return path


def _check_tiling(index: ChunkIndex, data: bytes) -> None:
    """Units tile the file; rows match line numbers; boundaries sit after newlines or at max cuts."""
    assert index.size == len(data)
    assert index.rows == data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    at = 0
    for i, u in enumerate(index.units):
        assert u.index == i
        assert u.byte_start == at < u.byte_end
        at = u.byte_end
        assert u.first_row == data.count(b"\n", 0, u.byte_start)
        assert u.end_row == data.count(b"\n", 0, u.byte_end - 1) + 1
        assert index.max_chunk is not None
        assert index.min_chunk is not None
        length = u.byte_end - u.byte_start
        assert length <= index.max_chunk
        if u.byte_end < len(data):
            assert data[u.byte_end - 1] == 0x0A or length == index.max_chunk
            # a chunk shorter than the minimum only ends at a max cut's last newline
            assert length >= index.min_chunk or b"\n" not in data[u.byte_end : u.byte_start + index.max_chunk]
    assert at == len(data)


def _only_region(diff: ChunkDiff) -> tuple[int, int, int, int]:
    assert len(diff.regions) == 1, render_chunk_diff(diff)
    r = diff.regions[0]
    return (*r.old_rows, *r.new_rows)


# ------------------------------------------------------------------------------------------- lines


def test_csv_index_shape(csv_index: ChunkIndex, csv_lines: list[bytes]) -> None:
    data = b"".join(csv_lines)
    assert csv_index.kind == "lines"
    assert csv_index.avg_chunk == 64 << 10
    assert 40 <= len(csv_index.units) <= 200
    _check_tiling(csv_index, data)


def test_edit_one_row_reports_its_rows(csv_index: ChunkIndex, csv_lines: list[bytes], tmp_path: Path) -> None:
    lines = list(csv_lines)
    row = 75_001  # line number; the header is row 0
    lines[row] = b"75000,mallory,9.99999,2024-03-01\n"
    diff = verify_chunks(csv_index, _write(tmp_path / "e.csv", lines))
    old_first, old_end, new_first, new_end = _only_region(diff)
    r = diff.regions[0]
    assert r.change == "changed"
    assert old_first <= row < old_end
    assert new_first <= row < new_end
    assert r.old_units[1] - r.old_units[0] <= 2
    assert diff.same_units >= len(csv_index.units) - 2
    text = render_chunk_diff(diff)
    assert f"rows {old_first:,}–{old_end - 1:,} changed" in text


def test_inserted_rows_resynchronise(csv_index: ChunkIndex, csv_lines: list[bytes], tmp_path: Path) -> None:
    lines = list(csv_lines)
    lines[40_000:40_000] = [b"999999,inserted,0.0,2024-01-01\n"] * 300
    diff = verify_chunks(csv_index, _write(tmp_path / "i.csv", lines))
    old_first, old_end, new_first, new_end = _only_region(diff)
    assert old_first <= 40_000 <= old_end
    assert new_first <= 40_000
    assert new_end >= 40_300
    assert diff.same_units >= len(csv_index.units) - 3
    assert diff.new_rows == diff.old_rows + 300


def test_deleted_rows(csv_index: ChunkIndex, csv_lines: list[bytes], tmp_path: Path) -> None:
    lines = list(csv_lines)
    del lines[100_000:100_500]
    diff = verify_chunks(csv_index, _write(tmp_path / "d.csv", lines))
    old_first, old_end, new_first, new_end = _only_region(diff)
    assert old_first <= 100_000
    assert old_end >= 100_500
    assert new_first <= 100_000 <= new_end
    assert diff.same_units >= len(csv_index.units) - 3


def test_appended_rows_touch_only_the_end(
    csv_index: ChunkIndex, csv_lines: list[bytes], tmp_path: Path
) -> None:
    lines = [*csv_lines, *_csv_lines(2_000, seed=8)[1:]]
    diff = verify_chunks(csv_index, _write(tmp_path / "a.csv", lines))
    old_first, _, _, new_end = _only_region(diff)
    assert new_end == len(lines)
    assert old_first >= len(csv_lines) - 3 * (csv_index.max_chunk or 0) // 30
    assert diff.regions[0].old_units[0] >= len(csv_index.units) - 1


def test_truncated_file(csv_index: ChunkIndex, csv_lines: list[bytes], tmp_path: Path) -> None:
    data = b"".join(csv_lines)
    path = tmp_path / "t.csv"
    path.write_bytes(data[: len(data) * 2 // 3])
    diff = verify_chunks(csv_index, path)
    assert diff.regions[-1].old_rows[1] == csv_index.rows
    assert diff.regions[0].old_units[0] >= len(csv_index.units) // 2
    assert diff.new_size == len(data) * 2 // 3


def test_identical_file(csv_index: ChunkIndex, csv_lines: list[bytes], tmp_path: Path) -> None:
    diff = verify_chunks(csv_index, _write(tmp_path / "same.txt", csv_lines))
    assert diff.identical
    assert diff.same_units == len(csv_index.units)
    assert "no change" in render_chunk_diff(diff)


def test_jsonl_edit(tmp_path: Path) -> None:
    rng = random.Random(3)
    lines = [
        json.dumps({"id": i, "text": f"sample {rng.randrange(10**9)}", "label": rng.choice("ab")}).encode()
        + b"\n"
        for i in range(20_000)
    ]
    old = chunk_digests(_write(tmp_path / "a.jsonl", lines), avg_chunk=8192)
    _check_tiling(old, b"".join(lines))
    lines[12_345] = b'{"id": 12345, "text": "poisoned", "label": "b"}\n'
    diff = verify_chunks(old, _write(tmp_path / "b.jsonl", lines))
    old_first, old_end, _, _ = _only_region(diff)
    assert old_first <= 12_345 < old_end
    assert old_end - old_first < 1_000


def test_crlf_lines(tmp_path: Path) -> None:
    lines = [f"{i},value {i * 7}\r\n".encode() for i in range(5_000)]
    data = b"".join(lines)
    index = chunk_digests(_write(tmp_path / "crlf.csv", lines), avg_chunk=1024)
    assert index.rows == 5_000
    _check_tiling(index, data)
    lines[2_500] = b"2500,changed\r\n"
    diff = verify_chunks(index, _write(tmp_path / "crlf2.csv", lines))
    old_first, old_end, _, _ = _only_region(diff)
    assert old_first <= 2_500 < old_end


def test_no_trailing_newline(tmp_path: Path) -> None:
    data = b"".join(f"row {i}\n".encode() for i in range(3_000)) + b"last row without newline"
    path = tmp_path / "nonl.txt"
    path.write_bytes(data)
    index = chunk_digests(path, avg_chunk=512)
    assert index.rows == 3_001
    assert index.units[-1].end_row == 3_001
    _check_tiling(index, data)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    empty = chunk_digests(path)
    assert (empty.kind, empty.size, empty.rows, empty.units) == ("lines", 0, 0, ())
    path.write_bytes(b"a\nb\n")
    diff = verify_chunks(empty, path)
    assert [r.change for r in diff.regions] == ["inserted"]
    assert diff.regions[0].new_rows == (0, 2)
    assert ChunkIndex.from_dict(json.loads(json.dumps(empty.to_dict()))) == empty


def test_single_giant_line(tmp_path: Path) -> None:
    data = bytes(random.Random(1).randrange(32, 127) for _ in range(20_000))
    path = tmp_path / "giant.txt"
    path.write_bytes(data)
    index = chunk_digests(path, avg_chunk=1024, _block=3_000)
    assert index.rows == 1
    assert [u.byte_end - u.byte_start for u in index.units[:-1]] == [4096] * (len(index.units) - 1)
    assert all((u.first_row, u.row_count) == (0, 1) for u in index.units)
    _check_tiling(index, data)


def test_blake3(tmp_path: Path, csv_lines: list[bytes]) -> None:
    path = _write(tmp_path / "b3.csv", csv_lines[:5_000])
    b3, sha = chunk_digests(path, algorithm="blake3", avg_chunk=4096), chunk_digests(path, avg_chunk=4096)
    assert b3.algorithm == "blake3"
    assert [(u.byte_start, u.byte_end) for u in b3.units] == [(u.byte_start, u.byte_end) for u in sha.units]
    assert all(len(u.digest) == 64 for u in b3.units)
    assert b3.units[0].digest != sha.units[0].digest
    with pytest.raises(UsageError):
        compare_chunks(b3, sha)


def test_different_settings_refused(tmp_path: Path, csv_lines: list[bytes]) -> None:
    path = _write(tmp_path / "s.csv", csv_lines[:2_000])
    with pytest.raises(UsageError, match="made differently"):
        compare_chunks(chunk_digests(path, avg_chunk=1024), chunk_digests(path, avg_chunk=2048))


@pytest.mark.parametrize("avg", [0, 63, 1 << 30])
def test_bad_average_chunk(tmp_path: Path, avg: int) -> None:
    path = _write(tmp_path / "x.csv", [b"a\n"])
    with pytest.raises(UsageError):
        chunk_digests(path, avg_chunk=avg)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        chunk_digests(tmp_path / "nope.csv")
    with pytest.raises(UsageError):
        chunk_digests(tmp_path)


lines_data = (
    st.lists(
        st.one_of(
            st.binary(min_size=0, max_size=60).map(lambda b: b.replace(b"\n", b"")),
            st.sampled_from([b"", b"\r", b"x" * 300, b"same tail 0123456789abcdef"]),
        ),
        max_size=120,
    )
    .map(b"\n".join)
    .filter(lambda data: not data.startswith(b"PAR1"))
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=lines_data, avg=st.sampled_from([64, 128, 256]), block=st.integers(1, 700))
def test_chunking_tiles_and_ignores_block_size(tmp_path: Path, data: bytes, avg: int, block: int) -> None:
    path = tmp_path / "h.txt"
    path.write_bytes(data)
    index = chunk_digests(path, avg_chunk=avg, _block=block)
    _check_tiling(index, data)
    assert chunk_digests(path, avg_chunk=avg) == index
    assert chunk_digests(path, avg_chunk=avg, _block=block + 1) == index


# ------------------------------------------------------------------------------------------- Parquet


def _parquet(path: Path, values: list[float], *, extra_column: bool = False) -> Path:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    n = len(values)
    columns = {"id": list(range(n)), "value": values, "name": [f"r{i}" for i in range(n)]}
    if extra_column:
        columns["flag"] = [i % 2 == 0 for i in range(n)]
    pq.write_table(pa.table(columns), path, row_group_size=10_000)
    return path


def test_parquet_row_group_change(tmp_path: Path) -> None:
    values = [i * 0.5 for i in range(50_000)]
    old = chunk_digests(_parquet(tmp_path / "a.parquet", values))
    assert old.kind == "parquet"
    assert old.rows == 50_000
    assert [(u.first_row, u.row_count) for u in old.units] == [(i * 10_000, 10_000) for i in range(5)]
    values[31_234] = -1.0
    diff = verify_chunks(old, _parquet(tmp_path / "b.parquet", values))
    assert _only_region(diff) == (30_000, 40_000, 30_000, 40_000)
    assert diff.regions[0].old_units == (3, 4)
    assert "schema" not in diff.parts
    assert "row group 3 (rows 30,000–39,999) changed" in render_chunk_diff(diff)


def test_parquet_schema_change(tmp_path: Path) -> None:
    values = [float(i) for i in range(20_000)]
    old = chunk_digests(_parquet(tmp_path / "a.parquet", values))
    diff = verify_chunks(old, _parquet(tmp_path / "b.parquet", values, extra_column=True))
    assert "schema" in diff.parts
    assert "footer" in diff.parts
    assert "schema changed" in render_chunk_diff(diff)


def test_parquet_dropped_row_group(tmp_path: Path) -> None:
    values = [float(i) for i in range(30_000)]
    old = chunk_digests(_parquet(tmp_path / "a.parquet", values))
    diff = verify_chunks(old, _parquet(tmp_path / "b.parquet", values[:20_000]))
    assert [r.change for r in diff.regions] == ["deleted"]
    assert diff.regions[0].old_rows == (20_000, 30_000)


def test_parquet_empty_table(tmp_path: Path) -> None:
    index = chunk_digests(_parquet(tmp_path / "e.parquet", []))
    assert (index.kind, index.rows) == ("parquet", 0)
    assert all(u.row_count == 0 for u in index.units)
    assert compare_chunks(index, index).identical
    diff = verify_chunks(index, _parquet(tmp_path / "f.parquet", [1.0]))
    assert "no rows" in render_chunk_diff(diff)


def test_parquet_page_index_is_covered(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({"k": [f"c{i % 7}" for i in range(30_000)], "n": list(range(30_000))})
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=7_000, write_page_index=True)
    old = chunk_digests(tmp_path / "a.parquet", algorithm="blake3")
    parts = {p.name: p.size for p in old.parts}
    covered = sum(u.byte_end - u.byte_start for u in old.units) + parts["footer"] + parts["other"]
    assert parts["other"] > 4
    assert covered == old.size
    keys = table.column("k").to_pylist()
    keys[15_000] = "changed"
    changed = table.set_column(0, "k", pa.array(keys))
    pq.write_table(changed, tmp_path / "b.parquet", row_group_size=7_000, write_page_index=True)
    diff = verify_chunks(old, tmp_path / "b.parquet")
    assert _only_region(diff) == (14_000, 21_000, 14_000, 21_000)
    assert "other" in diff.parts


@pytest.fixture(scope="module")
def good_parquet(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("pq") / "good.parquet"
    return _parquet(path, [float(i) for i in range(1_000)]).read_bytes()


def _flip_footer(data: bytes) -> bytes:
    flipped = bytearray(data)
    flipped[-30:-10] = b"\xff" * 20
    return bytes(flipped)


CORRUPTIONS: dict[str, Callable[[bytes], bytes]] = {
    "footer-longer-than-file": lambda d: d[:100] + d[-8:],
    "huge-footer-length": lambda d: d[:-8] + (2**31).to_bytes(4, "little") + b"PAR1",
    "footer-cut-short": lambda d: d[:20] + d[-8:],
    "garbled-footer": _flip_footer,
    "no-footer": lambda d: d[: len(d) // 2],
    "zeros": lambda d: d[:4] + b"\x00" * 8 + b"PAR1",
    "encrypted-footer": lambda d: d[:-4] + b"PARE",
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_malformed_parquet(tmp_path: Path, good_parquet: bytes, name: str) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(CORRUPTIONS[name](good_parquet))
    with pytest.raises(InputError, match=r"bad\.parquet"):
        chunk_digests(bad)


# ------------------------------------------------------------------------------------------- dicts


def test_round_trip(tmp_path: Path, csv_lines: list[bytes]) -> None:
    lines_index = chunk_digests(_write(tmp_path / "r.csv", csv_lines[:3_000]), avg_chunk=2048)
    pq_index = chunk_digests(_parquet(tmp_path / "r.parquet", [1.0] * 25_000))
    for index in (lines_index, pq_index):
        text = json.dumps(index.to_dict())
        assert ChunkIndex.from_dict(json.loads(text)) == index
    assert compare_chunks(lines_index, ChunkIndex.from_dict(lines_index.to_dict())).identical
    diff = compare_chunks(pq_index, pq_index)
    assert json.loads(json.dumps(diff.to_dict()))["same_units"] == 3


def _mutations(good: dict[str, object]) -> list[dict[str, object]]:
    units = good["units"]
    assert isinstance(units, list)
    out: list[dict[str, object]] = [
        {**good, "format": "garrison-chunks/9"},
        {**good, "kind": "zip"},
        {**good, "alg": "md5"},
        {**good, "size": -1},
        {**good, "size": "12"},
        {**good, "rows": True},
        {**good, "units": [*units[:1], [0, 1, 0, 1, "ab"]]},
        {**good, "units": units[1:]},
        {**good, "units": [[*units[0][:4], "Z" * 64], *units[1:]]},
        {**good, "units": [units[0][:3], *units[1:]]},
        {**good, "units": "nope"},
        {**good, "params": {"avg": 2048, "min": 1, "max": 8192, "win": 64}},
        {**good, "params": {"avg": 2048, "min": 512, "max": 8192, "win": 8}},
        {k: v for k, v in good.items() if k != "params"},
        {**good, "units": [[*units[0][:1], 10**12, *units[0][2:]], *units[1:]]},
    ]
    return out


def test_malformed_dict(tmp_path: Path, csv_lines: list[bytes]) -> None:
    good = chunk_digests(_write(tmp_path / "m.csv", csv_lines[:3_000]), avg_chunk=2048).to_dict()
    for bad in _mutations(good):
        with pytest.raises(InputError):
            ChunkIndex.from_dict(bad)
    pq_good = chunk_digests(_parquet(tmp_path / "m.parquet", [1.0] * 100)).to_dict()
    bad_parts: list[object] = [{}, {"schema": [1, "x"]}, 3, {**pq_good["parts"], "other": [1, "x"]}]
    for bad_pq in ({**pq_good, "parts": parts} for parts in bad_parts):
        with pytest.raises(InputError):
            ChunkIndex.from_dict(bad_pq)
