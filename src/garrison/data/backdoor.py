"""Backdoor detection in a training set, from a trained model: spectral signatures and activation clustering.

Both methods look at one class at a time, because a backdoor's poisoned samples all carry the
attacker's target label. ``features`` is an (N, D) array: a layer's activations for the training
samples (see :func:`torch_activations`), or the inputs themselves. ``labels`` are the training labels.

* :func:`spectral_signatures` (Tran, Li and Madry, NeurIPS 2018): centre a class's features and project
  them on the top right singular vector. Alone, it flags the top ``1.5 * poison_rate`` share of
  the squared projections in a class whose scores are heavy-tailed (the mean of that share at least
  ``tail_ratio`` times the class median; Gaussian noise alone gives about 8.6 at ``poison_rate`` 0.1),
  which works while poison is a minority of its class.
* :func:`activation_clustering` (Chen et al. 2018): reduce a class's features to ``dims`` dimensions
  with PCA and split them with 2-means.

When the poison is a large share of the target class (10% of a balanced ten-class set is half of
the target class) neither size nor tails tell poison from clean. Given the model (``predict``) and the
training inputs, both methods then cut each class in two (spectral signatures along the singular
vector, clustering by 2-means) and run a trigger transplant on the cut: add the difference between
the halves' mean inputs to samples of other classes, and see whether the model now predicts the
class. A trigger works on any input, so only poison passes (see :mod:`garrison.data.backdoor_cluster`
and :func:`transplant_rates`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from garrison.core.errors import InputError, MissingExtraError, UsageError
from garrison.data.backdoor_cluster import SplitJudgement, SplitRule, judge_split, two_means

__all__ = [
    "BackdoorFindings",
    "ClassStatistics",
    "SplitRule",
    "SuspiciousSample",
    "activation_clustering",
    "combine",
    "spectral_signatures",
    "torch_activations",
    "torch_predict",
    "transplant_rates",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class SuspiciousSample:
    """One training sample a method flags as likely poisoned."""

    index: int
    """Row of the sample in ``features``."""
    label: int
    """The sample's (possibly relabelled) class."""
    score: float
    """How suspicious the sample is; higher is more suspicious, comparable within one method."""
    reason: str
    """A sentence saying why, e.g. ``class 0: spectral score 41.2, 9.8x the class median``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassStatistics:
    """What a method measured in one class, and whether it judged the class poisoned."""

    label: int
    """The class."""
    size: int
    """Number of samples with this label."""
    statistic: float
    """The method's class-level test value (tail ratio, or the best cluster test)."""
    flagged: int
    """How many of the class's samples were flagged (0 when the class passed)."""
    detail: str
    """The numbers behind the decision, in words."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BackdoorFindings:
    """The result of one backdoor detection method (or of :func:`combine`)."""

    method: str
    """``spectral-signatures``, ``activation-clustering`` or ``combined``."""
    samples: tuple[SuspiciousSample, ...]
    """Flagged samples, most suspicious first."""
    classes: tuple[ClassStatistics, ...]
    """Per-class statistics, by label."""

    @property
    def indices(self) -> np.ndarray:
        """Rows of the flagged samples, most suspicious first."""
        return np.array([s.index for s in self.samples], dtype=np.int64)


def _check(features: Any, labels: Any, *, min_class_size: int) -> tuple[np.ndarray, np.ndarray]:
    feats = np.asarray(features, dtype=np.float64)
    labs = np.asarray(labels)
    if feats.ndim != 2 or feats.shape[0] == 0 or feats.shape[1] == 0:
        raise InputError(f"features must be a non-empty (N, D) array, got shape {feats.shape}")
    if labs.ndim != 1 or labs.shape[0] != feats.shape[0]:
        raise InputError(f"labels must have shape ({feats.shape[0]},), got {labs.shape}")
    if not np.issubdtype(labs.dtype, np.integer):
        raise InputError("labels must be integers")
    if not np.all(np.isfinite(feats)):
        raise InputError("features contain NaN or infinite values")
    if min_class_size < 3:
        raise UsageError(f"min_class_size must be at least 3, got {min_class_size}")
    return feats, labs.astype(np.int64)


def _check_inputs(predict: Any, inputs: Any, features: np.ndarray) -> np.ndarray | None:
    """The inputs the transplant test shifts: ``inputs`` as (N, D) floats, or the features themselves."""
    if predict is None:
        if inputs is not None:
            raise UsageError("inputs are only used with predict (the trigger transplant needs the model)")
        return None
    if not callable(predict):
        raise UsageError("predict must be a callable from an (n, ...) array to (n, classes) scores")
    if inputs is None:
        return features
    arr = np.asarray(inputs, dtype=np.float64)
    if arr.ndim < 2 or arr.shape[0] != features.shape[0]:
        raise InputError(
            f"inputs must have {features.shape[0]} rows like the features, got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise InputError("inputs contain NaN or infinite values")
    return arr


def _transplant(
    predict: Any, inputs: np.ndarray | None, labs: np.ndarray, label: int, assign: np.ndarray, seed: int
) -> np.ndarray | None:
    if inputs is None or np.bincount(assign, minlength=2).min() == 0:
        return None
    return transplant_rates(predict, inputs, labs, label, assign, seed=seed)


def spectral_signatures(
    features: Any,
    labels: Any,
    *,
    predict: Callable[[np.ndarray], Any] | None = None,
    inputs: Any = None,
    poison_rate: float = 0.1,
    tail_ratio: float = 20.0,
    rule: SplitRule | None = None,
    min_class_size: int = 10,
    seed: int = 0,
) -> BackdoorFindings:
    """Flag samples with outlying projections on each class's top singular vector.

    Without ``predict``: the top ``1.5 * poison_rate`` of a heavy-tailed class. With it (and the
    training ``inputs``, when ``features`` are not the inputs): the half of each class, cut along the
    singular vector, that passes the trigger transplant of
    :func:`~garrison.data.backdoor_cluster.judge_split`.
    """
    feats, labs = _check(features, labels, min_class_size=min_class_size)
    shifted = _check_inputs(predict, inputs, feats)
    if not 0.0 < poison_rate < 0.5:
        raise UsageError(f"poison_rate must be in (0, 0.5), got {poison_rate}")
    if tail_ratio <= 1.0:
        raise UsageError(f"tail_ratio must be above 1, got {tail_ratio}")
    samples: list[SuspiciousSample] = []
    stats: list[ClassStatistics] = []
    for label, idx, centred in _classes(feats, labs, min_class_size, stats):
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        projection = centred @ vt[0]
        if shifted is not None:
            assign = two_means(projection[:, None], seed)
            rates = _transplant(predict, shifted, labs, int(label), assign, seed)
            judged = judge_split(centred, projection[:, None], assign, rates, rule or SplitRule(), seed=seed)
            _collect(samples, stats, int(label), idx, judged)
            continue
        scores = projection**2
        k = max(1, int(np.ceil(1.5 * poison_rate * idx.size)))
        order = np.argsort(-scores, kind="stable")
        median = float(np.median(scores)) or 1e-12
        ratio = float(scores[order[:k]].mean() / median)
        flag = ratio >= tail_ratio
        detail = f"top {k} scores average {ratio:.1f}x the median (threshold {tail_ratio:g})"
        stats.append(
            ClassStatistics(
                label=int(label), size=idx.size, statistic=ratio, flagged=k if flag else 0, detail=detail
            )
        )
        if flag:
            for j in order[:k]:
                samples.append(
                    SuspiciousSample(
                        index=int(idx[j]),
                        label=int(label),
                        score=float(scores[j] / median),
                        reason=(
                            f"class {label}: spectral score {scores[j]:.1f}, "
                            f"{scores[j] / median:.1f}x the class median"
                        ),
                    )
                )
    samples.sort(key=lambda s: -s.score)
    return BackdoorFindings(method="spectral-signatures", samples=tuple(samples), classes=tuple(stats))


def _classes(
    feats: np.ndarray, labs: np.ndarray, minimum: int, stats: list[ClassStatistics]
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(label, rows, centred features)`` per class; a class under ``minimum`` rows is noted as skipped."""
    for label in np.unique(labs):
        idx = np.flatnonzero(labs == label)
        if idx.size < minimum:
            stats.append(_skipped(int(label), idx.size, minimum))
            continue
        yield int(label), idx, feats[idx] - feats[idx].mean(axis=0)


def _skipped(label: int, size: int, minimum: int) -> ClassStatistics:
    return ClassStatistics(
        label=label,
        size=size,
        statistic=0.0,
        flagged=0,
        detail=f"skipped: {size} samples, fewer than {minimum}",
    )


def _collect(
    samples: list[SuspiciousSample],
    stats: list[ClassStatistics],
    label: int,
    idx: np.ndarray,
    judged: SplitJudgement,
) -> None:
    flagged = np.flatnonzero(judged.suspicious)
    stats.append(
        ClassStatistics(
            label=label, size=idx.size, statistic=judged.statistic, flagged=flagged.size, detail=judged.detail
        )
    )
    for j in flagged:
        samples.append(
            SuspiciousSample(
                index=int(idx[j]),
                label=label,
                score=float(judged.scores[j]),
                reason=f"class {label}: {judged.reason}",
            )
        )


def activation_clustering(
    features: Any,
    labels: Any,
    *,
    predict: Callable[[np.ndarray], Any] | None = None,
    inputs: Any = None,
    dims: int = 10,
    rule: SplitRule | None = None,
    min_class_size: int = 10,
    seed: int = 0,
) -> BackdoorFindings:
    """Split each class in two with 2-means and flag a half that :func:`judge_split` finds poisoned.

    With ``predict`` (and the training ``inputs``, when ``features`` are not the inputs) the halves
    face the trigger transplant; without, only a small, well separated half is flagged.
    """
    from sklearn.decomposition import PCA  # type: ignore[import-untyped]

    feats, labs = _check(features, labels, min_class_size=min_class_size)
    shifted = _check_inputs(predict, inputs, feats)
    if dims < 1:
        raise UsageError(f"dims must be at least 1, got {dims}")
    samples: list[SuspiciousSample] = []
    stats: list[ClassStatistics] = []
    for label, idx, centred in _classes(feats, labs, min_class_size, stats):
        k = min(dims, centred.shape[1], idx.size - 1)
        reduced = (
            PCA(n_components=k, random_state=seed).fit_transform(centred) if k < centred.shape[1] else centred
        )
        assign = two_means(reduced, seed)
        rates = _transplant(predict, shifted, labs, int(label), assign, seed)
        judged = judge_split(centred, reduced, assign, rates, rule or SplitRule(), seed=seed)
        _collect(samples, stats, int(label), idx, judged)
    samples.sort(key=lambda s: -s.score)
    return BackdoorFindings(method="activation-clustering", samples=tuple(samples), classes=tuple(stats))


def combine(*findings: BackdoorFindings, require: int = 1) -> BackdoorFindings:
    """Samples flagged by at least ``require`` of the given methods, ranked by how many flag them."""
    if not findings:
        raise UsageError("combine needs at least one BackdoorFindings")
    if not 1 <= require <= len(findings):
        raise UsageError(f"require must be between 1 and {len(findings)}, got {require}")
    votes: dict[int, list[SuspiciousSample]] = {}
    for finding in findings:
        for s in finding.samples:
            votes.setdefault(s.index, []).append(s)
    merged = [
        SuspiciousSample(
            index=index,
            label=hits[0].label,
            score=float(len(hits)),
            reason="; ".join(f"{f.method}: {h.reason}" for f, h in zip(findings, hits, strict=False)),
        )
        for index, hits in votes.items()
        if len(hits) >= require
    ]
    merged.sort(key=lambda s: (-s.score, s.index))
    return BackdoorFindings(method="combined", samples=tuple(merged), classes=())


def transplant_rates(
    predict: Callable[[np.ndarray], Any],
    inputs: np.ndarray,
    labels: np.ndarray,
    label: int,
    assign: np.ndarray,
    *,
    max_others: int = 512,
    seed: int = 0,
) -> np.ndarray:
    """For each half of class ``label``'s split, how often its difference moves others into the class.

    ``assign`` splits the rows with ``labels == label`` into halves 0 and 1. For each half the
    difference between its mean input and the other half's is added to up to ``max_others`` random
    samples of other classes (clipped to the range each input feature has in the data) and the share
    the model then predicts as ``label`` is returned. ``predict`` maps an (n, ...) float array to
    (n, classes) scores (probabilities or logits) whose column ``c`` is class ``c``.
    """
    own = inputs[labels == label]
    others = np.flatnonzero(labels != label)
    if others.size == 0:
        raise InputError("the trigger transplant needs samples of at least two classes")
    rng = np.random.default_rng(seed)
    if others.size > max_others:
        others = np.sort(rng.choice(others, max_others, replace=False))
    base = inputs[others]
    low, high = inputs.min(axis=0), inputs.max(axis=0)
    rates = np.zeros(2)
    for half in range(2):
        shift = own[assign == half].mean(axis=0) - own[assign != half].mean(axis=0)
        moved = np.clip(base + shift, low, high).astype(np.float32)
        scores = np.asarray(predict(moved))
        if scores.ndim != 2 or scores.shape[0] != moved.shape[0] or label >= scores.shape[1]:
            raise InputError(
                f"predict returned shape {scores.shape} for {moved.shape[0]} inputs; "
                f"expected (n, classes) with a column for class {label}"
            )
        rates[half] = float(np.mean(scores.argmax(axis=1) == label))
    return rates


def torch_predict(model: Any, *, batch_size: int = 1024) -> Callable[[np.ndarray], np.ndarray]:
    """A ``predict`` for the backdoor methods: a PyTorch classifier's logits, in eval mode, batched."""
    try:
        import torch
    except ImportError as exc:
        raise MissingExtraError("backdoor detection", extra="torch", module="torch") from exc

    def predict(batch: np.ndarray) -> np.ndarray:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                data = torch.as_tensor(batch, dtype=torch.float32)
                parts = [model(data[i : i + batch_size]) for i in range(0, data.shape[0], batch_size)]
        finally:
            model.train(was_training)
        return np.asarray(torch.cat(parts).cpu().numpy())

    return predict


def torch_activations(model: Any, inputs: Any, layer: str, *, batch_size: int = 512) -> np.ndarray:
    """Run ``inputs`` through ``model`` and return the (N, D) output of the module named ``layer``."""
    try:
        import torch
    except ImportError as exc:
        raise MissingExtraError("backdoor activations", extra="torch", module="torch") from exc
    modules = dict(model.named_modules())
    if layer not in modules:
        names = ", ".join(n for n in modules if n) or "none"
        raise UsageError(f"model has no module named {layer!r}", hint=f"named modules: {names}")
    captured: list[Any] = []
    handle = modules[layer].register_forward_hook(lambda _m, _i, out: captured.append(out.detach()))
    try:
        data = torch.as_tensor(np.asarray(inputs), dtype=torch.float32)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            for start in range(0, data.shape[0], batch_size):
                model(data[start : start + batch_size])
        model.train(was_training)
    finally:
        handle.remove()
    if not captured:
        return np.zeros((0, 0))
    return torch.cat([c.reshape(c.shape[0], -1) for c in captured]).cpu().numpy()
