"""The numerical core of the membership-inference attacks: ROC metrics, model confidences, shadow
models and the likelihood-ratio attack (LiRA, Carlini et al., "Membership Inference Attacks From First
Principles", IEEE S&P 2022).

Everything here works on numpy arrays; :mod:`garrison.assess.privacy` builds the report. Scores are
oriented so that *higher means "more likely a member"*.

- :func:`roc` and :func:`membership_metrics`: ROC curve with ties handled as one threshold (identical to
  ``sklearn.metrics.roc_curve`` without point dropping), AUC by the trapezoid rule, the best balanced
  accuracy over all thresholds, and TPR at a fixed FPR as the LiRA paper reads it (the highest TPR of
  any threshold whose FPR does not exceed it).
- :func:`true_class_logit`: φ = log p_y − log(1 − p_y), the logit-scaled confidence of the true class,
  computed from log-probabilities as ``log p_y − logsumexp(log p_j, j ≠ y)`` so that confidences near 1
  keep their precision (the paper's "stable" form). Probabilities are floored at :data:`PROB_FLOOR`
  (:data:`PROBA_FLOOR` for vote-share probabilities such as a forest's), so p = 1 gives a finite φ.
- :func:`train_shadows`: k models from ``train_fn`` on inclusion masks where every pool example is IN
  for (about) the same number of shadows, the paper's balanced sampling.
- :func:`lira_online` and :func:`lira_offline`: Gaussian fits of φ over the IN and OUT shadows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from garrison.assess.adapters import SklearnModel, as_model, to_numpy

PROB_FLOOR = 1e-12
"""Smallest probability taken into a log: p = 0 (a forest's unseen class) reads as this."""

PROBA_FLOOR = 1e-3
"""Floor for a model read through ``predict_proba`` without logits (forests, trees, k-NN): their
probabilities are vote shares and p = 1 is common, so a tight floor makes φ bimodal (a huge value for
every p = 1) and the Gaussian fits poor. Measured on a 20-tree forest (synthetic data, 16 shadows):
online LiRA AUC 0.73 with a floor of 1e-12, 0.89 with 1e-3; 100 trees on digits 0.91 → 0.97."""

VARIANCE_FLOOR = 1e-4
"""Smallest standard deviation of a Gaussian fit of φ (many shadows can agree exactly on a forest)."""

PER_EXAMPLE_MIN_SHADOWS = 64
"""With ``variance="auto"``, the per-example variance is used from this many shadows on (the paper: a
global variance is better with fewer)."""

TrainFn = Callable[[np.ndarray, np.ndarray], Any]
"""``train_fn(x, y) -> model``: trains a fresh model of the target's kind on ``(x, y)``."""


# --- metrics -----------------------------------------------------------------------------------------


def roc(scores: np.ndarray, is_member: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` for ``score >= threshold`` predicting "member", from (0, 0) to (1, 1).

    One point per distinct score (ties move together), thresholds descending; the first threshold is
    ``+inf``. Needs at least one member and one non-member.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    m = np.asarray(is_member, dtype=bool).reshape(-1)
    order = np.argsort(-s, kind="stable")
    s, m = s[order], m[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each distinct score
    tp = np.cumsum(m)[last]
    fp = (last + 1) - tp
    pos, neg = int(m.sum()), int((~m).sum())
    tpr = np.r_[0.0, tp / pos]
    fpr = np.r_[0.0, fp / neg]
    thresholds = np.r_[np.inf, s[last]]
    return fpr, tpr, thresholds


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """Area under the ROC curve by the trapezoid rule (ties count half, as in ``roc_auc_score``)."""
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """The highest TPR of any threshold whose FPR is at most ``target`` (0 if none but the origin)."""
    ok = fpr <= target + 1e-12
    return float(tpr[ok].max())


def balanced_accuracy(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """The best balanced accuracy ``(TPR + TNR) / 2`` over all thresholds (at least 0.5)."""
    return float(np.max((tpr + 1.0 - fpr) / 2.0))


def downsample_roc(fpr: np.ndarray, tpr: np.ndarray, points: int = 101) -> tuple[tuple[float, float], ...]:
    """About ``points`` ``(fpr, tpr)`` pairs for a plot, from (0, 0): FPR on a log grid from 1e-4 and a
    linear grid, each with the best TPR at that FPR (a step curve, so low-FPR behaviour stays visible)."""
    grid = np.unique(np.r_[0.0, np.logspace(-4, 0, points // 2), np.linspace(0, 1, points - points // 2)])
    ok = fpr[None, :] <= grid[:, None] + 1e-12
    best = np.where(ok, tpr[None, :], 0.0).max(axis=1)
    points_ = [(round(float(f), 6), round(float(t), 6)) for f, t in zip(grid, best, strict=True)]
    return ((0.0, 0.0), *points_)


@dataclass(frozen=True, slots=True, kw_only=True)
class Metrics:
    """What :func:`membership_metrics` computes from scores."""

    auc: float
    """Area under the ROC curve."""
    balanced_accuracy: float
    """Best balanced accuracy over thresholds."""
    tpr_at_0_1pct_fpr: float
    """TPR at 0.1% FPR."""
    tpr_at_1pct_fpr: float
    """TPR at 1% FPR."""
    roc: tuple[tuple[float, float], ...]
    """Downsampled ROC points ``(fpr, tpr)``."""


def membership_metrics(scores: np.ndarray, is_member: np.ndarray) -> Metrics:
    """AUC, best balanced accuracy, TPR at 0.1% and 1% FPR and a downsampled ROC of ``scores``."""
    fpr, tpr, _ = roc(scores, is_member)
    return Metrics(
        auc=auc(fpr, tpr),
        balanced_accuracy=balanced_accuracy(fpr, tpr),
        tpr_at_0_1pct_fpr=tpr_at_fpr(fpr, tpr, 0.001),
        tpr_at_1pct_fpr=tpr_at_fpr(fpr, tpr, 0.01),
        roc=downsample_roc(fpr, tpr),
    )


# --- model outputs -----------------------------------------------------------------------------------


def log_probabilities(model: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Float64 log-probabilities (N, C) of ``model`` on ``x`` and, for a scikit-learn model, its
    ``classes_`` (the column labels); ``None`` for a torch model, whose columns are class indices.

    A scikit-learn black box is read through ``predict_proba`` in float64; a model with logits (a torch
    module, an MLP or linear model) through its logits, so confidences near 1 keep their precision.
    """
    adapter = as_model(model)
    if isinstance(adapter, SklearnModel):
        est = adapter.estimator
        classes: np.ndarray | None = adapter.classes
        flat = to_numpy(x).reshape(len(x), -1)
        if hasattr(est, "decision_function") and adapter.has_gradients:
            z = np.asarray(adapter.scores(flat), dtype=np.float64)
        elif hasattr(est, "predict_proba"):
            p = np.asarray(est.predict_proba(flat), dtype=np.float64)
            return np.log(np.maximum(p, PROBA_FLOOR)), classes
        else:
            z = np.log(np.maximum(adapter.probabilities(flat).astype(np.float64), PROB_FLOOR))
    else:
        classes = None
        z = np.asarray(adapter.scores(x), dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return np.maximum(logp, math.log(PROB_FLOOR)), classes


def _columns(y: np.ndarray, classes: np.ndarray | None, n_columns: int) -> np.ndarray:
    """Column of each label (``-1`` where the model never saw the class)."""
    if classes is None:
        idx = y.astype(np.int64)
        return np.where((idx >= 0) & (idx < n_columns), idx, -1)
    pos = np.clip(np.searchsorted(classes, y), 0, len(classes) - 1)
    return np.where(classes[pos] == y, pos, -1)


def true_class_logit(logp: np.ndarray, y: np.ndarray, classes: np.ndarray | None) -> np.ndarray:
    """φ = log p_y − log(1 − p_y) per row (a class the model never saw has p_y at the floor)."""
    col = _columns(np.asarray(y).reshape(-1), classes, logp.shape[1])
    rows = np.arange(len(logp))
    floor = math.log(PROB_FLOOR)
    true = np.where(col >= 0, logp[rows, np.maximum(col, 0)], floor)
    others = logp.copy()
    others[rows[col >= 0], col[col >= 0]] = -np.inf
    top = others.max(axis=1, keepdims=True)
    rest = top[:, 0] + np.log(np.exp(others - top).sum(axis=1))
    rest = np.maximum(rest, floor)
    out: np.ndarray = true - rest
    return out


def true_class_log_prob(logp: np.ndarray, y: np.ndarray, classes: np.ndarray | None) -> np.ndarray:
    """log p_y per row (the negative cross-entropy loss), floored."""
    col = _columns(np.asarray(y).reshape(-1), classes, logp.shape[1])
    out: np.ndarray = np.where(col >= 0, logp[np.arange(len(logp)), np.maximum(col, 0)], math.log(PROB_FLOOR))
    return out


def attack_features(logp: np.ndarray, y: np.ndarray, classes: np.ndarray | None) -> np.ndarray:
    """Per-row features of a model's output for the shadow-model attack's classifier: φ of the true
    class, the largest log-probability, the entropy, and whether the prediction is right."""
    phi = true_class_logit(logp, y, classes)
    top = logp.max(axis=1)
    entropy = -(np.exp(logp) * logp).sum(axis=1)
    col = _columns(np.asarray(y).reshape(-1), classes, logp.shape[1])
    correct = (np.argmax(logp, axis=1) == col).astype(np.float64)
    return np.stack([phi, np.minimum(phi, 0.0), top, entropy, correct], axis=1)


# --- shadow models -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Shadows:
    """Shadow models' outputs on a pool of examples, with who trained on what."""

    phi: np.ndarray
    """(k, n) φ of the true class for every shadow and pool example."""
    features: np.ndarray
    """(k, n, f) :func:`attack_features` for every shadow and pool example."""
    inside: np.ndarray
    """(k, n) bool: the shadow was trained on the example."""
    seconds: float
    """Training and inference time of all shadows."""


def inclusion_masks(n: int, k: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """(k, n) masks: each example is IN for ``round(fraction·k)`` shadows (at least 1, at most k−1 when
    k ≥ 2), chosen at random, so each shadow trains on about ``fraction·n`` examples."""
    per_example = round(fraction * k)
    if k >= 2:
        per_example = min(max(per_example, 1), k - 1)
    ranks = rng.random((k, n)).argsort(axis=0).argsort(axis=0)
    out: np.ndarray = ranks < per_example
    return out


def train_shadows(train_fn: TrainFn, x: np.ndarray, y: np.ndarray, inside: np.ndarray) -> Shadows:
    """Train one model per row of ``inside`` on the pool rows it marks, and score every pool row."""
    start = time.perf_counter()
    k, n = inside.shape
    phis, feats = [], []
    for i in range(k):
        model = train_fn(x[inside[i]], y[inside[i]])
        logp, classes = log_probabilities(model, x)
        phis.append(true_class_logit(logp, y, classes))
        feats.append(attack_features(logp, y, classes))
    return Shadows(
        phi=np.stack(phis) if phis else np.zeros((0, n)),
        features=np.stack(feats) if feats else np.zeros((0, n, 5)),
        inside=inside,
        seconds=time.perf_counter() - start,
    )


# --- LiRA --------------------------------------------------------------------------------------------


def _masked_mean_std(phi: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation of ``phi`` over the rows where ``mask`` is set."""
    count = mask.sum(axis=0)
    safe = np.maximum(count, 1)
    mean = np.where(mask, phi, 0.0).sum(axis=0) / safe
    var = np.where(mask, (phi - mean) ** 2, 0.0).sum(axis=0) / np.maximum(count - 1, 1)
    return mean, np.sqrt(var)


def _variance(std: np.ndarray, count: np.ndarray, variance: str, k: int) -> np.ndarray:
    """Per-example or global (the median over examples) standard deviations, floored."""
    per_example = variance == "per-example" or (variance == "auto" and k >= PER_EXAMPLE_MIN_SHADOWS)
    if not per_example:
        usable = std[count >= 2]
        std = np.full_like(std, float(np.median(usable)) if len(usable) else 1.0)
    out: np.ndarray = np.maximum(std, VARIANCE_FLOOR)
    return out


def _gaussian_logpdf(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    out: np.ndarray = -0.5 * ((x - mean) / std) ** 2 - np.log(std)
    return out


def lira_online(target_phi: np.ndarray, phi: np.ndarray, inside: np.ndarray, variance: str) -> np.ndarray:
    """Log-likelihood ratio of ``target_phi`` under the IN Gaussian versus the OUT Gaussian, per example."""
    k = phi.shape[0]
    mu_in, sd_in = _masked_mean_std(phi, inside)
    mu_out, sd_out = _masked_mean_std(phi, ~inside)
    sd_in = _variance(sd_in, inside.sum(axis=0), variance, k)
    sd_out = _variance(sd_out, (~inside).sum(axis=0), variance, k)
    out: np.ndarray = _gaussian_logpdf(target_phi, mu_in, sd_in) - _gaussian_logpdf(
        target_phi, mu_out, sd_out
    )
    return out


def lira_offline(target_phi: np.ndarray, phi: np.ndarray, inside: np.ndarray, variance: str) -> np.ndarray:
    """One-sided test against the OUT Gaussian: the z-score ``(φ − μ_out) / σ_out`` (monotone in the
    paper's ``1 − Pr[Z > φ]``, so the ROC is the same)."""
    k = phi.shape[0]
    outside = ~inside
    mu_out, sd_out = _masked_mean_std(phi, outside)
    sd_out = _variance(sd_out, outside.sum(axis=0), variance, k)
    out: np.ndarray = (target_phi - mu_out) / sd_out
    return out


# --- the shadow-model attack's classifier ------------------------------------------------------------


def fit_logistic(
    features: np.ndarray, labels: np.ndarray, *, l2: float = 1e-3, steps: int = 30
) -> np.ndarray:
    """Weights (f + 1,) of an L2-regularised logistic regression on standardised features, by Newton's
    method; the last weight is the bias. Columns are standardised inside; use :func:`logistic_score`."""
    mean, std = features.mean(axis=0), features.std(axis=0) + 1e-9
    a = np.c_[(features - mean) / std, np.ones(len(features))]
    t = labels.astype(np.float64)
    w = np.zeros(a.shape[1])
    reg = np.full(a.shape[1], l2 * len(a))
    reg[-1] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(a @ w, -50, 50)))
        grad = a.T @ (p - t) + reg * w
        hess = (a * (p * (1 - p))[:, None]).T @ a + np.diag(reg) + 1e-9 * np.eye(a.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    out: np.ndarray = np.r_[w, mean, std]
    return out


def logistic_score(weights: np.ndarray, features: np.ndarray) -> np.ndarray:
    """The logistic regression's decision value (log-odds of "member") for ``features``."""
    f = features.shape[1]
    w, mean, std = weights[: f + 1], weights[f + 1 : 2 * f + 1], weights[2 * f + 1 :]
    out: np.ndarray = ((features - mean) / std) @ w[:-1] + w[-1]
    return out
