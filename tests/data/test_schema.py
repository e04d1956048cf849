"""Schema inference and validation (``garrison.data.schema*``) and ``garrison data schema|validate``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from garrison.cli.main import main
from garrison.core.assets import Asset, AssetKind
from garrison.core.errors import ConfigError, UsageError
from garrison.data.schema import ColumnSchema, Schema, load_schema
from garrison.data.schema_infer import infer_schema
from garrison.data.schema_rules import SCHEMA_RULES, validation_findings
from garrison.data.schema_types import ColumnType
from garrison.data.schema_validate import validate

HEADER = ["id", "name", "score", "active", "country", "joined", "seen_at", "note"]


def _rows(n: int) -> list[list[str]]:
    countries = ["DE", "FR", "US"]
    return [
        [
            str(i),
            f"user{i}",
            f"{i * 0.5:.1f}",
            "true" if i % 2 else "false",
            countries[i % 3],
            f"2024-01-{1 + i % 28:02d}",
            f"2024-02-01T10:{i % 60:02d}:00Z",
            "" if i % 4 == 0 else f"n{i}",
        ]
        for i in range(1, n + 1)
    ]


def _write(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def clean(tmp_path: Path) -> Path:
    return _write(tmp_path / "clean.csv", _rows(200))


def _schema(*columns: ColumnSchema, required: tuple[str, ...] = (), extra: bool = True) -> Schema:
    return Schema(columns=columns, required_columns=required, allow_extra_columns=extra)


def _by_check(result: object) -> dict[tuple[str, str], tuple[int, tuple[int, ...]]]:
    return {(v.column, v.check): (v.count, v.first_rows) for v in result.violations}  # type: ignore[attr-defined]


def test_infer_round_trips_through_toml(clean: Path, tmp_path: Path) -> None:
    schema = infer_schema(clean)
    types = {c.name: c.type for c in schema.columns}
    assert types == {
        "id": ColumnType.INTEGER,
        "name": ColumnType.STRING,
        "score": ColumnType.NUMBER,
        "active": ColumnType.BOOLEAN,
        "country": ColumnType.STRING,
        "joined": ColumnType.DATE,
        "seen_at": ColumnType.DATETIME,
        "note": ColumnType.STRING,
    }
    by_name = {c.name: c for c in schema.columns}
    assert by_name["id"].unique
    assert by_name["id"].min == 1
    assert by_name["id"].max == 200
    assert by_name["country"].allowed == ("DE", "FR", "US")
    assert by_name["note"].nullable
    assert not by_name["id"].nullable
    assert by_name["score"].max == 100.0
    target = tmp_path / "schema.toml"
    target.write_text(schema.to_toml(), encoding="utf-8")
    assert "# Inferred from the first 200 row(s)" in target.read_text()
    assert load_schema(target) == schema
    assert validate(clean, schema).valid
    assert validation_findings(validate(clean, schema), _asset(clean)) == []


def _asset(path: Path) -> Asset:
    return Asset(kind=AssetKind.DATASET, locator=str(path))


def test_every_check_reports_its_rows(tmp_path: Path) -> None:
    rows = _rows(10)
    rows[1][0] = "x2"  # type: row 2
    rows[2][1] = ""  # null in non-nullable name: row 3
    rows[3][2] = "999"  # range: row 4
    rows[4][1] = "u"  # length: row 5
    rows[5][4] = "ZZ"  # allowed: row 6
    rows[6][7] = "BAD!"  # regex: row 7
    rows[8][0] = "1"  # unique: row 9 repeats row 1
    path = _write(tmp_path / "bad.csv", rows)
    schema = _schema(
        ColumnSchema(name="id", type=ColumnType.INTEGER, unique=True),
        ColumnSchema(name="name", nullable=False, min_length=3),
        ColumnSchema(name="score", type=ColumnType.NUMBER, min=0, max=100),
        ColumnSchema(name="country", allowed=("DE", "FR", "US")),
        ColumnSchema(name="note", regex=r"n\d+"),
        required=("id", "name", "missing_col"),
        extra=False,
    )
    result = validate(path, schema)
    checks = _by_check(result)
    assert checks[("id", "type")] == (1, (2,))
    assert checks[("name", "nullable")] == (1, (3,))
    assert checks[("score", "range")] == (1, (4,))
    assert checks[("name", "length")] == (1, (5,))
    assert checks[("country", "allowed")] == (1, (6,))
    assert checks[("note", "regex")] == (1, (7,))
    assert checks[("id", "unique")] == (1, (9,))
    assert result.missing_columns == ("missing_col",)
    assert result.unexpected_columns == ("active", "joined", "seen_at")
    findings = validation_findings(result, _asset(path))
    ids = sorted(f.rule.id for f in findings)
    assert ids.count("GAR-DATA-201") == 7
    assert ids.count("GAR-DATA-202") == 4
    missing = next(f for f in findings if f.location.column == "missing_col")
    assert missing.severity.name == "HIGH"
    age = next(f for f in findings if f.location.column == "score")
    assert age.location.row == 4
    assert "1 of 10 rows" in age.message
    assert "first rows 4" in age.message


def test_dates_and_datetimes_ranges(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "d.csv", [["2023-12-31", "2024-01-01 00:00:00"], ["2024-05-01", "bad"]], ["d", "t"]
    )
    schema_file = tmp_path / "s.toml"
    schema_file.write_text(
        '[columns.d]\ntype = "date"\nmin = 2024-01-01\n'
        '[columns.t]\ntype = "datetime"\nmax = "2025-01-01T00:00:00Z"\n'
    )
    checks = _by_check(validate(path, load_schema(schema_file)))
    assert checks == {("d", "range"): (1, (1,)), ("t", "type"): (1, (2,))}


def test_jsonl_nested_columns_and_json_schema(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    lines = [{"id": i, "user": {"email": f"u{i}@corp.io", "age": 20 + i}} for i in range(5)]
    lines[3]["user"]["age"] = -1  # type: ignore[index]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    inferred = infer_schema(path)
    assert {c.name for c in inferred.columns} == {"id", "user.email", "user.age"}
    schema_file = tmp_path / "s.json"
    schema_file.write_text(json.dumps({"columns": {"user.age": {"type": "integer", "min": 0}}}))
    checks = _by_check(validate(path, load_schema(schema_file)))
    assert checks == {("user.age", "range"): (1, (4,))}


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"id": [1, 2, 2], "flag": [True, False, None]}), path)
    schema = _schema(
        ColumnSchema(name="id", type=ColumnType.INTEGER, unique=True),
        ColumnSchema(name="flag", type=ColumnType.BOOLEAN, nullable=False),
    )
    checks = _by_check(validate(path, schema))
    assert checks == {("id", "unique"): (1, (3,)), ("flag", "nullable"): (1, (3,))}
    assert {c.name: c.type for c in infer_schema(path).columns}["flag"] is ColumnType.BOOLEAN


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[columns.age]\ntype = "integer"\nmaximum = 3\n', ["column 'age'", "'maximum'", "unknown key"]),
        ('[columns.age]\ntype = "int"\n', ["column 'age'", "'type'", "'int'"]),
        ('[columns.age]\nnullable = "no"\n', ["column 'age'", "'nullable'"]),
        ('[columns.age]\ntype = "string"\nmin = 3\n', ["column 'age'", "'min'"]),
        ('[columns.age]\ntype = "integer"\nallowed = ["x"]\n', ["column 'age'", "'allowed'"]),
        ('[columns.age]\nregex = "("\n', ["column 'age'", "'regex'", "does not compile"]),
        (f'[columns.age]\nregex = "{"a" * 1001}"\n', ["column 'age'", "'regex'", "limit"]),
        ("[columns.age]\nmin_length = -1\n", ["column 'age'", "'min_length'"]),
        ("colums = 1\n", ["'colums'", "unknown key"]),
        ("required_columns = [1]\n", ["'required_columns'"]),
        ("this is not toml", ["not valid TOML"]),
    ],
)
def test_malformed_schema_names_file_column_and_key(tmp_path: Path, text: str, words: list[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_schema(path)
    message = info.value.message
    assert str(path) in message
    for word in words:
        assert word in message


def test_uniqueness_cap_reports_partial_check(tmp_path: Path) -> None:
    rows = [[str(i % 50)] for i in range(100)]
    path = _write(tmp_path / "u.csv", rows, ["k"])
    schema = _schema(ColumnSchema(name="k", unique=True))
    full = validate(path, schema)
    assert _by_check(full)[("k", "unique")][0] == 50
    assert not full.problems
    capped = validate(path, schema, unique_cap=10)
    count, first = _by_check(capped)[("k", "unique")]
    assert count == 10
    assert first[0] == 51
    assert capped.problems
    assert "up to row 11" in capped.problems[0]


def test_examples_mask_personal_data(tmp_path: Path) -> None:
    rows = [["alice@corp.io"], ["4111 1111 1111 1111"], ["ok"]]
    path = _write(tmp_path / "p.csv", rows, ["contact"])
    schema = _schema(ColumnSchema(name="contact", regex="ok"))
    result = validate(path, schema)
    (violation,) = result.violations
    text = " ".join(violation.examples)
    assert "alice@corp.io" not in text
    assert "a***@c***.io" in text
    assert "4111 1111 1111 1111" not in text
    assert "1111" in text
    findings = validation_findings(result, _asset(path))
    assert all("alice@corp.io" not in f.message for f in findings)


def test_plain_text_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("just some words\nand more words\n")
    with pytest.raises(UsageError):
        validate(path, Schema(), kind="text")


def test_rules_are_well_formed() -> None:
    assert [r.id for r in SCHEMA_RULES] == ["GAR-DATA-201", "GAR-DATA-202"]
    assert all("EU-AI-Act:Art-10" in r.controls for r in SCHEMA_RULES)


def test_cli_schema_then_validate(clean: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    schema_file = tmp_path / "s.toml"
    assert main(["data", "schema", str(clean), "-o", str(schema_file)]) == 0
    assert main(["data", "schema", str(clean), "-o", str(schema_file)]) == 2  # exists, no --force
    assert main(["data", "schema", str(clean), "-o", str(schema_file), "--force", "--sample-rows", "50"]) == 0
    assert load_schema(schema_file).column("id") is not None
    capsys.readouterr()
    validate_args = ["data", "validate", str(clean), "--schema", str(schema_file), "--no-store"]
    # a schema inferred from 50 rows is broken by the rest: violations are high, so CI fails
    assert main([*validate_args, "--fail-on", "critical"]) == 0
    capsys.readouterr()
    assert main(validate_args) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out
    assert "range" in out
    report = tmp_path / "r.json"
    code = main([*validate_args, "--fail-on", "medium", "-f", "json", "-o", str(report)])
    assert code == 1
    data = json.loads(report.read_text())
    assert {f["rule"]["id"] if isinstance(f["rule"], dict) else f["rule"] for f in data["findings"]} >= {
        "GAR-DATA-201"
    }
    db = tmp_path / "g.db"
    sarif = tmp_path / "r.sarif"
    args = ["data", "validate", str(clean), "--schema", str(schema_file), "--db", str(db), "-f", "sarif"]
    assert main([*args, "-o", str(sarif), "--fail-on", "critical"]) == 0
    assert db.exists()
    assert json.loads(sarif.read_text())["runs"]
    bad_schema = tmp_path / "bad.toml"
    bad_schema.write_text("[columns.id]\nkind = 1\n")
    assert main(["data", "validate", str(clean), "--schema", str(bad_schema), "--no-store"]) == 2
    assert (
        main(["data", "validate", str(tmp_path / "nope.csv"), "--schema", str(schema_file), "--no-store"])
        == 3
    )
