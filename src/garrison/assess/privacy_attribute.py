"""Attribute inference: does the model let an attacker guess a record's sensitive attribute?

The attacker knows a target record's other columns and its label (the outcome the model predicts)
and wants its *sensitive* column (marital status, a diagnosis, an income band). Part of that is
guessable from the other columns alone, with no model at all: the *baseline*. What the model adds on
top — the attack's accuracy minus the baseline's on the same records — is the leak. A model that
memorised its training records adds more on them (*members*) than on records it never saw
(*non-members*); a model that merely learned the population's correlations adds about the same to
both, which is what it was built to do.

:func:`run_attribute_inference` takes the model, the members and the non-members to attack, and the
attacker's *auxiliary* records (same columns, sensitive value known, drawn from the same
population; they may or may not overlap the training set, as the caller decides). Attacks:

- ``baseline``: a random forest on the auxiliary records predicts the sensitive value from the other
  columns. ``baseline-label``: the same with the label as one more input. Neither queries the model.
- ``confidence`` (Fredrikson et al., 2014; the black-box attack of Fredrikson et al., 2015): for each
  candidate value, put it in the sensitive column, query the model, and score the candidate by the
  log-probability the model gives the record's true label plus the log of the value's frequency in
  the auxiliary data; pick the best. For a labels-only model the probability is 1 when the predicted
  label is the true one (then the prior breaks ties).
- ``confidence-informed``: the same likelihood with the ``baseline`` forest's probabilities as the
  prior instead of the marginal frequencies (Bayes: ``p(v | rest, y) ∝ p(y | rest, v) p(v | rest)``).
- ``output-match``: the attacker also sees the model's output on the record as it is (ART's threat
  model: the output of a prediction served to the record's owner). The candidate whose sweep output
  is nearest (L1 over the probabilities) to the observed one is picked; the prior breaks ties.
- ``learned`` (as ART's ``AttributeInferenceBlackBox``, with more inputs): a random forest trained on
  the auxiliary records, from the other columns, the label (one-hot), the model's probabilities on the
  record as it is (what a user of the model would see) and the candidate sweep above (log-probability
  of the true label for each candidate value).

A sensitive column with at most :data:`MAX_CATEGORIES` distinct values (over every record passed) is
read as categorical: the candidates are those values. Otherwise it is binned into ``bins`` quantile
bins of the auxiliary data; a bin's candidate is the median of its auxiliary values, and an inference
is right when it names the record's bin. Explicit ``values`` override both (every record's value must
be one of them).

Metrics per attack and per group (members, non-members): accuracy, balanced accuracy (mean recall over
the values present), and the *advantage*: accuracy minus that of the better baseline on the same
records. Everything is computed on numeric, finite arrays; categorical columns must be encoded first.
The module imports numpy and garrison; scikit-learn when an attack trains a forest, torch when a torch
model is queried.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from garrison.assess.adapters import ModelAdapter, as_model, to_numpy
from garrison.core.errors import ConfigError, InputError, MissingExtraError

__all__ = [
    "ATTACKS",
    "MAX_CATEGORIES",
    "MAX_QUERIES",
    "AttributeInferenceReport",
    "AttributeInferenceResult",
    "run_attribute_inference",
]

ATTACKS = ("baseline", "baseline-label", "confidence", "confidence-informed", "output-match", "learned")
"""Every attribute-inference attack, in the order they run."""

BASELINES = ("baseline", "baseline-label")
"""The attacks that never query the model."""

MAX_CATEGORIES = 16
"""A sensitive column with at most this many distinct values is categorical; above, it is binned."""

MAX_QUERIES = 2_000_000
"""Upper bound on model queries (rows) the candidate sweep may send."""

_EPS = 1e-12


@dataclass(frozen=True, slots=True, kw_only=True)
class AttributeInferenceResult:
    """One attack's inference of the sensitive attribute, measured on members and non-members."""

    attack: str
    """One of :data:`ATTACKS`."""
    uses_model: bool
    """Whether the attack queries the model (False for the baselines)."""
    member_accuracy: float
    """Share of members whose sensitive value (or bin) was inferred right."""
    non_member_accuracy: float
    """Share of non-members whose sensitive value (or bin) was inferred right."""
    member_balanced_accuracy: float
    """Mean recall over the sensitive values present among the members."""
    non_member_balanced_accuracy: float
    """Mean recall over the sensitive values present among the non-members."""
    member_advantage: float
    """:attr:`member_accuracy` minus the better baseline's on the members (0 for a baseline itself
    when it is the better one); what the model leaks about its training records."""
    non_member_advantage: float
    """The same on the non-members: what the model reveals about the population."""
    queries: int
    """Rows sent to the model by this attack (shared sweeps count for each attack using them)."""
    seconds: float
    """Wall-clock time, model queries and attack training included."""
    parameters: tuple[tuple[str, Any], ...] = ()
    """The attack's parameters, as ``(name, value)`` pairs, for the report."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "attack": self.attack,
            "uses_model": self.uses_model,
            "member_accuracy": self.member_accuracy,
            "non_member_accuracy": self.non_member_accuracy,
            "member_balanced_accuracy": self.member_balanced_accuracy,
            "non_member_balanced_accuracy": self.non_member_balanced_accuracy,
            "member_advantage": self.member_advantage,
            "non_member_advantage": self.non_member_advantage,
            "queries": self.queries,
            "seconds": self.seconds,
            "parameters": dict(self.parameters),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AttributeInferenceReport:
    """Everything one :func:`run_attribute_inference` call measured."""

    model: str
    """The target model's name."""
    sensitive_column: int
    """Index of the attacked column."""
    kind: str
    """``"categorical"`` (candidates are the column's values) or ``"binned"`` (quantile bins)."""
    values: tuple[float, ...]
    """The candidate values, in the order of the class indices inferred."""
    bin_edges: tuple[float, ...]
    """Inner edges between bins (``"binned"`` only; empty otherwise)."""
    members: int
    """Members attacked."""
    non_members: int
    """Non-members attacked."""
    auxiliary: int
    """Auxiliary records the attacker trained on."""
    majority_accuracy: float
    """Accuracy on the members of always guessing the auxiliary data's most common value."""
    model_member_accuracy: float
    """The model's accuracy on the members' labels."""
    model_non_member_accuracy: float
    """The model's accuracy on the non-members' labels."""
    results: tuple[AttributeInferenceResult, ...] = ()
    """One entry per attack, in the order run."""
    notes: tuple[str, ...] = field(default_factory=tuple)
    """Things the reader should know (small samples, binning, labels-only model, …)."""

    def result(self, attack: str) -> AttributeInferenceResult:
        """The result of ``attack``; ``KeyError`` if it was not run."""
        for r in self.results:
            if r.attack == attack:
                return r
        raise KeyError(f"attribute-inference attack {attack!r} was not run")

    def strongest(self) -> AttributeInferenceResult:
        """The model-querying attack with the largest member advantage; ``ValueError`` if none ran."""
        used = [r for r in self.results if r.uses_model]
        if not used:
            raise ValueError("no attribute-inference attack that queries the model was run")
        return max(used, key=lambda r: (r.member_advantage, r.member_balanced_accuracy))

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "model": self.model,
            "sensitive_column": self.sensitive_column,
            "kind": self.kind,
            "values": list(self.values),
            "bin_edges": list(self.bin_edges),
            "members": self.members,
            "non_members": self.non_members,
            "auxiliary": self.auxiliary,
            "majority_accuracy": self.majority_accuracy,
            "model_member_accuracy": self.model_member_accuracy,
            "model_non_member_accuracy": self.model_non_member_accuracy,
            "results": [r.to_dict() for r in self.results],
            "notes": list(self.notes),
        }


# --- input checks ------------------------------------------------------------------------------------


def _table(data: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(data, tuple | list) or len(data) != 2:
        raise InputError(f"{what} must be a pair (x, y) of arrays, not {type(data).__name__}")
    x, y = to_numpy(data[0]), to_numpy(data[1]).reshape(-1)
    if x.ndim != 2:
        raise InputError(f"{what}: x must be a 2-D table (rows, columns), not shape {x.shape}")
    if len(x) != len(y):
        raise InputError(f"{what}: {len(x)} rows but {len(y)} labels")
    if len(x) == 0:
        raise InputError(f"{what} is empty")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise InputError(f"{what}: x must be numeric (encode categorical columns first), not {x.dtype}")
    bad = ~np.isfinite(x.astype(np.float64))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise InputError(f"{what}: x has a non-finite value at row {row}, column {col}")
    if np.issubdtype(y.dtype, np.floating) and not np.all(np.isfinite(y)):
        raise InputError(f"{what}: y has a non-finite label at row {int(np.argmin(np.isfinite(y)))}")
    return x, y


def _column(sensitive: Any, n_columns: int) -> int:
    if isinstance(sensitive, bool) or not isinstance(sensitive, int | np.integer):
        raise ConfigError(f"sensitive must be a column index (an integer), not {sensitive!r}")
    if not 0 <= int(sensitive) < n_columns:
        raise ConfigError(
            f"sensitive column {sensitive} is out of range: the records have {n_columns} columns "
            f"(0 to {n_columns - 1})"
        )
    if n_columns < 2:
        raise InputError("the records have a single column: nothing is left to infer it from")
    return int(sensitive)


def _chosen(attacks: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(attacks, str):
        attacks = tuple(a.strip() for a in attacks.split(","))
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown or not attacks:
        raise ConfigError(
            f"unknown attribute-inference attack(s): {', '.join(unknown) or '(none given)'}",
            hint=f"choose from {', '.join(ATTACKS)}",
        )
    return tuple(a for a in ATTACKS if a in attacks)


def _candidates(
    columns: Sequence[np.ndarray], aux: np.ndarray, values: Sequence[float] | None, bins: int
) -> tuple[str, np.ndarray, np.ndarray]:
    """``(kind, candidate values, inner bin edges)``."""
    if values is not None:
        cand = np.asarray(values, dtype=np.float64).reshape(-1)
        if len(cand) < 2 or not np.all(np.isfinite(cand)) or len(np.unique(cand)) != len(cand):
            raise ConfigError(f"values must be at least 2 distinct finite numbers, not {list(values)!r}")
        for what, col in zip(("members", "non_members", "auxiliary"), columns, strict=True):
            missing = np.setdiff1d(col, cand)
            if len(missing):
                raise InputError(
                    f"{what}: the sensitive column holds {float(missing[0]):g}, which is not among values",
                    hint="add it to values, or leave values out to take them from the data",
                )
        return "categorical", np.sort(cand), np.zeros(0)
    distinct = np.unique(np.concatenate(list(columns)))
    if len(distinct) < 2:
        raise InputError(
            f"the sensitive column holds a single value ({float(distinct[0]):g}): nothing to infer"
        )
    if len(distinct) <= MAX_CATEGORIES:
        return "categorical", distinct.astype(np.float64), np.zeros(0)
    if isinstance(bins, bool) or not isinstance(bins, int) or not 2 <= bins <= MAX_CATEGORIES:
        raise ConfigError(f"bins must be an integer from 2 to {MAX_CATEGORIES}, not {bins!r}")
    edges = np.unique(np.quantile(aux, np.linspace(0, 1, bins + 1)[1:-1]))
    index = np.searchsorted(edges, aux, side="right")
    cand = np.array([np.median(aux[index == b]) for b in range(len(edges) + 1) if np.any(index == b)])
    if len(cand) != len(edges) + 1 or len(cand) < 2:
        raise InputError(
            "the auxiliary data's sensitive values are too concentrated to bin", hint="pass values"
        )
    return "binned", cand.astype(np.float64), edges.astype(np.float64)


def _classes(col: np.ndarray, kind: str, cand: np.ndarray, edges: np.ndarray) -> np.ndarray:
    if kind == "binned":
        out: np.ndarray = np.searchsorted(edges, col, side="right").astype(np.int64)
        return out
    return np.searchsorted(cand, col.astype(np.float64)).astype(np.int64)


# --- metrics -----------------------------------------------------------------------------------------


def _accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean(pred == truth))


def _balanced(pred: np.ndarray, truth: np.ndarray) -> float:
    recalls = [np.mean(pred[truth == v] == v) for v in np.unique(truth)]
    return float(np.mean(recalls))


# --- the attacks -------------------------------------------------------------------------------------


def _forest(seed: int) -> Any:
    try:
        from sklearn.ensemble import RandomForestClassifier  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - scikit-learn is installed in development
        raise MissingExtraError(
            "attribute-inference attack models", extra="sklearn", module="sklearn"
        ) from exc
    return RandomForestClassifier(n_estimators=100, min_samples_leaf=2, random_state=seed, n_jobs=1)


def _fit_predict(
    features: np.ndarray, target: np.ndarray, queries: list[np.ndarray], n: int, seed: int
) -> list[np.ndarray]:
    """Fit a forest on ``features -> target`` and return its (rows, n) probabilities on each query."""
    forest = _forest(seed).fit(features, target)
    out = []
    for q in queries:
        p = np.zeros((len(q), n))
        p[:, forest.classes_.astype(np.int64)] = forest.predict_proba(q)
        out.append(p)
    return out


def _sweep(adapter: ModelAdapter, x: np.ndarray, col: int, cand: np.ndarray) -> np.ndarray:
    """(rows, candidates, classes): the model's probabilities with each candidate value put in ``col``."""
    out = []
    for v in cand:
        # An integer table would truncate a bin's median: sweep in float64 then.
        xv = x.copy() if np.issubdtype(x.dtype, np.floating) else x.astype(np.float64)
        xv[:, col] = v
        out.append(adapter.probabilities(xv))
    return np.stack(out, axis=1).astype(np.float64)


def _true_logp(sweep: np.ndarray, y_idx: np.ndarray) -> np.ndarray:
    """(rows, candidates): log-probability of each row's true label with each candidate value."""
    p = sweep[np.arange(len(sweep)), :, y_idx]
    out: np.ndarray = np.log(np.maximum(p, _EPS))
    return out


def _onehot(idx: np.ndarray, n: int) -> np.ndarray:
    out: np.ndarray = np.eye(n)[idx]
    return out


_Inference = tuple[list[np.ndarray], float, int, tuple[tuple[str, Any], ...]]
"""An attack's predicted classes on (members, non-members), seconds, model queries, parameters."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Records:
    """The three groups, in the order auxiliary, members, non-members."""

    x: tuple[np.ndarray, ...]
    """Full records."""
    rest: tuple[np.ndarray, ...]
    """Records without the sensitive column, as float64."""
    labels: tuple[np.ndarray, ...]
    """Label indices (the model's class columns)."""
    onehot: tuple[np.ndarray, ...]
    """One-hot labels."""
    truth: tuple[np.ndarray, ...]
    """Index of each record's sensitive value (or bin) among the candidates."""


def _baselines(chosen: tuple[str, ...], rec: _Records, n_values: int, seed: int) -> dict[str, _Inference]:
    out: dict[str, _Inference] = {}
    if any(a in ("baseline", "confidence-informed") for a in chosen):
        t0 = time.perf_counter()
        probs = _fit_predict(rec.rest[0], rec.truth[0], list(rec.rest[1:]), n_values, seed)
        params = (("features", "other columns"), ("classifier", "random forest"))
        # The forest's probabilities ride along as "predictions" for confidence-informed.
        out["baseline"] = (probs, time.perf_counter() - t0, 0, params)
    if "baseline-label" in chosen:
        t0 = time.perf_counter()
        feats = [np.hstack([r, h]) for r, h in zip(rec.rest, rec.onehot, strict=True)]
        probs = _fit_predict(feats[0], rec.truth[0], feats[1:], n_values, seed)
        params = (("features", "other columns, label"), ("classifier", "random forest"))
        out["baseline-label"] = (probs, time.perf_counter() - t0, 0, params)
    return out


def _model_attacks(
    chosen: tuple[str, ...],
    adapter: ModelAdapter,
    rec: _Records,
    col: int,
    cand: np.ndarray,
    log_prior: np.ndarray,
    baseline: _Inference | None,
    seed: int,
) -> dict[str, _Inference]:
    out: dict[str, _Inference] = {}
    learned = "learned" in chosen
    t0 = time.perf_counter()
    groups = (0, 1, 2) if learned else (1, 2)
    sweeps = {g: _sweep(adapter, rec.x[g], col, cand) for g in groups}
    logp = {g: _true_logp(sweeps[g], rec.labels[g]) for g in groups}
    seconds = time.perf_counter() - t0
    queries = (len(rec.x[1]) + len(rec.x[2])) * len(cand)
    if "confidence" in chosen:
        t0 = time.perf_counter()
        preds = [logp[g] + log_prior for g in (1, 2)]
        params = (("prior", "auxiliary frequencies"), ("score", "log p(true label)"))
        out["confidence"] = (preds, seconds + time.perf_counter() - t0, queries, params)
    if "confidence-informed" in chosen:
        assert baseline is not None
        t0 = time.perf_counter()
        preds = [logp[g] + np.log(np.maximum(b, 1e-3)) for g, b in zip((1, 2), baseline[0], strict=True)]
        params = (("prior", "baseline forest"), ("score", "log p(true label)"))
        out["confidence-informed"] = (
            preds,
            seconds + baseline[1] + time.perf_counter() - t0,
            queries,
            params,
        )
    if "output-match" in chosen or learned:
        t0 = time.perf_counter()
        observed = {g: adapter.probabilities(rec.x[g]).astype(np.float64) for g in groups}
        seconds += time.perf_counter() - t0
        if "output-match" in chosen:
            preds = []
            for g in (1, 2):
                distance = np.abs(sweeps[g] - observed[g][:, None, :]).sum(axis=2)
                # Nearest output first; the prior only breaks ties (labels-only or saturated outputs).
                preds.append(-np.round(distance, 6) + 1e-7 * log_prior)
            params = (("observed", "model probabilities on the record"), ("distance", "L1"))
            out["output-match"] = (preds, seconds, queries + len(rec.x[1]) + len(rec.x[2]), params)
        if learned:
            t0 = time.perf_counter()
            feats = [np.hstack([rec.rest[g], rec.onehot[g], observed[g], logp[g]]) for g in (0, 1, 2)]
            probs = _fit_predict(feats[0], rec.truth[0], feats[1:], len(cand), seed)
            params = (
                ("features", "other columns, label, model probabilities, candidate sweep"),
                ("classifier", "random forest"),
            )
            total = sum(len(x) for x in rec.x) * (len(cand) + 1)
            out["learned"] = (probs, seconds + time.perf_counter() - t0, total, params)
    return out


def _records(
    adapter: ModelAdapter,
    tables: tuple[tuple[np.ndarray, np.ndarray], ...],
    col: int,
    kind: str,
    cand: np.ndarray,
    edges: np.ndarray,
) -> _Records:
    labels = tuple(adapter.label_indices(y) for _, y in tables)
    return _Records(
        x=tuple(x for x, _ in tables),
        rest=tuple(np.delete(x, col, axis=1).astype(np.float64) for x, _ in tables),
        labels=labels,
        onehot=tuple(_onehot(i, adapter.n_classes) for i in labels),
        truth=tuple(_classes(x[:, col], kind, cand, edges) for x, _ in tables),
    )


def run_attribute_inference(
    model: Any,
    members: tuple[Any, Any],
    non_members: tuple[Any, Any],
    auxiliary: tuple[Any, Any],
    *,
    sensitive: int,
    values: Sequence[float] | None = None,
    bins: int = 4,
    attacks: Sequence[str] | str = ATTACKS,
    seed: int = 0,
) -> AttributeInferenceReport:
    """Infer column ``sensitive`` of the members and non-members with each attack in ``attacks``.

    ``members``, ``non_members`` and ``auxiliary`` are ``(x, y)`` pairs: numeric 2-D tables with the
    same columns, and labels as the model's classes. The attacks are trained on ``auxiliary`` only;
    the sensitive column of the members and non-members is read only to score the inferences (and,
    for ``output-match`` and ``learned``, to query the model on the records as they are).
    Deterministic for a given ``seed``.
    """
    xm, ym = _table(members, "members")
    xn, yn = _table(non_members, "non_members")
    xa, ya = _table(auxiliary, "auxiliary")
    if not xm.shape[1] == xn.shape[1] == xa.shape[1]:
        raise InputError(
            f"column counts differ: members {xm.shape[1]}, non_members {xn.shape[1]}, auxiliary {xa.shape[1]}"
        )
    col = _column(sensitive, xm.shape[1])
    chosen = _chosen(attacks)
    kind, cand, edges = _candidates((xm[:, col], xn[:, col], xa[:, col]), xa[:, col], values, bins)
    rows = len(xm) + len(xn) + len(xa)
    if any(a not in BASELINES for a in chosen) and rows * (len(cand) + 1) > MAX_QUERIES:
        raise InputError(
            f"the candidate sweep would send {rows * (len(cand) + 1):,} rows to the model, "
            f"more than {MAX_QUERIES:,}",
            hint="pass fewer records or fewer bins",
        )
    adapter = as_model(model)
    predicted_m, predicted_n = adapter.predict(xm), adapter.predict(xn)
    rec = _records(adapter, ((xa, ya), (xm, ym), (xn, yn)), col, kind, cand, edges)
    prior = np.bincount(rec.truth[0], minlength=len(cand)) / len(xa)
    log_prior = np.log(np.maximum(prior, _EPS))

    notes: list[str] = []
    if kind == "binned":
        notes.append(
            f"column {col} has more than {MAX_CATEGORIES} distinct values: binned into {len(cand)} "
            "quantile bins of the auxiliary data; an inference is right when it names the record's bin"
        )
    if min(len(xm), len(xn)) < 100:
        notes.append(f"only {len(xm)} members and {len(xn)} non-members: accuracies move by several points")
    if adapter.output_kind.value == "labels":
        notes.append(f"{adapter.name} returns labels only: the model-based attacks see predicted labels")

    scored = _baselines(chosen, rec, len(cand), seed)
    if any(a not in BASELINES for a in chosen):
        scored.update(
            _model_attacks(chosen, adapter, rec, col, cand, log_prior, scored.get("baseline"), seed)
        )
    truth = (rec.truth[1], rec.truth[2])
    base_names = [a for a in BASELINES if a in chosen]
    if base_names:
        best = [max(_accuracy(scored[a][0][g].argmax(1), truth[g]) for a in base_names) for g in (0, 1)]
    else:
        notes.append("no baseline was run: advantages are measured against the majority guess")
        best = [_accuracy(np.full(len(t), int(np.argmax(prior))), t) for t in truth]
    return AttributeInferenceReport(
        model=adapter.name,
        sensitive_column=col,
        kind=kind,
        values=tuple(float(v) for v in cand),
        bin_edges=tuple(float(e) for e in edges),
        members=len(xm),
        non_members=len(xn),
        auxiliary=len(xa),
        majority_accuracy=_accuracy(np.full(len(truth[0]), int(np.argmax(prior))), truth[0]),
        model_member_accuracy=_accuracy(predicted_m, rec.labels[1]),
        model_non_member_accuracy=_accuracy(predicted_n, rec.labels[2]),
        results=tuple(_result(a, scored[a], truth, best) for a in chosen),
        notes=tuple(notes),
    )


def _result(
    attack: str, scored: _Inference, truth: tuple[np.ndarray, np.ndarray], best: list[float]
) -> AttributeInferenceResult:
    scores, seconds, queries, params = scored
    preds = [s.argmax(1) for s in scores]
    acc = [_accuracy(p, t) for p, t in zip(preds, truth, strict=True)]
    return AttributeInferenceResult(
        attack=attack,
        uses_model=attack not in BASELINES,
        member_accuracy=acc[0],
        non_member_accuracy=acc[1],
        member_balanced_accuracy=_balanced(preds[0], truth[0]),
        non_member_balanced_accuracy=_balanced(preds[1], truth[1]),
        member_advantage=acc[0] - best[0],
        non_member_advantage=acc[1] - best[1],
        queries=queries,
        seconds=seconds,
        parameters=params,
    )
