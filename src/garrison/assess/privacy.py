"""Membership inference: can an attacker tell whether an example was in the model's training set?

:func:`run_membership` attacks a fitted classifier given examples it was trained on (``members``),
examples it was not (``non_members``) and, optionally, more data from the same distribution that the
attacker may use (``population``). Four attacks:

- ``loss`` (Yeom et al., 2018): the example's loss; members have a lower one. The threshold is
  calibrated on the population, where the target's loss is that of non-members: it is the loss quantile
  that flags :data:`CALIBRATION_FPR` of them (Ye et al., 2022, "population" attack). The report carries
  the threshold and the TPR/FPR it reaches on the evaluated examples.
- ``shadow`` (Shokri et al., 2017): shadow models of the same kind trained on known data; a classifier
  learns, from their outputs on examples they did and did not train on, to tell members apart. Garrison
  uses one logistic regression on features of the output (φ of the true class, top log-probability,
  entropy, correctness) for all classes.
- ``lira-online`` and ``lira-offline`` (Carlini et al., 2022, the likelihood-ratio attack): each
  example's φ = log(p_y / (1 − p_y)) under the target is compared with Gaussians fitted to φ under
  shadows trained with it (IN) and without it (OUT). Online: the log-likelihood ratio IN versus OUT.
  Offline: a one-sided test against OUT only (here from the OUT shadows of the same pool). Variance
  per example or global (``variance``; ``"auto"`` takes global below 64 shadows, as the paper
  advises). No augmentation: the target is queried once per example.

Shadows are trained by Garrison through ``train_fn(x, y) -> model`` (a scikit-learn estimator gets a
default: ``sklearn.base.clone`` with ``random_state`` varied per shadow). They are trained once and
shared by ``shadow`` and both LiRA variants. Their pool is the population plus, when ``lira-online`` is
run, the evaluated examples themselves (the paper's setting: each is IN for about half the shadows);
each shadow trains on about ``shadow_size`` examples (default ``len(members)``: pass the target's
training set size if ``members`` is only part of it).

Metrics per attack, as the LiRA paper argues for: AUC, the best balanced accuracy over thresholds, TPR
at 0.1% and 1% FPR, and a downsampled ROC curve. With fewer than 1,000 non-members the TPR at 0.1% FPR
is the TPR at zero false positives (stated in the notes).

The module imports numpy and garrison only; scikit-learn is imported when its default ``train_fn`` is
used, torch when a torch model is queried.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from garrison.assess.adapters import SklearnModel, as_model, require_torch, to_numpy
from garrison.assess.privacy_lira import (
    TrainFn,
    attack_features,
    fit_logistic,
    inclusion_masks,
    lira_offline,
    lira_online,
    log_probabilities,
    logistic_score,
    membership_metrics,
    train_shadows,
    true_class_log_prob,
    true_class_logit,
)
from garrison.core.errors import ConfigError, InputError, MissingExtraError

__all__ = [
    "ATTACKS",
    "CALIBRATION_FPR",
    "MAX_EXAMPLES",
    "MAX_SHADOWS",
    "MembershipReport",
    "MembershipResult",
    "run_membership",
    "sklearn_train_fn",
    "torch_train_fn",
]

ATTACKS = ("loss", "shadow", "lira-offline", "lira-online")
"""Every membership attack, in the order they run."""

CALIBRATION_FPR = 0.01
"""The loss attack's threshold flags this share of the population (non-members) as members."""

MAX_SHADOWS = 512
"""Upper bound on ``shadows``."""

MAX_EXAMPLES = 100_000
"""Upper bound on the rows of members, non-members and population together."""

_SHADOW_ATTACKS = ("shadow", "lira-offline", "lira-online")
_VARIANCES = ("auto", "global", "per-example")


@dataclass(frozen=True, slots=True, kw_only=True)
class MembershipResult:
    """One membership attack's measurements on the evaluated members and non-members."""

    attack: str
    """``loss``, ``shadow``, ``lira-offline`` or ``lira-online``."""
    auc: float
    """Area under the ROC curve (0.5 is guessing)."""
    balanced_accuracy: float
    """Best ``(TPR + TNR) / 2`` over all thresholds."""
    tpr_at_0_1pct_fpr: float
    """Share of members found at a false-positive rate of at most 0.1%."""
    tpr_at_1pct_fpr: float
    """Share of members found at a false-positive rate of at most 1%."""
    roc: tuple[tuple[float, float], ...]
    """Downsampled ROC curve, ``(fpr, tpr)`` pairs from (0, 0) to (1, 1), FPR ascending."""
    members: int
    """Members evaluated."""
    non_members: int
    """Non-members evaluated."""
    shadow_models: int
    """Shadow models the attack used (0 for ``loss``); shared between the shadow-based attacks."""
    seconds: float
    """Wall-clock time, shadow training included (shared shadows count for each attack using them)."""
    threshold: float | None = None
    """``loss`` only: the calibrated loss threshold (cross-entropy, nats); below it reads "member"."""
    threshold_tpr: float | None = None
    """``loss`` only: TPR on the evaluated examples at the calibrated threshold."""
    threshold_fpr: float | None = None
    """``loss`` only: FPR on the evaluated examples at the calibrated threshold."""
    parameters: tuple[tuple[str, Any], ...] = ()
    """The attack's parameters, as ``(name, value)`` pairs, for the report."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "attack": self.attack,
            "auc": self.auc,
            "balanced_accuracy": self.balanced_accuracy,
            "tpr_at_0_1pct_fpr": self.tpr_at_0_1pct_fpr,
            "tpr_at_1pct_fpr": self.tpr_at_1pct_fpr,
            "members": self.members,
            "non_members": self.non_members,
            "shadow_models": self.shadow_models,
            "seconds": self.seconds,
            "threshold": self.threshold,
            "threshold_tpr": self.threshold_tpr,
            "threshold_fpr": self.threshold_fpr,
            "parameters": dict(self.parameters),
            "roc": [list(p) for p in self.roc],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class MembershipReport:
    """Everything one :func:`run_membership` call measured."""

    model: str
    """The target model's class name."""
    members: int
    """Members evaluated."""
    non_members: int
    """Non-members evaluated."""
    population: int
    """Population rows the attacker used."""
    member_accuracy: float
    """The target's accuracy on the members (its training data)."""
    non_member_accuracy: float
    """The target's accuracy on the non-members; the gap to :attr:`member_accuracy` is overfitting."""
    results: tuple[MembershipResult, ...] = ()
    """One entry per attack, in the order run."""
    notes: tuple[str, ...] = field(default_factory=tuple)
    """Things the reader should know (small samples, shared shadows, …)."""

    def result(self, attack: str) -> MembershipResult:
        """The result of ``attack``; ``KeyError`` if it was not run."""
        for r in self.results:
            if r.attack == attack:
                return r
        raise KeyError(f"membership attack {attack!r} was not run")

    def strongest(self) -> MembershipResult:
        """The result with the highest AUC (ties: the higher TPR at 1% FPR); ``ValueError`` if none."""
        if not self.results:
            raise ValueError("no membership attack was run")
        return max(self.results, key=lambda r: (r.auc, r.tpr_at_1pct_fpr))

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "model": self.model,
            "members": self.members,
            "non_members": self.non_members,
            "population": self.population,
            "member_accuracy": self.member_accuracy,
            "non_member_accuracy": self.non_member_accuracy,
            "results": [r.to_dict() for r in self.results],
            "notes": list(self.notes),
        }


def sklearn_train_fn(estimator: Any, *, seed: int = 0) -> TrainFn:
    """``train_fn`` for shadows of a scikit-learn estimator: an unfitted clone per call, its
    ``random_state`` (where it has one, pipelines' steps included) set to ``seed``, ``seed + 1``, …;
    inputs of more than one dimension per row (images) are flattened, as the adapter feeds the target."""
    try:
        from sklearn.base import clone  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - an sklearn target implies sklearn
        raise MissingExtraError("scikit-learn shadow models", extra="sklearn", module="sklearn") from exc
    calls = [0]

    def train(x: np.ndarray, y: np.ndarray) -> Any:
        model = clone(estimator)
        states = {k: seed + calls[0] for k in model.get_params() if k.split("__")[-1] == "random_state"}
        if states:
            model.set_params(**states)
        calls[0] += 1
        return model.fit(x.reshape(len(x), -1), y)  # images as rows, as the adapter feeds the target

    return train


def torch_train_fn(
    module: Any,
    *,
    epochs: int = 30,
    lr: float = 1e-3,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    seed: int = 0,
) -> TrainFn:
    """``train_fn`` for shadows of a torch module: a deep copy of ``module`` with every parameter
    re-initialised (each submodule's ``reset_parameters``), trained with Adam on cross-entropy for
    ``epochs`` passes, seeded with ``seed``, ``seed + 1``, … per call.

    This is a generic recipe, not the target's own: LiRA is strongest when the shadows are trained the
    way the target was, so pass your own ``train_fn`` to :func:`run_membership` when you have it. A
    module whose parameters cannot all be re-initialised (a layer without ``reset_parameters``, such
    as a bare ``nn.Parameter``) raises :class:`~garrison.core.errors.ConfigError`.
    """
    import copy

    torch = require_torch("shadow models of a PyTorch module")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"torch_train_fn: {name} must be a positive integer, not {value!r}")
    if not (isinstance(lr, int | float) and lr > 0):
        raise ConfigError(f"torch_train_fn: lr must be a positive number, not {lr!r}")
    template = copy.deepcopy(module).cpu()
    owned = {id(p) for m in template.modules() if hasattr(m, "reset_parameters") for p in m.parameters(False)}
    stray = [n for n, p in template.named_parameters() if id(p) not in owned]
    if stray:
        raise ConfigError(
            f"shadow models of {type(module).__name__}: parameter(s) {', '.join(stray[:3])} belong to no "
            "layer with reset_parameters, so a fresh copy cannot be initialised",
            hint="pass train_fn(x, y) -> model that builds and trains a fresh model like the target",
        )
    calls = [0]

    def train(x: np.ndarray, y: np.ndarray) -> Any:
        torch.manual_seed(seed + calls[0])
        calls[0] += 1
        net = copy.deepcopy(template)
        for layer in net.modules():
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
        opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
        xt = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
        yt = torch.as_tensor(np.asarray(y).astype(np.int64))
        net.train()
        for _ in range(epochs):
            for idx in torch.randperm(len(xt)).split(batch_size):
                opt.zero_grad()
                torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
                opt.step()
        return net.eval()

    train.__name__ = f"{type(module).__name__} re-initialised, Adam lr {lr:g}, {epochs} epochs"
    return train


def _pair(data: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(data, tuple | list) or len(data) != 2:
        raise InputError(f"{what} must be a pair (x, y) of arrays, not {type(data).__name__}")
    x, y = to_numpy(data[0]), to_numpy(data[1]).reshape(-1)
    if len(x) != len(y):
        raise InputError(f"{what}: {len(x)} inputs but {len(y)} labels")
    return x, y


def _validate(
    attacks: Sequence[str], shadows: int, variance: str, shadow_size: int | None, n_population: int
) -> tuple[str, ...]:
    if isinstance(attacks, str):
        attacks = tuple(a.strip() for a in attacks.split(","))
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown or not attacks:
        raise ConfigError(
            f"unknown membership attack(s): {', '.join(unknown) or '(none given)'}",
            hint=f"choose from {', '.join(ATTACKS)}",
        )
    chosen = tuple(a for a in ATTACKS if a in attacks)
    uses_shadows = any(a in _SHADOW_ATTACKS for a in chosen)
    if isinstance(shadows, bool) or not isinstance(shadows, int) or not 0 <= shadows <= MAX_SHADOWS:
        raise ConfigError(f"shadows must be an integer from 0 to {MAX_SHADOWS}, not {shadows!r}")
    if uses_shadows and shadows < 2:
        raise ConfigError(
            f"the shadow-model attacks need at least 2 shadow models, not {shadows}",
            hint="raise shadows (16 is the default; the LiRA paper uses 64 to 256)",
        )
    if variance not in _VARIANCES:
        raise ConfigError(f"variance must be one of {', '.join(_VARIANCES)}, not {variance!r}")
    if shadow_size is not None and (isinstance(shadow_size, bool) or shadow_size < 1):
        raise ConfigError(f"shadow_size must be a positive integer, not {shadow_size!r}")
    if "lira-online" not in chosen and uses_shadows and n_population < 2:
        raise InputError(
            "the shadow and offline LiRA attacks need population data to train shadow models on",
            hint="pass population=(x, y) drawn from the training distribution, or add lira-online",
        )
    return chosen


def run_membership(
    model: Any,
    members: tuple[Any, Any],
    non_members: tuple[Any, Any],
    population: tuple[Any, Any] | None = None,
    *,
    attacks: Sequence[str] = ATTACKS,
    shadows: int = 16,
    train_fn: TrainFn | None = None,
    seed: int = 0,
    shadow_size: int | None = None,
    variance: str = "auto",
) -> MembershipReport:
    """Attack ``model`` with the membership attacks named in ``attacks`` and measure each.

    ``members``, ``non_members`` and ``population`` are ``(x, y)`` pairs (numpy or torch, labels as the
    model's classes). ``train_fn(x, y) -> model`` trains one shadow of the target's kind; it defaults
    to :func:`sklearn_train_fn` for a scikit-learn target and must be given for a torch module. Runs are
    deterministic for a given ``seed`` as long as ``train_fn`` is.
    """
    xm, ym = _pair(members, "members")
    xn, yn = _pair(non_members, "non_members")
    xp, yp = _pair(population, "population") if population is not None else (xm[:0], ym[:0])
    if len(xm) == 0 or len(xn) == 0:
        raise InputError(f"need at least one member and one non-member, got {len(xm)} and {len(xn)}")
    if xm.shape[1:] != xn.shape[1:] or (len(xp) and xp.shape[1:] != xm.shape[1:]):
        raise InputError(
            f"input shapes differ: members {xm.shape[1:]}, non_members {xn.shape[1:]}, "
            f"population {xp.shape[1:]}"
        )
    if len(xm) + len(xn) + len(xp) > MAX_EXAMPLES:
        raise InputError(
            f"{len(xm) + len(xn) + len(xp):,} examples in all, more than {MAX_EXAMPLES:,}",
            hint="pass a random subset",
        )
    chosen = _validate(attacks, shadows, variance, shadow_size, len(xp))
    adapter = as_model(model)
    if train_fn is None and any(a in _SHADOW_ATTACKS for a in chosen):
        if not isinstance(adapter, SklearnModel):
            raise ConfigError(
                f"shadow models of a {adapter.name} need a train_fn(x, y) -> model",
                hint="pass train_fn that trains a fresh model like the target, or run attacks=('loss',)",
            )
        train_fn = sklearn_train_fn(adapter.estimator, seed=seed)

    x_eval = np.concatenate([xm, xn])
    y_eval = np.concatenate([ym, yn])
    is_member = np.r_[np.ones(len(xm), bool), np.zeros(len(xn), bool)]
    start = time.perf_counter()
    logp, classes = log_probabilities(model, x_eval)
    target_seconds = time.perf_counter() - start
    predicted = np.argmax(logp, axis=1)
    truth = (
        predicted == _label_columns(y_eval, classes)
        if classes is not None
        else predicted == y_eval.astype(np.int64)
    )
    notes: list[str] = []
    if len(xn) < 1000:
        notes.append(
            f"{len(xn)} non-members: TPR at 0.1% FPR is the TPR at zero false positives"
            + ("" if len(xn) >= 100 else ", and TPR at 1% FPR too")
        )

    results: list[MembershipResult] = []
    if "loss" in chosen:
        results.append(_loss_attack(model, logp, classes, y_eval, is_member, xp, yp, target_seconds, notes))

    if any(a in _SHADOW_ATTACKS for a in chosen):
        assert train_fn is not None
        results.extend(
            _shadow_attacks(
                chosen,
                train_fn,
                (xp, yp),
                (x_eval, y_eval),
                is_member,
                logp,
                classes,
                shadows=shadows,
                size=shadow_size if shadow_size is not None else len(xm),
                seed=seed,
                variance=variance,
                target_seconds=target_seconds,
                notes=notes,
            )
        )

    return MembershipReport(
        model=adapter.name,
        members=len(xm),
        non_members=len(xn),
        population=len(xp),
        member_accuracy=float(truth[is_member].mean()),
        non_member_accuracy=float(truth[~is_member].mean()),
        results=tuple(results),
        notes=tuple(notes),
    )


def _shadow_attacks(
    chosen: tuple[str, ...],
    train_fn: TrainFn,
    population: tuple[np.ndarray, np.ndarray],
    evaluated: tuple[np.ndarray, np.ndarray],
    is_member: np.ndarray,
    logp: np.ndarray,
    classes: np.ndarray | None,
    *,
    shadows: int,
    size: int,
    seed: int,
    variance: str,
    target_seconds: float,
    notes: list[str],
) -> list[MembershipResult]:
    """Train the shadows once, then run ``shadow``, ``lira-offline`` and ``lira-online`` as chosen."""
    (xp, yp), (x_eval, y_eval) = population, evaluated
    online = "lira-online" in chosen
    # Shadows are queried on the population and the evaluated examples; they train on the population
    # and, online, on the evaluated examples too (offline, those are OUT for every shadow).
    pool_x = np.concatenate([xp, x_eval])
    pool_y = np.concatenate([yp, y_eval])
    trainable = len(pool_x) if online else len(xp)
    fraction = min(size / trainable, 1.0 if online else 0.5)
    inside = np.zeros((shadows, len(pool_x)), bool)
    inside[:, :trainable] = inclusion_masks(trainable, shadows, fraction, np.random.default_rng(seed))
    shared = train_shadows(train_fn, pool_x, pool_y, inside)
    used = [a for a in chosen if a in _SHADOW_ATTACKS]
    notes.append(
        f"{shadows} shadow models trained once ({shared.seconds:.1f} s) on a pool of {trainable:,} "
        f"examples, each on about {fraction * trainable:,.0f}; shared by {', '.join(used)}"
    )
    target_phi = true_class_logit(logp, y_eval, classes)
    phi_eval, in_eval = shared.phi[:, len(xp) :], shared.inside[:, len(xp) :]
    base = target_seconds + shared.seconds
    results = []
    for attack in used:
        t0 = time.perf_counter()
        params: tuple[tuple[str, Any], ...]
        if attack == "shadow":
            weights = fit_logistic(
                shared.features.reshape(-1, shared.features.shape[-1]), shared.inside.reshape(-1)
            )
            scores = logistic_score(weights, attack_features(logp, y_eval, classes))
            params = (("features", "phi,top-logp,entropy,correct"), ("classifier", "logistic"))
        else:
            fn = lira_online if attack == "lira-online" else lira_offline
            scores = fn(target_phi, phi_eval, in_eval, variance)
            params = (("variance", variance), ("augmentations", 0))
        results.append(_result(attack, scores, is_member, shadows, base + time.perf_counter() - t0, params))
    return results


def _label_columns(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    pos = np.clip(np.searchsorted(classes, y), 0, len(classes) - 1)
    return np.where(classes[pos] == y, pos, -1)


def _result(
    attack: str,
    scores: np.ndarray,
    is_member: np.ndarray,
    shadows: int,
    seconds: float,
    parameters: tuple[tuple[str, Any], ...],
    **extra: Any,
) -> MembershipResult:
    m = membership_metrics(scores, is_member)
    return MembershipResult(
        attack=attack,
        auc=m.auc,
        balanced_accuracy=m.balanced_accuracy,
        tpr_at_0_1pct_fpr=m.tpr_at_0_1pct_fpr,
        tpr_at_1pct_fpr=m.tpr_at_1pct_fpr,
        roc=m.roc,
        members=int(is_member.sum()),
        non_members=int((~is_member).sum()),
        shadow_models=shadows,
        seconds=seconds,
        parameters=parameters,
        **extra,
    )


def _loss_attack(
    model: Any,
    logp: np.ndarray,
    classes: np.ndarray | None,
    y_eval: np.ndarray,
    is_member: np.ndarray,
    xp: np.ndarray,
    yp: np.ndarray,
    target_seconds: float,
    notes: list[str],
) -> MembershipResult:
    t0 = time.perf_counter()
    loss = -true_class_log_prob(logp, y_eval, classes)
    threshold = tpr = fpr = None
    if len(xp):
        plogp, pclasses = log_probabilities(model, xp)
        population_loss = -true_class_log_prob(plogp, yp, pclasses)
        threshold = float(np.quantile(population_loss, CALIBRATION_FPR, method="lower"))
        flagged = loss < threshold if threshold > 0 else loss <= threshold
        tpr = float(flagged[is_member].mean())
        fpr = float(flagged[~is_member].mean())
    else:
        notes.append("no population data: the loss attack's threshold is not calibrated")
    return _result(
        "loss",
        -loss,
        is_member,
        0,
        target_seconds + time.perf_counter() - t0,
        (("calibration_fpr", CALIBRATION_FPR),),
        threshold=threshold,
        threshold_tpr=tpr,
        threshold_fpr=fpr,
    )
