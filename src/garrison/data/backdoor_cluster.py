"""Splitting one class in two and deciding whether either half is a backdoor's poison.

Both backdoor methods end in the same question: a class's samples have been split into two halves
(2-means on PCA-reduced features, or a cut along the top singular vector), and one half may be poison
that carries a trigger. :func:`judge_split` answers it from one of two kinds of evidence:

* the trigger transplant (given the model and the inputs, see
  :func:`garrison.data.backdoor.transplant_rates`): add the difference between the two halves' mean
  inputs to samples of other classes and count how often the model then predicts this class. A
  trigger is what makes a backdoor work on any input, so the poisoned half's difference carries the
  trigger and moves most other samples into the target class, while the difference between two
  ordinary styles of a clean class moves almost none (tests/data/test_backdoor.py pins both);
* size and separation alone (Chen et al. 2018), without a model: a half that is small and well
  apart from the rest. This misses poison that makes up half of its class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from garrison.core.errors import UsageError


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitJudgement:
    """The outcome of judging one class's two-way split."""

    suspicious: np.ndarray
    """Boolean mask over the class's samples: members of the flagged half (all False if none)."""
    scores: np.ndarray
    """Per-sample suspicion: distance from the clean half's centre over its median distance."""
    statistic: float
    """The deciding value: the transplant rate or the silhouette (0 when nothing was flagged)."""
    reason: str
    """Why the half was flagged (empty when none was)."""
    detail: str
    """Sizes, silhouette and persistence of both halves, in words."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitRule:
    """The thresholds :func:`judge_split` applies."""

    min_transplant: float = 0.5
    """With the transplant test: the share of other classes' samples that a half's difference must
    move into this class for the half to be poison."""
    max_size: float = 0.35
    """Without it: a half under this share of the class may be poison..."""
    min_silhouette: float = 0.4
    """...when the split's silhouette is at least this."""

    def __post_init__(self) -> None:
        for name in ("min_transplant", "max_size", "min_silhouette"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"SplitRule.{name} must be between 0 and 1, got {value}")


def two_means(reduced: np.ndarray, seed: int) -> np.ndarray:
    """Assign each row of ``reduced`` to one of two clusters (k-means with ten restarts)."""
    from sklearn.cluster import KMeans  # type: ignore[import-untyped]

    if reduced.shape[1] == 1:
        return _split_line(reduced[:, 0])
    return np.asarray(KMeans(n_clusters=2, n_init=10, random_state=seed).fit_predict(reduced))


def _split_line(values: np.ndarray) -> np.ndarray:
    """The exact two-means cut of one dimension: the threshold that minimises within-group variance."""
    order = np.argsort(values, kind="stable")
    v = values[order]
    n = v.size
    left = np.cumsum(v)[:-1]
    left_sq = np.cumsum(v * v)[:-1]
    counts = np.arange(1, n)
    right, right_sq = v.sum() - left, (v * v).sum() - left_sq
    within = (left_sq - left * left / counts) + (right_sq - right * right / (n - counts))
    cut = int(np.argmin(within)) + 1 if n > 1 else n
    assign = np.zeros(n, dtype=np.int64)
    assign[order[cut:]] = 1
    return assign


def judge_split(
    feats: np.ndarray,
    reduced: np.ndarray,
    assign: np.ndarray,
    rates: np.ndarray | None,
    rule: SplitRule,
    *,
    seed: int,
) -> SplitJudgement:
    """Decide whether one half of a class's split is poison, and score every sample.

    ``rates`` holds the two halves' transplant rates, or is None when no model was given.
    """
    from sklearn.metrics import silhouette_score  # type: ignore[import-untyped]

    n = assign.size
    sizes = np.bincount(assign, minlength=2)
    none = np.zeros(n, dtype=bool)
    if sizes.min() < 2:
        return SplitJudgement(
            suspicious=none, scores=np.zeros(n), statistic=0.0, reason="", detail="one group"
        )
    silhouette = float(silhouette_score(reduced, assign, random_state=seed))
    detail = f"halves of {sizes[0]} and {sizes[1]}, silhouette {silhouette:.2f}"
    chosen, statistic, reason = -1, 0.0, ""
    if rates is not None:
        detail += f", transplant rates {rates[0]:.0%} and {rates[1]:.0%}"
        top = int(np.argmax(rates))
        if rates[top] >= rule.min_transplant:
            chosen, statistic = top, float(rates[top])
            reason = (
                f"a group of {sizes[top]} of {n} samples whose difference from the rest of the class, "
                f"added to other classes' samples, makes the model predict this class for "
                f"{rates[top]:.0%} of them (the other half's: {rates[1 - top]:.0%}): a transferable trigger"
            )
    else:
        small = int(np.argmin(sizes))
        if sizes[small] / n < rule.max_size and silhouette >= rule.min_silhouette:
            chosen, statistic = small, silhouette
            reason = (
                f"small group ({sizes[small] / n:.0%} of the class) well apart from the rest "
                f"(silhouette {silhouette:.2f})"
            )
    if chosen < 0:
        return SplitJudgement(suspicious=none, scores=np.zeros(n), statistic=0.0, reason="", detail=detail)
    clean = feats[assign != chosen]
    centre = clean.mean(axis=0)
    typical = float(np.median(np.linalg.norm(clean - centre, axis=1))) or 1e-12
    scores = np.linalg.norm(feats - centre, axis=1) / typical
    return SplitJudgement(
        suspicious=assign == chosen, scores=scores, statistic=statistic, reason=reason, detail=detail
    )
