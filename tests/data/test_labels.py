"""Label issues by confident learning: flipped and clean digits, small hand-made cases, input errors."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.datasets import load_digits

from garrison.core.errors import InputError, UsageError
from garrison.data.labels import METHODS, find_label_issues, out_of_sample_probabilities

FLIP_SHARE = 0.10
SEED = 0


def flip_labels(
    labels: npt.NDArray[np.int64], *, share: float, seed: int, classes: int
) -> tuple[npt.NDArray[np.int64], set[int]]:
    """Give ``share`` of the rows, chosen at random, a different label drawn uniformly at random."""
    rng = np.random.default_rng(seed)
    chosen = rng.choice(labels.shape[0], round(share * labels.shape[0]), replace=False)
    noisy = labels.copy()
    noisy[chosen] = (labels[chosen] + rng.integers(1, classes, chosen.size)) % classes
    return noisy, {int(i) for i in chosen}


@pytest.fixture(scope="module")
def digits() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    features, labels = load_digits(return_X_y=True)
    return features, labels.astype(np.int64)


@pytest.fixture(scope="module")
def noisy_digits(
    digits: tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], set[int]]:
    features, labels = digits
    noisy, flipped = flip_labels(labels, share=FLIP_SHARE, seed=SEED, classes=10)
    return noisy, out_of_sample_probabilities(features, noisy, seed=SEED), flipped


def precision_recall(found: set[int], truth: set[int]) -> tuple[float, float]:
    hits = len(found & truth)
    return hits / max(len(found), 1), hits / len(truth)


def test_default_method_finds_flipped_digits(
    noisy_digits: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], set[int]],
) -> None:
    noisy, probs, flipped = noisy_digits
    result = find_label_issues(noisy, probs)
    precision, recall = precision_recall(set(result.indices), flipped)
    # the issue's acceptance: precision and recall of the flagged samples at least 0.90 each
    assert precision >= 0.90, precision
    assert recall >= 0.90, recall
    assert 2 * precision * recall / (precision + recall) >= 0.90
    # the joint's estimate of the number of errors is near the truth (180 flips)
    assert abs(result.estimated_issue_count - len(flipped)) <= 0.15 * len(flipped)


@pytest.mark.parametrize("method", METHODS)
def test_every_method_is_useful_on_flipped_digits(
    noisy_digits: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], set[int]], method: str
) -> None:
    noisy, probs, flipped = noisy_digits
    precision, recall = precision_recall(set(find_label_issues(noisy, probs, method=method).indices), flipped)  # type: ignore[arg-type]
    assert precision >= 0.80, (method, precision)
    assert recall >= 0.65, (method, recall)


def test_issues_are_ranked_and_explained(
    noisy_digits: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], set[int]],
) -> None:
    noisy, probs, _ = noisy_digits
    result = find_label_issues(noisy, probs)
    scores = [issue.score for issue in result.issues]
    assert scores == sorted(scores)
    top = result.issues[0]
    assert top.given_label == noisy[top.index]
    assert top.suggested_label != top.given_label
    assert top.suggested_probability > top.given_probability
    assert top.reason.startswith(f"labelled {top.given_label}, model says {top.suggested_label} with p=")
    assert "threshold" in top.reason
    assert result.mask().sum() == len(result.issues)
    assert sum(map(sum, result.noise_matrix)) == pytest.approx(1.0)
    by_confidence = find_label_issues(noisy, probs, rank_by="self_confidence")
    confidences = [issue.given_probability for issue in by_confidence.issues]
    assert confidences == sorted(confidences)
    assert set(by_confidence.indices) == set(result.indices)


def test_clean_digits_get_few_flags(digits: tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]) -> None:
    features, labels = digits
    probs = out_of_sample_probabilities(features, labels, seed=SEED)
    result = find_label_issues(labels, probs)
    # what is left are digits the linear model gets confidently wrong: 6 of 1,797 on this seed
    assert len(result.issues) <= 0.01 * labels.shape[0], len(result.issues)


def test_hand_made_joint() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8], [0.3, 0.7], [0.1, 0.9]])
    result = find_label_issues(labels, probs, method="confident_joint")
    # t_0 = mean(0.9, 0.8, 0.1) = 0.6, t_1 = mean(0.8, 0.7, 0.9) = 0.8
    assert result.thresholds == pytest.approx((0.6, 0.8))
    assert result.confident_joint == ((2, 1), (0, 2))
    assert result.noise_matrix[0] == pytest.approx((1 / 3, 1 / 6))
    assert result.indices == (2,)
    assert result.estimated_issue_count == 1
    issue = result.issues[0]
    assert (issue.given_label, issue.suggested_label) == (0, 1)
    assert issue.score == pytest.approx(0.1 - 0.9)
    assert issue.reason == (
        "labelled 0, model says 1 with p=0.90; p(0)=0.10 against class 0 threshold 0.60, "
        "class 1 threshold 0.80"
    )
    for method in METHODS:
        assert find_label_issues(labels, probs, method=method).indices == (2,)  # type: ignore[arg-type]


def test_deterministic(digits: tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]) -> None:
    features, labels = digits[0][:400], digits[1][:400]
    noisy, _ = flip_labels(labels, share=FLIP_SHARE, seed=3, classes=10)
    first = out_of_sample_probabilities(features, noisy, seed=1, folds=3)
    second = out_of_sample_probabilities(features, noisy, seed=1, folds=3)
    np.testing.assert_array_equal(first, second)
    assert find_label_issues(noisy, first) == find_label_issues(noisy, second)


def test_class_missing_from_folds() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 3))
    labels = np.array([0] * 19 + [1] * 19 + [2] * 2)
    probs = out_of_sample_probabilities(features, labels, folds=5, class_count=4)
    assert probs.shape == (40, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert np.all(probs[:, 3] == 0.0)
    find_label_issues(labels, probs)  # a class nobody is labelled with is allowed


@pytest.mark.parametrize(
    ("labels", "probs", "error", "words"),
    [
        ([0, 1], [[0.5, 0.5]], UsageError, "2 labels for 1 rows"),
        ([0, 2], [[0.5, 0.5], [0.5, 0.5]], UsageError, "labels must lie in 0 .. 1"),
        ([0, -1], [[0.5, 0.5], [0.5, 0.5]], UsageError, "labels must lie in"),
        (["a", "b"], [[0.5, 0.5], [0.5, 0.5]], UsageError, "labels must be integers"),
        ([0.5, 1.0], [[0.5, 0.5], [0.5, 0.5]], UsageError, "labels must be integers"),
        ([[0, 1]], [[0.5, 0.5]], UsageError, "1-D"),
        ([0, 1], [0.5, 0.5], UsageError, "2-D"),
        ([0], [[1.0]], UsageError, "at least 2 class columns"),
        ([0, 1], [[0.5, 0.6], [0.5, 0.5]], InputError, "row 0 sums to 1.1000"),
        ([0, 1], [[2.0, -1.0], [0.5, 0.5]], InputError, "must lie in [0, 1]"),
        ([0, 1], [[np.nan, 0.5], [0.5, 0.5]], InputError, "NaN"),
        ([0, 1], [["x", "y"], [0.5, 0.5]], InputError, "not numeric"),
    ],
)
def test_input_errors(labels: object, probs: object, error: type[Exception], words: str) -> None:
    with pytest.raises(error) as caught:
        find_label_issues(labels, probs)
    assert words in str(caught.value)


def test_argument_errors() -> None:
    with pytest.raises(UsageError, match="unknown method 'vote'"):
        find_label_issues([0, 1], [[0.5, 0.5], [0.5, 0.5]], method="vote")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="unknown rank_by"):
        find_label_issues([0, 1], [[0.5, 0.5], [0.5, 0.5]], rank_by="loss")  # type: ignore[arg-type]
    features = np.zeros((4, 2))
    with pytest.raises(UsageError, match="folds must be an integer of at least 2"):
        out_of_sample_probabilities(features, [0, 1, 0, 1], folds=1)
    with pytest.raises(UsageError, match="cannot be split into 5 folds"):
        out_of_sample_probabilities(features, [0, 1, 0, 1])
    with pytest.raises(UsageError, match="2-D feature matrix"):
        out_of_sample_probabilities(np.zeros(4), [0, 1, 0, 1], folds=2)
    with pytest.raises(UsageError, match="no predict_proba"):
        out_of_sample_probabilities(features, [0, 1, 0, 1], folds=2, model=object())
    with pytest.raises(InputError, match="NaN or infinite"):
        out_of_sample_probabilities(np.full((4, 2), np.nan), [0, 1, 0, 1], folds=2)
