"""The data-security detector through the engine and the CLI: per-column findings, masked evidence."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from garrison.cli.main import main
from garrison.core.config import Settings
from garrison.data.profile import profile_dataset
from garrison.detectors import default_registry
from garrison.engine import scan_path
from garrison.recognizers.pii import Scanner
from garrison.recognizers.pii_types import Entity

CARDS = ["4111111111111111", "5500005555555559", "340000000000009"]
SECRET = "AKIAIOSFODNN7EXAMPLE"  # AWS's documented example key id, not a live key


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "customers.csv"
    path.parent.mkdir()
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "full_name", "email", "card", "notes"])
        for i in range(300):
            notes = f"rotate key {SECRET} soon" if i == 120 else f"order {1000 + i} shipped"
            writer.writerow(
                [
                    i,
                    ["Ana Smith", "Ben Okafor", "Chloe Martin"][i % 3],
                    f"user{i}@example.org",
                    CARDS[i % 3],
                    notes,
                ]
            )
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def test_profile_summarises_each_column(table: Path) -> None:
    profile = profile_dataset(table, batch_rows=64)  # several batches
    assert profile.rows == 300
    assert profile.columns == ("id", "full_name", "email", "card", "notes")
    assert profile.findings[("full_name", Entity.PERSON_NAME)].rows == 300  # by the column's name
    email = profile.findings[("email", Entity.EMAIL)]
    assert email.rows == 300
    assert email.first_rows == [1, 2, 3, 4, 5]
    card = profile.findings[("card", Entity.CREDIT_CARD)]
    assert card.rows == 300
    assert card.validated == 300
    secret = profile.findings[("notes", Entity.SECRET)]
    assert secret.rows == 1
    assert secret.first_rows == [121]
    assert ("notes", Entity.CREDIT_CARD) not in profile.findings  # order numbers are not cards
    for entry in profile.findings.values():  # evidence is masked
        for example in entry.examples:
            assert SECRET not in example
            assert not any(c in example for c in CARDS)
            assert "user1@" not in example


def test_scan_data_through_the_command_line(
    table: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(table.parent.parent)
    code, out = _run(capsys, "scan", "data", str(table.parent), "--no-store", "--format", "json")
    assert code == 1  # a secret and card numbers: high
    report = json.loads(out)
    found = {(f["rule"]["id"], f["location"].get("column")) for f in report["findings"]}
    assert found == {
        ("GAR-PII-001", "full_name"),
        ("GAR-PII-001", "email"),
        ("GAR-PII-001", "card"),
        ("GAR-SEC-001", "notes"),
    }
    text = json.dumps(report)
    assert SECRET not in text
    assert CARDS[0] not in text
    severities = {f["location"].get("column"): f["severity"] for f in report["findings"]}
    assert severities == {"full_name": "medium", "email": "medium", "card": "high", "notes": "high"}


def test_plain_scan_reaches_the_data_detector(table: Path) -> None:
    report = scan_path(table.parent, settings=Settings(store=False), registry=default_registry(plugins=False))
    assert {f.rule.id for f in report.findings} >= {"GAR-PII-001", "GAR-SEC-001"}


def test_malformed_rows_are_a_finding_and_the_rest_is_scanned(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    lines = ["id,email"] + [f"{i},person{i}@example.com" for i in range(50)]
    lines[10] = "9,too,many,fields"
    lines[20] = "19"
    path.write_bytes(("\n".join(lines) + "\n").encode() + b"51,caf\xe9@example.com\n")
    report = scan_path(path, settings=Settings(store=False), registry=default_registry(plugins=False))
    by_rule = {f.rule.id: f for f in report.findings}
    assert "GAR-DATA-101" in by_rule
    assert "row 10" in by_rule["GAR-DATA-101"].message
    assert "row 10: row 10" not in by_rule["GAR-DATA-101"].message  # each problem names its row once
    assert by_rule["GAR-PII-001"].location.column == "email"


@pytest.mark.parametrize("kind", ["jsonl", "parquet", "text"])
def test_other_formats(
    tmp_path: Path, kind: str, write: Callable[[Path, list[dict[str, str]]], None]
) -> None:
    rows = [
        {"user": {"contact": f"someone{i}@example.net"}, "iban": "GB82WEST12345698765432"} for i in range(40)
    ]
    path = tmp_path / f"rows.{kind}"
    write(path, rows)
    profile = profile_dataset(path)
    entities = {e for (_, e) in profile.findings}
    assert Entity.EMAIL in entities
    assert Entity.IBAN in entities


@pytest.fixture
def write() -> Callable[[Path, list[dict[str, str]]], None]:
    def writer(path: Path, rows: list[dict[str, str]]) -> None:
        kind = path.suffix.lstrip(".")
        if kind == "jsonl":
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        elif kind == "text":
            path.write_text("".join(f"Contact {r['user']['contact']} IBAN {r['iban']}.\n" for r in rows))  # type: ignore[index]
        else:
            pa = pytest.importorskip("pyarrow")
            pq = pytest.importorskip("pyarrow.parquet")
            flat = [{"contact": r["user"]["contact"], "iban": r["iban"]} for r in rows]  # type: ignore[index]
            pq.write_table(pa.Table.from_pylist(flat), path, row_group_size=16)

    return writer


def test_memory_stays_bounded_on_a_large_file(tmp_path: Path) -> None:
    import tracemalloc

    path = tmp_path / "big.csv"
    with path.open("w") as handle:
        handle.write("id,email,comment\n")
        block = "".join(f"{i},p{i}@example.com,{'lorem ipsum ' * 8}\n" for i in range(20_000))
        for _ in range(5):  # ~12 MB
            handle.write(block)
    tracemalloc.start()
    # e-mail only: this test is about memory, and the full recognizer set is timed in benchmarks/
    profile = profile_dataset(path, batch_rows=2_000, scanner=Scanner(entities=[Entity.EMAIL]))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert profile.rows == 100_000
    assert profile.findings[("email", Entity.EMAIL)].rows == 100_000
    assert peak < os.path.getsize(path) / 2, (
        f"peak {peak / 2**20:.0f} MiB for a {os.path.getsize(path) / 2**20:.0f} MiB file"
    )


def test_remembered_values_change_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Repeated values are looked up, not scanned again: the profile is the one a full scan gives."""
    import garrison.data.profile as profile_module

    path = tmp_path / "repeats.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "phone", "card", "note"])
        for i in range(3_000):
            writer.writerow(
                [
                    ["Ana Smith", "Ben Okafor", "Chloe Rossi"][i % 3],
                    f"+44 20 7946 {i % 40:04d}",
                    CARDS[i % 3] if i % 7 == 0 else "",
                    "call me on +1 415 555 2671" if i % 5 == 0 else f"order {i}",
                ]
            )

    def summary(found: profile_module.DataProfile) -> list[tuple[object, ...]]:
        return [
            (key, f.rows, f.matches, f.validated, sorted(f.kinds.items()), f.first_rows, f.examples)
            for key, f in sorted(found.findings.items(), key=lambda kv: (kv[0][0] or "", kv[0][1].value))
        ]

    remembered = profile_dataset(path, batch_rows=500)
    monkeypatch.setattr(profile_module, "MEMO_ENTRIES", 0)
    scanned = profile_dataset(path, batch_rows=500)
    assert summary(remembered) == summary(scanned)
    assert remembered.findings[("phone", Entity.PHONE)].rows == 3_000
