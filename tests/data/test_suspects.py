"""Duplicates with conflicting labels and outliers (``garrison.data.suspects``), and in ``data labels``."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")

from garrison.cli.main import main
from garrison.core.errors import InputError, UsageError
from garrison.data.suspects import conflicting_duplicates, outliers


def planted(seed: int) -> tuple[np.ndarray, np.ndarray, set[int], set[int]]:
    """Digits plus 20 exact and 20 near copies under another label, and 20 rows of noise.

    Returns the features, labels, the rows of every copy and its original, and the noise rows.
    """
    from sklearn.datasets import load_digits  # type: ignore[import-untyped]

    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    n = len(x)
    src = rng.choice(n, 40, replace=False)
    copies = x[src].copy()
    for row in copies[20:]:  # near copies: three ink pixels one grey level lighter or darker
        ink = np.flatnonzero((row > 0) & (row < 16))
        row[rng.choice(ink, 3, replace=False)] += rng.choice([-1, 1], 3)
    noise = rng.uniform(0, 16, size=(20, 64))
    features = np.vstack([x, copies, noise])
    labels = np.concatenate([y, (y[src] + rng.integers(1, 10, 40)) % 10, rng.integers(0, 10, 20)])
    return features, labels, set(src.tolist()) | set(range(n, n + 40)), set(range(n + 40, n + 60))


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, set[int], set[int]]:
    return planted(0)


def test_conflicting_duplicates_are_found(digits: Any) -> None:
    x, y, copied, _ = digits
    groups = conflicting_duplicates(x, y)
    flagged = {r for g in groups for r in g.rows}
    assert flagged <= copied  # precision 1
    assert len(flagged) >= 0.9 * len(copied)
    assert sum(g.exact for g in groups) == 20
    for group in groups:
        assert len(set(group.labels)) > 1
        assert list(group.rows) == sorted(group.rows)
        assert (group.distance == 0) == group.exact
    assert [len(g.rows) for g in groups] == sorted((len(g.rows) for g in groups), reverse=True)


def test_same_label_copies_and_clean_data_are_not_reported(digits: Any) -> None:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    assert conflicting_duplicates(x, y) == []
    assert 0 < len(outliers(x, y)) <= 0.01 * len(x)  # a few real digits are far out: for review
    doubled = np.vstack([x, x[:50]])
    assert conflicting_duplicates(doubled, np.concatenate([y, y[:50]])) == []  # same labels: fine
    exact_only = conflicting_duplicates(digits[0], digits[1], near=False)
    assert all(g.exact for g in exact_only)
    assert len(exact_only) == 20


def test_outliers_are_the_noise_rows(digits: Any) -> None:
    x, y, _, noise = digits
    found = outliers(x, y)
    assert {o.row for o in found} == noise
    assert all(o.score >= 3.0 for o in found)
    assert [o.score for o in found] == sorted((o.score for o in found), reverse=True)
    assert len(outliers(x, y, threshold=1.5)) > len(found)


def test_bad_input() -> None:
    with pytest.raises(InputError, match="at least two rows"):
        outliers(np.zeros((1, 3)), np.zeros(1, dtype=int))
    with pytest.raises(InputError, match="NaN"):
        conflicting_duplicates(np.full((4, 2), np.nan), np.zeros(4, dtype=int))
    with pytest.raises(InputError, match="integers"):
        outliers(np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(UsageError):
        conflicting_duplicates(np.zeros((4, 2)), np.zeros(4, dtype=int), radius=-1)
    with pytest.raises(UsageError):
        outliers(np.zeros((4, 2)), np.zeros(4, dtype=int), threshold=1.0)
    # constant columns and identical rows do not divide by zero
    same = np.ones((5, 3))
    (group,) = conflicting_duplicates(same, np.array([0, 0, 1, 1, 1]))
    assert group.exact
    assert outliers(same, np.zeros(5, dtype=int)) == []


def test_data_labels_reports_them(digits: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x, y, copied, noise = digits
    path = tmp_path / "train.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*(f"px{j}" for j in range(64)), "digit"])
        writer.writerows([*(f"{v:g}" for v in row), int(label)] for row, label in zip(x, y, strict=True))
    code = main(["data", "labels", str(path), "--label", "digit", "--format", "json", "--no-store"])
    body = json.loads(capsys.readouterr().out)
    assert code == 0  # medium and low findings; the default --fail-on is high
    rules = [f["rule"]["id"] for f in body["report"]["findings"]]
    assert rules == ["GAR-DATA-301", "GAR-DATA-302", "GAR-DATA-303"]
    duplicated = {r - 1 for g in body["duplicate_conflicts"] for r in g["rows"]}  # CSV row 1 is index 0
    assert duplicated <= copied
    assert {o["row"] - 1 for o in body["outliers"]} == noise
    code = main(
        ["data", "labels", str(path), "--label", "digit", "--no-duplicates", "--no-outliers", "--no-store"]
    )
    out = capsys.readouterr().out
    assert "duplicate rows with conflicting labels" not in out
    assert "outlying rows" not in out
