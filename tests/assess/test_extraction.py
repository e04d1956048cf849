"""Model extraction (copycat): fidelity curves, output modes, exact query counting, findings."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from garrison.assess.extraction import ExtractionReport, run_extraction
from garrison.assess.extraction_rules import (
    EXT_RULES,
    MODEL_EXTRACTABLE,
    ExtractionThresholds,
    extraction_findings,
)
from garrison.core.assets import Asset, AssetKind
from garrison.core.errors import ConfigError, InputError
from garrison.core.rules import rule_problems

ASSET = Asset(kind=AssetKind.MODEL, locator="models/victim.joblib")
FAST = {"min_steps": 150, "epochs": 20}


@pytest.fixture(scope="module")
def split(digits: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Attacker's pool: training rows 600..1199 (the victims train on 0..599); test: the attack rows."""
    x_train, _, x_test, y_test = digits
    return x_train[600:1200], x_test, y_test


class CountingEstimator:
    """A black-box scikit-learn-like classifier that records every row it is asked about."""

    def __init__(self, inner: Any, *, labels_only: bool = False) -> None:
        self.inner = inner
        self.classes_ = inner.classes_
        self.seen: list[np.ndarray] = []
        if not labels_only:
            self.predict_proba = self._predict_proba

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.seen.append(np.array(x))
        return np.asarray(self.inner.predict(x))

    def _predict_proba(self, x: np.ndarray) -> np.ndarray:
        self.seen.append(np.array(x))
        return np.asarray(self.inner.predict_proba(x))

    @property
    def rows(self) -> int:
        return sum(len(s) for s in self.seen)


def test_fidelity_rises_with_the_query_budget(logreg: LogisticRegression, split: Any) -> None:
    pool, tx, ty = split
    report = run_extraction(logreg, pool, tx, ty, budgets=(20, 400), seed=0, **FAST)
    assert isinstance(report, ExtractionReport)
    assert [p.queries for p in report.points] == [20, 400]
    low, high = report.points
    assert high.fidelity >= low.fidelity + 0.1
    assert high.fidelity > 0.85
    assert high.accuracy > 0.8
    assert report.victim_output_kind == "logits"
    assert report.conversion == "softmax of the logits"
    assert report.soft_labels
    assert report.output == "probabilities"
    assert report.curve() == ((20, low.fidelity), (400, high.fidelity))


def test_label_only_output_lowers_fidelity_at_equal_budget(logreg: LogisticRegression, split: Any) -> None:
    """At 30 queries, one-hot labels teach the student less than probabilities (mean of four seeds:
    a single seed can go either way, the mean gap is about 10 points).
    """
    pool, tx, ty = split
    gaps = []
    for seed in range(4):
        probs = run_extraction(logreg, pool, tx, ty, budgets=(30,), seed=seed, **FAST)
        labels = run_extraction(logreg, pool, tx, ty, budgets=(30,), output="label", seed=seed, **FAST)
        assert labels.output == "label"
        assert not labels.soft_labels
        assert labels.conversion == "one-hot of the predicted label"
        assert probs.queries == labels.queries == 30
        gaps.append(probs.points[0].fidelity - labels.points[0].fidelity)
    assert np.mean(gaps) > 0.04


def test_queries_are_counted_exactly_and_pool_rows_sent_once(logreg: LogisticRegression, split: Any) -> None:
    pool, tx, ty = split
    victim = CountingEstimator(logreg)
    report = run_extraction(victim, pool, tx, ty, budgets=(50, 120, 300), seed=3, **FAST)
    assert report.queries == 300
    assert report.evaluation_queries == len(tx)
    assert victim.rows == report.queries + report.evaluation_queries
    sent = np.concatenate(victim.seen[1:])  # the first call labels the test set
    assert len(sent) == 300
    assert len({row.tobytes() for row in sent}) == 300
    pool_rows = {row.tobytes() for row in pool}
    assert all(row.tobytes() in pool_rows for row in sent)


def test_max_queries_is_enforced(logreg: LogisticRegression, split: Any) -> None:
    pool, tx, ty = split
    victim = CountingEstimator(logreg)
    report = run_extraction(victim, pool, tx, ty, budgets=(40, 100, 500), max_queries=100, **FAST)
    assert [p.queries for p in report.points] == [40, 100]
    assert victim.rows - len(tx) == 100 == report.queries
    assert any("500 skipped" in n for n in report.notes)
    with pytest.raises(InputError, match="max_queries"):
        run_extraction(logreg, pool, tx, ty, budgets=(500,), max_queries=100)


def test_budget_above_the_pool_is_clipped(logreg: LogisticRegression, split: Any) -> None:
    pool, tx, ty = split
    report = run_extraction(logreg, pool[:80], tx, ty, budgets=(50, 100, 200), **FAST)
    assert [p.queries for p in report.points] == [50, 80]
    assert report.queries == 80
    assert any("clipped" in n for n in report.notes)


def test_logits_victim_is_converted_like_its_softmax_twin(mlp: torch.nn.Sequential, split: Any) -> None:
    pool, tx, ty = split
    twin = torch.nn.Sequential(mlp, torch.nn.Softmax(dim=1))
    a = run_extraction(mlp, pool, tx, ty, budgets=(60, 200), seed=0, **FAST)
    b = run_extraction(twin, pool, tx, ty, budgets=(60, 200), seed=0, **FAST)
    assert a.victim_output_kind == "logits"
    assert a.conversion == "softmax of the logits"
    assert b.victim_output_kind == "probabilities"
    assert b.conversion == "the probabilities as returned"
    for pa, pb in zip(a.points, b.points, strict=True):
        assert abs(pa.fidelity - pb.fidelity) <= 1 / len(tx) + 1e-9
    assert a.points[-1].fidelity > 0.8


def test_top1_output_keeps_one_score_and_spreads_the_rest(logreg: LogisticRegression, split: Any) -> None:
    pool, tx, ty = split
    report = run_extraction(logreg, pool, tx, ty, budgets=(60,), output="top1", **FAST)
    assert report.output == "top1"
    assert report.soft_labels
    assert "top-1 kept" in report.conversion
    with pytest.raises(InputError, match="output mode"):
        run_extraction(logreg, pool, tx, ty, output="logits")


def test_label_only_victim_is_attacked_with_labels(logreg: LogisticRegression, split: Any) -> None:
    pool, tx, ty = split
    victim = CountingEstimator(logreg, labels_only=True)
    report = run_extraction(victim, pool, tx, ty, budgets=(60,), output="probabilities", **FAST)
    assert report.victim_output_kind == "labels"
    assert report.output == "label"
    assert not report.soft_labels
    assert any("labels only" in n for n in report.notes)


def test_same_seed_same_curve_and_custom_student(logreg: LogisticRegression, split: Any) -> None:
    pool, tx, ty = split
    a = run_extraction(logreg, pool, tx, ty, budgets=(50, 150), seed=7, **FAST)
    b = run_extraction(logreg, pool, tx, ty, budgets=(50, 150), seed=7, **FAST)
    assert a.curve() == b.curve()

    def knn_student(x: np.ndarray, soft_y: np.ndarray) -> Any:
        from sklearn.neighbors import KNeighborsClassifier

        return KNeighborsClassifier(n_neighbors=1).fit(x, soft_y.argmax(1))

    c = run_extraction(logreg, pool, tx, ty, budgets=(400,), student=knn_student)
    assert c.student == "knn_student"
    assert c.points[0].fidelity > 0.7


def test_findings_follow_the_policy(logreg: LogisticRegression, split: Any) -> None:
    pool, tx, ty = split
    report = run_extraction(logreg, pool, tx, ty, budgets=(20, 400), seed=0, **FAST)
    found = extraction_findings(report, ASSET, ExtractionThresholds(max_fidelity=0.8, max_queries=1000))
    assert len(found) == 1
    f = found[0]
    assert f.rule is MODEL_EXTRACTABLE
    assert "400 queries" in f.message
    assert "probabilities exposed" in f.message
    assert extraction_findings(report, ASSET, ExtractionThresholds(max_fidelity=0.8, max_queries=100)) == []
    assert extraction_findings(report, ASSET, ExtractionThresholds(max_fidelity=1.0)) == []
    again = run_extraction(logreg, pool, tx, ty, budgets=(20, 400), seed=1, **FAST)
    refound = extraction_findings(again, ASSET, ExtractionThresholds(max_fidelity=0.8))
    assert [g.fingerprint for g in refound] == [f.fingerprint]


def test_rules_and_thresholds_are_valid() -> None:
    for rule in EXT_RULES:
        assert rule_problems(rule) == []
    with pytest.raises(ConfigError):
        ExtractionThresholds(max_fidelity=1.5)
    with pytest.raises(ConfigError):
        ExtractionThresholds(max_queries=0)
    with pytest.raises(ConfigError, match="unknown"):
        ExtractionThresholds.from_mapping({"max_fidelity": 0.9, "budget": 3})
    assert ExtractionThresholds.from_mapping({"max_queries": 500}).to_dict() == {
        "max_fidelity": 0.9,
        "max_queries": 500,
    }


def test_uncertainty_sampling_queries_other_rows_within_the_budget(
    logreg: LogisticRegression, split: Any
) -> None:
    pool, tx, ty = split
    runs = {}
    for sampling in ("random", "uncertainty"):
        victim = CountingEstimator(logreg)
        report = run_extraction(victim, pool, tx, ty, budgets=(40, 100), sampling=sampling, **FAST)
        assert report.sampling == sampling
        sent = np.concatenate(victim.seen[1:])
        assert len(sent) == report.queries == 100
        assert len({row.tobytes() for row in sent}) == 100
        runs[sampling] = sent
    assert np.array_equal(runs["random"][:40], runs["uncertainty"][:40])
    assert not np.array_equal(runs["random"][40:], runs["uncertainty"][40:])
    with pytest.raises(InputError, match="sampling"):
        run_extraction(logreg, pool, tx, ty, sampling="greedy")


def test_sklearn_student_missing_classes_keeps_the_victims_labels(
    logreg: LogisticRegression, split: Any
) -> None:
    """Eight queries cannot show all ten classes; the student's labels must still be the victim's."""
    pool, tx, ty = split
    trained: list[Any] = []

    def knn_student(x: np.ndarray, soft_y: np.ndarray) -> Any:
        from sklearn.neighbors import KNeighborsClassifier

        trained.append(KNeighborsClassifier(n_neighbors=1).fit(x, soft_y.argmax(1)))
        return trained[-1]

    report = run_extraction(logreg, pool, tx, ty, budgets=(8,), student=knn_student, seed=1)
    (knn,) = trained
    assert len(knn.classes_) < 10
    expected = float(np.mean(knn.predict(tx) == logreg.predict(tx)))
    assert report.points[0].fidelity == pytest.approx(expected)
    assert report.points[0].accuracy == pytest.approx(float(np.mean(knn.predict(tx) == ty)))
