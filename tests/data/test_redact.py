"""``redact_dataset`` and ``garrison data redact``: every strategy on every format, on real files."""

from __future__ import annotations

import csv
import gzip
import json
import tracemalloc
from pathlib import Path

import pytest
import typer
from stdnum import iban as std_iban
from stdnum import luhn
from typer.testing import CliRunner

from garrison.cli import data as data_cli
from garrison.core.errors import GarrisonError, InputError, UsageError
from garrison.data.profile import profile_dataset
from garrison.data.redact import redact_dataset
from garrison.data.redact_strategies import Strategy
from garrison.recognizers.pii import Scanner
from garrison.recognizers.pii_types import Entity

KEY = b"0123456789abcdef0123456789abcdef"
OTHER_KEY = b"fedcba9876543210fedcba9876543210"
ORIGINALS = (
    "alice@corp.io",
    "bob@corp.io",
    "+1 415-555-2671",
    "4111 1111 1111 1111",
    "5555555555554444",
    "DE89370400440532013000",
    "GB82WEST12345698765432",
)
REDACTED = {Entity.EMAIL, Entity.PHONE, Entity.CREDIT_CARD, Entity.IBAN}


def _csv(path: Path) -> Path:
    path.write_text(
        "id,email,phone,card,iban,note\n"
        "1,alice@corp.io,+1 415-555-2671,4111 1111 1111 1111,DE89370400440532013000,call alice@corp.io\n"
        "2,bob@corp.io,+1 415-555-2671,5555555555554444,GB82WEST12345698765432,nothing here\n"
        "3,nobody,,,,plain\n",
        encoding="utf-8",
    )
    return path


def _jsonl(path: Path) -> Path:
    records = [
        {
            "user": {"email": "alice@corp.io", "phones": ["+1 415-555-2671"]},
            "pay": {"card": "4111 1111 1111 1111"},
        },
        {"user": {"email": "bob@corp.io", "phones": []}, "iban": "GB82WEST12345698765432", "ok": True},
        {"user": {"name": "nobody"}, "n": 3},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _text(path: Path) -> Path:
    path.write_text(
        "Contact alice@corp.io or +1 415-555-2671.\n"
        "Card 4111 1111 1111 1111, IBAN DE89370400440532013000.\n"
        "\n"
        "Nothing personal here; bob@corp.io wrote it.\n",
        encoding="utf-8",
    )
    return path


def _parquet(path: Path) -> Path:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "email": ["alice@corp.io", "bob@corp.io", None],
            "card": ["4111 1111 1111 1111", "5555555555554444", "none"],
            "iban": pa.array(["DE89370400440532013000", "GB82WEST12345698765432", "x"]).dictionary_encode(),
            "note": ["call +1 415-555-2671", "nothing", "plain"],
        }
    )
    pq.write_table(table, path, row_group_size=2)
    return path


MAKERS = {"data.csv": _csv, "data.jsonl": _jsonl, "data.txt": _text, "data.parquet": _parquet}


def _rows(path: Path) -> list[list[str]]:
    return list(csv.reader(path.read_text(encoding="utf-8").splitlines()))


def _remaining(path: Path) -> list[tuple[str | None, Entity]]:
    found = profile_dataset(path).findings
    return [key for key in found if key[1] in REDACTED]


@pytest.mark.parametrize("name", sorted(MAKERS))
@pytest.mark.parametrize("strategy", [Strategy.MASK, Strategy.TOKEN, Strategy.DROP, Strategy.HASH])
def test_no_personal_data_is_left(tmp_path: Path, name: str, strategy: Strategy) -> None:
    src = MAKERS[name](tmp_path / name)
    assert _remaining(src), "the fixture must hold personal data"
    dst = tmp_path / f"out-{name}"
    report = redact_dataset(src, dst, strategy=strategy, key=KEY, entities=REDACTED)
    assert _remaining(dst) == []
    assert report.rows_changed >= 2
    assert report.rows_read == report.rows_written
    assert {c.entity for c in report.changes} >= {Entity.EMAIL, Entity.CREDIT_CARD}
    assert all(c.strategy is strategy for c in report.changes)
    if name != "data.parquet":
        text = dst.read_text(encoding="utf-8")
        assert not any(original in text for original in ORIGINALS)
    if strategy is Strategy.TOKEN and name != "data.parquet":
        assert "[EMAIL]" in dst.read_text(encoding="utf-8")


def test_output_keeps_format_and_structure(tmp_path: Path) -> None:
    csv_out = tmp_path / "o.csv"
    redact_dataset(_csv(tmp_path / "a.csv"), csv_out, strategy=Strategy.TOKEN)
    rows = _rows(csv_out)
    assert rows[0] == ["id", "email", "phone", "card", "iban", "note"]
    assert rows[1] == ["1", "[EMAIL]", "[PHONE]", "[CREDIT_CARD]", "[IBAN]", "call [EMAIL]"]
    assert rows[3] == ["3", "nobody", "", "", "", "plain"]

    jsonl_out = tmp_path / "o.jsonl"
    redact_dataset(_jsonl(tmp_path / "a.jsonl"), jsonl_out, strategy=Strategy.DROP)
    records = [json.loads(line) for line in jsonl_out.read_text(encoding="utf-8").splitlines()]
    assert records[0] == {"user": {"email": "", "phones": [""]}, "pay": {"card": ""}}
    assert records[1]["ok"] is True
    assert records[2] == {"user": {"name": "nobody"}, "n": 3}

    text_out = tmp_path / "o.txt"
    redact_dataset(_text(tmp_path / "a.txt"), text_out, strategy=Strategy.TOKEN)
    lines = text_out.read_text(encoding="utf-8").split("\n")
    assert lines[0] == "Contact [EMAIL] or [PHONE]."
    assert lines[2] == ""


def test_parquet_keeps_schema_and_row_groups(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    src = _parquet(tmp_path / "a.parquet")
    dst = tmp_path / "o.parquet"
    report = redact_dataset(src, dst, strategy=Strategy.TOKEN, drop_columns=["note"])
    source, out = pq.ParquetFile(src), pq.ParquetFile(dst)
    assert out.schema_arrow == source.schema_arrow.remove(source.schema_arrow.get_field_index("note"))
    assert out.num_row_groups == source.num_row_groups
    table = out.read()
    assert table.column("email").to_pylist() == ["[EMAIL]", "[EMAIL]", None]
    assert table.column("iban").to_pylist() == ["[IBAN]", "[IBAN]", "x"]
    assert report.unscanned_columns == ("id",)
    assert report.dropped_columns == ("note",)


def _hash_of(tmp_path: Path, name: str, key: bytes) -> list[list[str]]:
    src = _csv(tmp_path / f"{name}.csv")
    dst = tmp_path / f"{name}-out.csv"
    redact_dataset(src, dst, strategy=Strategy.HASH, key=key, overwrite=True)
    return _rows(dst)


def test_hash_pseudonyms_are_stable_keyed_and_joinable(tmp_path: Path) -> None:
    first = _hash_of(tmp_path, "a", KEY)
    again = _hash_of(tmp_path, "b", KEY)
    other = _hash_of(tmp_path, "c", OTHER_KEY)
    assert first == again
    assert first[1][1].startswith("email_")
    assert len(first[1][1]) == len("email_") + 12
    assert first[1][1] != other[1][1]
    assert first[1][3].startswith("credit_card_")
    # the same e-mail inside free text and in a JSON file elsewhere gets the same pseudonym: joins work
    assert first[1][5] == f"call {first[1][1]}"
    assert first[1][2] == first[2][2]  # the same phone in two rows
    jsonl_out = tmp_path / "j.jsonl"
    redact_dataset(_jsonl(tmp_path / "j-in.jsonl"), jsonl_out, strategy=Strategy.HASH, key=KEY)
    record = json.loads(jsonl_out.read_text(encoding="utf-8").splitlines()[0])
    assert record["user"]["email"] == first[1][1]


def test_hash_needs_a_real_key(tmp_path: Path) -> None:
    src = _csv(tmp_path / "a.csv")
    with pytest.raises(UsageError, match="needs a key"):
        redact_dataset(src, tmp_path / "o.csv", strategy=Strategy.HASH)
    with pytest.raises(UsageError, match="at least 16"):
        redact_dataset(src, tmp_path / "o.csv", strategy=Strategy.HASH, key=b"short")
    with pytest.raises(UsageError, match="needs a key"):
        redact_dataset(src, tmp_path / "o.csv", strategy={Entity.EMAIL: Strategy.HASH})
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("use_faker", [False, True])
def test_fake_values_are_valid_and_deterministic(tmp_path: Path, use_faker: bool) -> None:
    if use_faker:
        pytest.importorskip("faker")
    src = _csv(tmp_path / "a.csv")
    outs = []
    for n in range(2):
        dst = tmp_path / f"o{n}.csv"
        report = redact_dataset(src, dst, strategy=Strategy.FAKE, key=KEY, use_faker=use_faker)
        outs.append(dst.read_text(encoding="utf-8"))
    assert outs[0] == outs[1]
    assert report.fake_generator == ("builtin" if not use_faker else report.fake_generator)
    assert report.fake_generator is not None
    assert report.fake_generator.startswith("faker" if use_faker else "b")
    rows = list(csv.DictReader(outs[0].splitlines()))
    for row in rows[:2]:
        digits = row["card"].replace(" ", "")
        assert luhn.is_valid(digits)
        assert digits.startswith("400000")
        assert std_iban.is_valid(row["iban"])
        assert row["email"].split("@")[1] in ("example.com", "example.org", "example.net")
        assert "555-01" in row["phone"]
    assert rows[0]["email"] != rows[1]["email"]
    assert rows[0]["phone"] == rows[1]["phone"]  # the same original, the same fake
    assert rows[0]["note"] == f"call {rows[0]['email']}"
    assert not any(original in outs[0] for original in ORIGINALS)
    unkeyed = redact_dataset(src, tmp_path / "u.csv", strategy=Strategy.FAKE, use_faker=use_faker)
    assert unkeyed.keyed is False


def test_per_entity_strategies_and_only(tmp_path: Path) -> None:
    src = _csv(tmp_path / "a.csv")
    dst = tmp_path / "o.csv"
    report = redact_dataset(
        src,
        dst,
        strategy={Entity.EMAIL: Strategy.HASH, Entity.CREDIT_CARD: Strategy.DROP},
        key=KEY,
        entities=[Entity.EMAIL, Entity.CREDIT_CARD],
    )
    row = _rows(dst)[1]
    assert row[1].startswith("email_")
    assert row[2] == "+1 415-555-2671"  # phone not asked for
    assert row[3] == ""
    assert report.strategies["email"] == "hash"
    assert report.strategies["phone"] == "mask"
    assert report.entities == ("email", "credit-card")


def test_report_never_holds_originals(tmp_path: Path) -> None:
    for maker, name in ((_csv, "a.csv"), (_jsonl, "a.jsonl"), (_text, "a.txt")):
        for strategy in Strategy:
            dst = tmp_path / f"{strategy}-{name}"
            report = redact_dataset(maker(tmp_path / name), dst, strategy=strategy, key=KEY)
            dumped = json.dumps(report.to_dict())
            assert not any(original in dumped for original in ORIGINALS), (strategy, name)
            assert report.changes
            assert all(c.examples for c in report.changes)
            assert "a***@c***.io" in dumped


def test_refuses_to_overwrite_input_or_existing_output(tmp_path: Path) -> None:
    src = _csv(tmp_path / "a.csv")
    before = src.read_bytes()
    with pytest.raises(UsageError, match="output is the input"):
        redact_dataset(src, src)
    with pytest.raises(UsageError, match="output is the input"):
        redact_dataset(src, tmp_path / "." / "a.csv", overwrite=True)
    existing = tmp_path / "o.csv"
    existing.write_text("keep me")
    with pytest.raises(UsageError, match="already exists"):
        redact_dataset(src, existing)
    assert existing.read_text() == "keep me"
    redact_dataset(src, existing, overwrite=True)
    assert "a***@c***.io" in existing.read_text()
    assert src.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "o.csv"]  # no temp file left
    with pytest.raises(InputError):
        redact_dataset(tmp_path / "missing.csv", tmp_path / "x.csv")
    with pytest.raises(UsageError, match="no column named"):
        redact_dataset(src, tmp_path / "x.csv", drop_columns=["nope"])
    assert not (tmp_path / "x.csv").exists()


def test_malformed_csv_row_is_carried_and_reported(tmp_path: Path) -> None:
    src = tmp_path / "bad.csv"
    src.write_text(
        "id,email,note\n1,alice@corp.io,ok\n2,bob@corp.io\n3,carol@corp.io,x,extra\n4,dan@corp.io,fine\n",
        encoding="utf-8",
    )
    dst = tmp_path / "o.csv"
    report = redact_dataset(src, dst, strategy=Strategy.TOKEN)
    rows = _rows(dst)
    assert rows == [
        ["id", "email", "note"],
        ["1", "[EMAIL]", "ok"],
        ["2", "[EMAIL]", ""],
        ["3", "[EMAIL]", "x"],
        ["4", "[EMAIL]", "fine"],
    ]
    assert report.problem_count == 2
    assert [p.row for p in report.problems] == [2, 3]
    assert report.rows_read == report.rows_written == 4


def test_tsv_headerless_and_gzip(tmp_path: Path) -> None:
    src = tmp_path / "a.tsv"
    src.write_text("1\talice@corp.io\n2\tbob@corp.io\n", encoding="utf-8")
    dst = tmp_path / "o.tsv.gz"
    redact_dataset(src, dst, strategy=Strategy.TOKEN)
    with gzip.open(dst, "rt", encoding="utf-8") as handle:
        assert handle.read() == "1\t[EMAIL]\n2\t[EMAIL]\n"


def test_jsonl_drop_column_and_bad_line(tmp_path: Path) -> None:
    src = tmp_path / "a.jsonl"
    src.write_text(
        '{"user": {"email": "alice@corp.io", "ssn": "x"}, "id": 1}\n'
        '{"id": 2, "note": "plain"}\n'
        "{broken alice@corp.io\n",
        encoding="utf-8",
    )
    dst = tmp_path / "o.jsonl"
    report = redact_dataset(src, dst, strategy=Strategy.TOKEN, drop_columns=["user.ssn"], kind="jsonl")
    lines = dst.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0]) == {"user": {"email": "[EMAIL]"}, "id": 1}
    assert lines[1] == '{"id": 2, "note": "plain"}'  # untouched lines are copied byte for byte
    assert lines[2] == "{broken [EMAIL]"
    assert report.problem_count == 1


def test_bounded_memory_on_a_large_file(tmp_path: Path) -> None:
    src = tmp_path / "big.csv"
    filler = " ".join(["the quick brown fox jumps over the lazy dog"] * 16)
    with src.open("w", encoding="utf-8") as handle:
        handle.write("id,email,note\n")
        i = 0
        while handle.tell() < 20_000_000:
            email = f"user{i}@corp.com" if i % 50 == 0 else "none"
            handle.write(f"{i},{email},{filler}\n")
            i += 1
    size = src.stat().st_size
    tracemalloc.start()
    try:
        report = redact_dataset(
            src, tmp_path / "o.csv", strategy=Strategy.TOKEN, entities=[Entity.EMAIL], columns=["email"],
            batch_rows=500,
        )  # fmt: skip
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.rows_read == i
    assert report.rows_changed == len(range(0, i, 50))
    assert peak < size / 3, f"peak {peak:,} bytes for a {size:,}-byte file"


# ---------------------------------------------------------------- the command


def _app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(data_cli.data_app, name="data")
    return app


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(_app(), list(args), env=env)
    if isinstance(result.exception, GarrisonError):
        return result.exception.exit_code, result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout


def test_cli_redact(tmp_path: Path) -> None:
    src = _csv(tmp_path / "a.csv")
    out = tmp_path / "o.csv"
    code, text = _run("data", "redact", str(src), "-o", str(out))
    assert code == 0
    assert "a***@c***.io" in text
    assert out.exists()
    code, _ = _run("data", "redact", str(src), "-o", str(out))
    assert code == 2  # exists
    code, _ = _run("data", "redact", str(src), "-o", str(out), "--force", "--strategy", "hash")
    assert code == 2  # no key
    code, text = _run(
        "data", "redact", str(src), "-o", str(out), "--force", "--strategy", "token",
        "--entity-strategy", "email=hash", "--key-env", "REDACT_KEY", "--drop-column", "note",
        "--only", "email", "--only", "credit_card", "--format", "json",
        env={"REDACT_KEY": KEY.decode()},
    )  # fmt: skip
    assert code == 0
    report = json.loads(text)
    assert report["dropped_columns"] == ["note"]
    assert report["keyed"] is True
    assert {c["entity"]: c["strategy"] for c in report["changes"]} == {
        "email": "hash",
        "credit-card": "token",
    }
    assert KEY.decode() not in text
    assert "alice@corp.io" not in text
    row = _rows(out)[1]
    assert row[1].startswith("email_")
    assert row[3] == "[CREDIT_CARD]"
    assert len(row) == 5
    assert _run("data", "redact", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "x.csv"))[0] == 3
    assert _run("data", "redact", str(src), "-o", str(tmp_path / "y.csv"), "--strategy", "rot13")[0] == 2
    assert _run("data", "redact", str(src), "-o", str(tmp_path / "y.csv"), "--only", "shoe-size")[0] == 2
    assert _run("data", "redact", str(src), "-o", str(tmp_path / "y.csv"), "--key-env", "UNSET_VAR_X")[0] == 2
    assert _run("data", "redact", "--help")[0] == 0


def test_scanner_finds_nothing_in_pseudonyms() -> None:
    scanner = Scanner()
    assert scanner.scan("email_3f9a1c2b7d0e credit_card_85bcdc09677d iban_405665b09ea0") == []


def test_redacting_an_image_is_refused_cleanly(tmp_path: Path) -> None:
    pytest.importorskip("PIL")
    from PIL import Image

    src = tmp_path / "photo.png"
    Image.new("RGB", (4, 4)).save(src)
    with pytest.raises(GarrisonError, match="cannot redact image data"):
        redact_dataset(src, tmp_path / "out.png")
    code, text = _run("data", "redact", str(src), "-o", str(tmp_path / "o.png"))
    assert code == 3, text
    assert not (tmp_path / "o.png").exists()
