"""Label issues in a dataset file (``garrison.data.label_scan``), its rule and ``garrison data labels``.

The dataset is scikit-learn's digits (1,797 rows of 64 pixel columns ``px0..px63``) written to CSV
with the label as a word (``zero`` .. ``nine``) in column ``digit``, and 10% of the labels flipped to
another digit. CSV row numbers start at 1 under the header, so data index ``i`` is row ``i + 1``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from garrison.cli import data_labels
from garrison.core.assets import Asset, AssetKind
from garrison.core.errors import GarrisonError, UsageError
from garrison.core.rules import rule_problems
from garrison.data.label_rules import LABEL_RULES, label_findings
from garrison.data.label_scan import LabelScanResult, label_scan

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[int]]:
    """The digits CSV with 10% flipped labels, and the CSV row numbers that were flipped."""
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]

    data = load_digits()
    labels = data.target.copy()
    rng = np.random.default_rng(0)
    flipped = rng.choice(labels.shape[0], size=labels.shape[0] // 10, replace=False)
    for i in flipped:
        labels[i] = (labels[i] + rng.integers(1, 10)) % 10
    header = [*(f"px{j}" for j in range(64)), "digit"]
    rows = [[*(str(int(v)) for v in x), WORDS[int(y)]] for x, y in zip(data.data, labels, strict=True)]
    path = _write(tmp_path_factory.mktemp("labels") / "digits.csv", header, rows)
    return path, {int(i) + 1 for i in flipped}


@pytest.fixture(scope="module")
def scanned(digits: tuple[Path, set[int]]) -> LabelScanResult:
    return label_scan(digits[0], label="digit")


def _precision_recall(flagged: set[int], flipped: set[int]) -> tuple[float, float]:
    hits = len(flagged & flipped)
    return hits / len(flagged), hits / len(flipped)


def test_library_finds_the_flipped_rows(digits: tuple[Path, set[int]], scanned: LabelScanResult) -> None:
    _, flipped = digits
    assert scanned.rows == 1797
    assert scanned.features == tuple(f"px{j}" for j in range(64))
    assert set(scanned.classes) == set(WORDS)
    flagged = {issue.row for issue in scanned.issues}
    precision, recall = _precision_recall(flagged, flipped)
    assert precision >= 0.9
    assert recall >= 0.9
    top = scanned.issues[0]
    assert top.given in WORDS
    assert top.suggested in WORDS
    assert top.given != top.suggested
    assert repr(top.given) in top.reason
    assert repr(top.suggested) in top.reason
    scores = [issue.score for issue in scanned.issues]
    assert scores == sorted(scores)


def test_rule_and_finding(scanned: LabelScanResult) -> None:
    rule = LABEL_RULES[0]
    assert [(r.id, r.name, r.severity.label) for r in LABEL_RULES] == [
        ("GAR-DATA-301", "label-issues", "medium"),
        ("GAR-DATA-302", "conflicting-duplicates", "medium"),
        ("GAR-DATA-303", "outlier-rows", "low"),
    ]
    assert all(rule_problems(r) == [] for r in LABEL_RULES)
    assert set(rule.controls) == {"ISO-42001:A.7.4", "EU-AI-Act:Art-10", "NIST-AI-RMF:MEASURE-2.9"}
    asset = Asset(kind=AssetKind.DATASET, locator="digits.csv")
    (finding,) = [f for f in label_findings(scanned, asset) if f.rule.id == "GAR-DATA-301"]
    assert finding.rule.id == "GAR-DATA-301"
    top = scanned.issues[0]
    assert f"row {top.row}: {top.given!r} → {top.suggested!r}" in finding.message
    assert f"{len(scanned.issues)} of 1,797 rows" in finding.message
    evidence = {e.to_dict()["name"]: e.to_dict()["value"] for e in finding.evidence}
    assert evidence["label_issue_count"] == len(scanned.issues)
    assert evidence["label_issue_share"] == pytest.approx(len(scanned.issues) / 1797, abs=1e-6)
    clean = LabelScanResult(
        path=scanned.path,
        label="digit",
        features=scanned.features,
        classes=scanned.classes,
        rows=scanned.rows,
        skipped_rows=0,
        method=scanned.method,
        estimated_issue_count=0,
        issues=(),
    )
    assert label_findings(clean, asset) == []


def test_imputation_and_text_columns(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rows = []
    for i in range(60):
        y = i % 2
        x = rng.normal(loc=3.0 * y, size=2)
        rows.append([f"id-{i}", "" if i == 7 else f"{x[0]:.3f}", f"{x[1]:.3f}", ["no", "yes"][y]])
    path = _write(tmp_path / "small.csv", ["name", "a", "b", "y"], rows)
    result = label_scan(path, label="y")
    assert result.features == ("a", "b")
    assert result.classes == ("no", "yes")
    assert any("'name' is not numeric" in n for n in result.notes)
    assert any("'a': 1 empty values imputed" in n for n in result.notes)
    with pytest.raises(UsageError, match=r"'name'.*row 1"):
        label_scan(path, label="y", features=["name", "a"])
    assert label_scan(path, label="y", exclude=["b"]).features == ("a",)
    with pytest.raises(UsageError, match="'nope'"):
        label_scan(path, label="nope")


def make_app() -> typer.Typer:
    app = typer.Typer()
    app.command("labels")(data_labels.labels)
    app.command("other")(lambda: None)  # two commands keep Typer from collapsing to a single one
    return app


def run(*args: str) -> tuple[int, str, str]:
    """Run the command the way ``garrison.cli.main.main`` does: a GarrisonError becomes its exit code."""
    result = CliRunner().invoke(make_app(), ["labels", *args])
    if isinstance(result.exception, GarrisonError):
        return result.exception.exit_code, result.stdout, result.exception.diagnostics()
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_cli_console_default_fail_on_is_high(workdir: Path, digits: tuple[Path, set[int]]) -> None:
    path, flipped = digits
    code, out, _ = run(str(path), "--label", "digit", "--no-store")
    assert code == 0  # GAR-DATA-301 is medium; the default fail_on is high
    assert "rows probably mislabelled in column 'digit'" in out
    assert "FLAGGED" in out
    table = [cells for line in out.splitlines() if len(cells := line.split()) > 2 and cells[1] in WORDS]
    assert 1 <= len(table) <= 20
    shown = {int(cells[0]) for cells in table}
    assert len(shown & flipped) >= 0.9 * len(shown)
    assert all(cells[1] in WORDS and cells[2] in WORDS for cells in table)


def test_cli_json_fail_on_medium_and_store(workdir: Path, digits: tuple[Path, set[int]]) -> None:
    path, flipped = digits
    code, out, _ = run(
        str(path), "--label", "digit", "--format", "json", "--fail-on", "medium",
        "--db", str(workdir / "g.db"),
    )  # fmt: skip
    assert code == 1
    assert (workdir / "g.db").exists()
    body = json.loads(out)
    assert body["label"] == "digit"
    assert body["rows"] == 1797
    assert body["method"] == "prune_by_margin"
    assert body["issue_count"] == len(body["issues"])
    assert set(body["classes"]) == set(WORDS)
    flagged = {issue["row"] for issue in body["issues"]}
    precision, recall = _precision_recall(flagged, flipped)
    assert precision >= 0.9
    assert recall >= 0.9
    first = body["issues"][0]
    assert set(first) == {
        "row", "given", "suggested", "given_probability", "suggested_probability", "score", "reason",
    }  # fmt: skip
    assert first["given"] in WORDS
    assert first["suggested"] in WORDS
    (finding,) = [f for f in body["report"]["findings"] if f["rule"]["id"] == "GAR-DATA-301"]
    assert f"row {first['row']}: {first['given']!r}" in finding["message"]


def test_cli_usage_errors(workdir: Path, digits: tuple[Path, set[int]]) -> None:
    path, _ = digits
    rows = [[str(i), "x" if i == 3 else str(i * 2), ["a", "b"][i % 2]] for i in range(1, 11)]
    mixed = _write(workdir / "mixed.csv", ["n", "m", "y"], rows)
    code, _, message = run(str(mixed), "--label", "y", "--no-store")
    assert code == 2
    assert "'m'" in message
    assert "row 3" in message
    code, _, message = run(str(path), "--label", "digit", "--max-rows", "1000", "--no-store")
    assert code == 2
    assert "more than 1,000" in message
    assert run(str(path), "--label", "digit", "--method", "nope", "--no-store")[0] == 2
    assert run(str(path), "--label", "nope", "--no-store")[0] == 2
    assert run(str(workdir / "missing.csv"), "--label", "digit", "--no-store")[0] == 3
