"""Streaming dataset readers: every kind, the problems they report, and bounded memory."""

from __future__ import annotations

import gzip
import json
import tracemalloc
from pathlib import Path

import pytest

from garrison.core.errors import InputError, UnsupportedFormatError, UsageError
from garrison.data.readers import Batch, ReadProblem, detect_kind, iter_batches

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def read(
    path: Path, **kwargs: object
) -> tuple[tuple[str, ...] | None, list[tuple[int, tuple[str | None, ...]]], list[ReadProblem]]:
    batches = list(iter_batches(path, **kwargs))  # type: ignore[arg-type]
    assert all(isinstance(batch, Batch) for batch in batches)
    rows = [row for batch in batches for row in batch.rows]
    problems = [problem for batch in batches for problem in batch.problems]
    columns = batches[-1].columns if batches else None
    return columns, rows, problems


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_csv_with_header_round_trips(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", b"name,city,age\nalice,paris,31\nbob,london,42\ncarol,rome,27\n")
    assert detect_kind(path) == "csv"
    columns, rows, problems = read(path, batch_rows=2)
    assert columns == ("name", "city", "age")
    assert rows == [(1, ("alice", "paris", "31")), (2, ("bob", "london", "42")), (3, ("carol", "rome", "27"))]
    assert problems == []
    assert len(list(iter_batches(path, batch_rows=2))) == 2


def test_csv_without_header_names_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", b"1,alice,3.5\n2,bob,4.0\n3,carol,1e3\n")
    columns, rows, _ = read(path)
    assert columns == ("col_1", "col_2", "col_3")
    assert rows[0] == (1, ("1", "alice", "3.5"))
    assert rows[2][0] == 3
    forced, _, _ = read(write(tmp_path, "e.csv", b"x,y\nz,w\n"), header=False)
    assert forced == ("col_1", "col_2")


def test_tsv_and_semicolon(tmp_path: Path) -> None:
    path = write(tmp_path, "d.tsv", b"a\tb\n1,5\t2\n3\t4\n")
    assert detect_kind(path) == "tsv"
    columns, rows, problems = read(path)
    assert columns == ("a", "b")
    assert rows == [(1, ("1,5", "2")), (2, ("3", "4"))]
    assert problems == []
    semi = write(tmp_path, "s.csv", b"a;b;c\n1;2;3\n4;5;6\n")
    assert read(semi)[1] == [(1, ("1", "2", "3")), (2, ("4", "5", "6"))]


def test_quoted_commas_and_newlines(tmp_path: Path) -> None:
    data = b'id,text,n\n1,"hello, world",2\n2,"line one\nline two\r\nline three",3\n3,"say ""hi""",4\n'
    columns, rows, problems = read(write(tmp_path, "q.csv", data))
    assert columns == ("id", "text", "n")
    assert rows == [
        (1, ("1", "hello, world", "2")),
        (2, ("2", "line one\nline two\nline three", "3")),
        (3, ("3", 'say "hi"', "4")),
    ]
    assert problems == []


def test_ragged_rows_are_kept_with_problems(tmp_path: Path) -> None:
    data = b"a,b,c\n1,2,3\n4,5\n6,7,8,9\n\n10,11,12\n"
    _, rows, problems = read(write(tmp_path, "r.csv", data), kind="csv")
    assert rows == [
        (1, ("1", "2", "3")),
        (2, ("4", "5", None)),
        (3, ("6", "7", "8")),
        (4, ("10", "11", "12")),
    ]
    assert [(p.row, p.message) for p in problems] == [
        (2, "row 2: 2 fields, expected 3; padded with nulls"),
        (3, "row 3: 4 fields, expected 3; extra fields dropped"),
    ]
    assert problems[0].byte_offset == len(b"a,b,c\n1,2,3\n")


def test_overlong_line_is_skipped_and_reading_goes_on(tmp_path: Path) -> None:
    big = b"x" * (3 * 2**20)
    data = b"a,b\n1,2\n3," + big + b"\n5,6\n"
    columns, rows, problems = read(write(tmp_path, "big.csv", data), max_line_bytes=2**20)
    assert columns == ("a", "b")
    assert rows == [(1, ("1", "2")), (3, ("5", "6"))]
    assert len(problems) == 1
    assert problems[0].row == 2
    assert problems[0].byte_offset == len(b"a,b\n1,2\n")
    assert "longer than the limit" in problems[0].message


def test_overlong_quoted_field_across_lines_is_skipped(tmp_path: Path) -> None:
    field = b"\n".join([b"y" * 1000] * 50)  # about 50 kB of quoted lines
    data = b'a,b\n1,"' + field + b'"\n2,ok\n'
    _, rows, problems = read(write(tmp_path, "f.csv", data), max_line_bytes=10_000)
    assert rows == [(2, ("2", "ok"))]
    assert [p.row for p in problems] == [1]
    assert "record longer than the limit" in problems[0].message


def test_mixed_utf8_and_cp1252(tmp_path: Path) -> None:
    data = "name,city\nJosé,Zürich\n".encode() + "René,Besançon\n".encode("cp1252") + "Zoë,Köln\n".encode()
    path = write(tmp_path, "m.csv", data)
    assert detect_kind(path) == "csv"
    _, rows, problems = read(path)
    assert rows == [(1, ("José", "Zürich")), (2, ("René", "Besançon")), (3, ("Zoë", "Köln"))]
    assert [(p.row, p.message) for p in problems] == [(2, "row 2: not UTF-8, read as cp1252")]


def test_bom_is_dropped(tmp_path: Path) -> None:
    columns, rows, problems = read(write(tmp_path, "b.csv", b"\xef\xbb\xbfid,v\n1,a\n2,b\n"))
    assert columns == ("id", "v")
    assert rows == [(1, ("1", "a")), (2, ("2", "b"))]
    assert problems == []
    _, text_rows, _ = read(write(tmp_path, "b.txt", b"\xef\xbb\xbfhello\n"), kind="text")
    assert text_rows == [(1, ("hello",))]


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("gz", [False, True])
def test_utf16_with_a_bom_reads_like_utf8(tmp_path: Path, codec: str, gz: bool) -> None:
    # what spreadsheets export as "Unicode text"; long enough to cross the transcoder's 64 KiB chunks,
    # with characters outside the BMP (surrogate pairs in UTF-16) on every row
    text = "id\tname\tnote\n" + "".join(f"{i}\tZoë {i}\tcafé 😀 Köln {'x' * (i % 50)}\n" for i in range(3000))
    utf8 = write(tmp_path, "u8.tsv", text.encode("utf-8"))
    data = ("" if codec == "utf-16" else "\ufeff").encode(codec) + text.encode(codec)
    utf16 = write(tmp_path, "u16.tsv.gz" if gz else "u16.tsv", gzip.compress(data) if gz else data)
    assert detect_kind(utf16) == detect_kind(utf8) == "tsv"
    columns, rows, problems = read(utf16, batch_rows=700)
    assert (columns, rows) == read(utf8, batch_rows=700)[:2]
    assert len(rows) == 3000
    assert problems == []


def test_utf16_is_identified_as_text_by_content(tmp_path: Path) -> None:
    from garrison.formats.identify import identify

    body = "email,phone\njane@example.com,+1 415 555 2671\n".encode("utf-16")
    path = write(tmp_path, "export.dat", body)
    assert identify(path, body, len(body)).format == "csv"
    assert identify(path, b"\xff\xfe\x00\x00" + body[2:], len(body) + 2).format == "unknown"  # UTF-32


def test_explicit_encoding(tmp_path: Path) -> None:
    path = write(tmp_path, "l.txt", "café\n".encode("latin-1"))
    _, rows, problems = read(path, kind="text", encoding="latin-1")
    assert rows == [(1, ("café",))]
    assert problems == []
    with pytest.raises(UsageError):
        list(iter_batches(path, encoding="utf-16"))
    with pytest.raises(UsageError):
        list(iter_batches(path, kind="xlsx"))


def test_jsonl_nested_and_bad_line(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": 1, "user": {"name": "a", "tags": ["x", "y"]}, "ok": True}),
        json.dumps({"id": 2, "user": {"name": "b"}, "score": 1.5, "none": None}),
        "{not json",
        "",
        json.dumps({"id": 3, "empty": {}, "deep": {"a": {"b": {"c": 7}}}}),
    ]
    path = write(tmp_path, "d.jsonl", ("\n".join(lines) + "\n").encode())
    assert detect_kind(path) == "jsonl"
    columns, rows, problems = read(path)
    assert columns == (
        "id",
        "user.name",
        "user.tags.0",
        "user.tags.1",
        "ok",
        "score",
        "none",
        "empty",
        "deep.a.b.c",
    )
    assert rows[0] == (1, ("1", "a", "x", "y", "true", None, None, None, None))
    assert rows[1] == (2, ("2", "b", None, None, None, "1.5", None, None, None))
    assert rows[2] == (5, ("3", None, None, None, None, None, None, "{}", "7"))
    assert len(problems) == 1
    assert problems[0].row == 3
    assert problems[0].byte_offset == len(lines[0]) + len(lines[1]) + 2
    assert problems[0].message.startswith("row 3: not a JSON value")


def test_jsonl_columns_grow_per_batch(tmp_path: Path) -> None:
    path = write(tmp_path, "g.jsonl", b'{"a": 1}\n{"a": 2}\n{"b": 3}\n')
    batches = list(iter_batches(path, batch_rows=2))
    assert [b.columns for b in batches] == [("a",), ("a", "b")]
    assert batches[1].rows == ((3, (None, "3")),)


def test_plain_text(tmp_path: Path) -> None:
    path = write(tmp_path, "t.txt", b"first line\n\nthird line\r\nlast")
    assert detect_kind(path) == "text"
    columns, rows, problems = read(path)
    assert columns is None
    assert rows == [(1, ("first line",)), (2, ("",)), (3, ("third line",)), (4, ("last",))]
    assert problems == []


def test_parquet_nulls_and_row_groups(tmp_path: Path) -> None:
    table = pa.table(
        {
            "id": list(range(1, 11)),
            "name": ["n" + str(i) if i % 3 else None for i in range(1, 11)],
            "blob": [bytes([i, 255]) for i in range(10)],
            "score": [i / 2 if i % 2 else None for i in range(10)],
        }
    )
    path = tmp_path / "d.parquet"
    pq.write_table(table, path, row_group_size=4)
    assert pq.ParquetFile(path).num_row_groups == 3
    assert detect_kind(path) == "parquet"
    columns, rows, problems = read(path, batch_rows=3)
    assert columns == ("id", "name", "blob", "score")
    assert [number for number, _ in rows] == list(range(1, 11))
    assert rows[0] == (1, ("1", "n1", "00ff", None))
    assert rows[2] == (3, ("3", None, "02ff", None))
    assert rows[1][1][3] == "0.5"
    assert problems == []


def test_parquet_corrupt_footer_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"a": [1, 2, 3]}), path)
    data = bytearray(path.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little")
    start = len(data) - 8 - footer
    data[start : start + footer] = b"\xff" * footer
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"bad\.parquet: not a readable Parquet file"):
        list(iter_batches(path))


def test_parquet_corrupt_row_group_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "rg.parquet"
    table = pa.table({"s": [f"value-{i:06d}-" * 20 for i in range(3000)]})
    pq.write_table(table, path, row_group_size=1000, compression="snappy", use_dictionary=False)
    meta = pq.ParquetFile(path).metadata
    chunk = meta.row_group(1).column(0)
    data = bytearray(path.read_bytes())
    middle = chunk.data_page_offset + 64
    data[middle : middle + 4096] = b"\x00" * 4096
    path.write_bytes(bytes(data))
    _, rows, problems = read(path, batch_rows=500)
    numbers = [number for number, _ in rows]
    assert numbers[:1000] == list(range(1, 1001))
    assert numbers[-1000:] == list(range(2001, 3001))
    assert problems
    assert problems[0].message.startswith("row group 1 (rows")


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path, "e.csv", b"")
    assert detect_kind(path) == "text"
    for kind in (None, "csv", "jsonl", "text"):
        assert list(iter_batches(path, kind=kind)) == []


def test_missing_file_and_binary(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        list(iter_batches(tmp_path / "nope.csv", kind="csv"))
    with pytest.raises(UnsupportedFormatError):
        detect_kind(write(tmp_path, "x.bin", bytes(range(256)) * 4))


def test_gzip_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv.gz", gzip.compress(b"a,b\n1,2\n3,4\n"))
    assert detect_kind(path) == "csv"
    columns, rows, _ = read(path)
    assert columns == ("a", "b")
    assert rows == [(1, ("1", "2")), (2, ("3", "4"))]


@pytest.mark.slow
def test_memory_is_bounded_by_batch_not_file(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    row = ("x" * 300 + "," + "y" * 300 + "," + "z" * 400 + "\n").encode()
    block = row * 1000
    with path.open("wb") as handle:
        handle.write(b"a,b,c\n")
        for _ in range(150):
            handle.write(block)
    assert path.stat().st_size > 150 * 10**6
    tracemalloc.start()
    try:
        count = 0
        for batch in iter_batches(path, batch_rows=5_000):
            count += len(batch.rows)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 150_000
    assert peak < 60 * 2**20
