"""Evasion attacks against a classifier and the robust accuracy they leave, per attack and epsilon.

    report = run_evasion(model, x, y, attacks=["fgsm", "pgd-40", "apgd-ce", "cw-l2"], epsilons=[0.1, 0.3])

``model`` is a torch module, a scikit-learn estimator or a :class:`~garrison.assess.ModelAdapter`;
``x`` and ``y`` are numpy arrays or torch tensors (inputs in the model's own shape, labels as the
model's classes). Attacks are named (see :func:`attack_from_name`) or given as spec objects
(:class:`FGSM`, :class:`PGD`, :class:`APGD`, :class:`APGDTargeted`, :class:`FABTargeted`,
:class:`AutoAttack`, :class:`CarliniWagnerL2`, :class:`SquareAttack`, :class:`HopSkipJump`). Gradient
attacks need a model with gradients (a torch module, a converted scikit-learn model); on any other model
they raise :class:`GradientUnavailableError` before anything runs, and the black-box attacks remain:
Square (scores) and HopSkipJump (labels only).

Epsilons are in the input's own units. Every adversarial input is clipped to the valid range: the one
declared with ``valid_range``, or else one inferred from the data — [0, 1] if the data lies in it,
[-1, 1] or [0, 255] likewise, the data's own minimum and maximum otherwise — and the report says which.

All attacks run batched and vectorised in torch; gradients are taken with respect to the inputs only.
``torch.set_num_threads`` is left to the caller.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import numpy as np

from garrison.assess.adapters import (
    GradientUnavailableError,
    ModelAdapter,
    OutputKind,
    as_model,
    require_torch,
    to_numpy,
)
from garrison.assess.attack_core import CountingForward, flat_norm
from garrison.assess.attacks import (
    APGD,
    FGSM,
    PGD,
    APGDTargeted,
    AttackSpec,
    AutoAttack,
    CarliniWagnerL2,
    FABTargeted,
    HopSkipJump,
    SquareAttack,
    attack_from_name,
)
from garrison.assess.results import AttackOutcome, AttackResult, EvasionReport, ModelInfo
from garrison.core.errors import ConfigError, InputError

__all__ = [
    "APGD",
    "FGSM",
    "PGD",
    "APGDTargeted",
    "AttackSpec",
    "AutoAttack",
    "CarliniWagnerL2",
    "FABTargeted",
    "HopSkipJump",
    "SquareAttack",
    "attack_from_name",
    "infer_valid_range",
    "run_attack",
    "run_evasion",
]

if TYPE_CHECKING:
    pass


def infer_valid_range(x: np.ndarray) -> tuple[float, float]:
    """[0, 1], [-1, 1] or [0, 255] when the data lies inside, else the data's own min and max."""
    if x.size == 0:
        return (0.0, 1.0)
    lo, hi = float(np.min(x)), float(np.max(x))
    for a, b in ((0.0, 1.0), (-1.0, 1.0), (0.0, 255.0)):
        if lo >= a and hi <= b:
            return (a, b)
    return (lo, hi)


def _params(spec: AttackSpec) -> tuple[tuple[str, Any], ...]:
    return tuple((f.name, getattr(spec, f.name)) for f in fields(spec))


class _Prepared:
    """Inputs as torch tensors, labels as class indices, clean predictions and the valid range."""

    def __init__(
        self, adapter: ModelAdapter, x: Any, y: Any, valid_range: tuple[float, float] | None, batch_size: int
    ) -> None:
        torch = require_torch("evasion attacks")
        xn = to_numpy(x)
        if xn.ndim < 2 or len(xn) == 0:
            raise InputError(f"expected a batch of inputs (N, ...), got shape {xn.shape}")
        self.x = torch.as_tensor(np.ascontiguousarray(xn, dtype=np.float32))
        yi = adapter.label_indices(y)
        if len(yi) != len(xn):
            raise InputError(f"{len(xn)} inputs but {len(yi)} labels")
        self.y = torch.as_tensor(yi)
        self.inferred = valid_range is None
        self.lo, self.hi = (
            infer_valid_range(xn) if valid_range is None else (float(valid_range[0]), float(valid_range[1]))
        )
        self.clean_correct = adapter.predict(xn) == yi
        if len(yi) and int(yi.max()) >= adapter.n_classes:
            raise InputError(
                f"label {int(yi.max())} is not a class of {adapter.name}, which has {adapter.n_classes} "
                f"(indices 0..{adapter.n_classes - 1})"
            )
        self.batch_size = batch_size


def _model_info(adapter: ModelAdapter, prep: _Prepared) -> ModelInfo:
    return ModelInfo.of(
        adapter, input_shape=tuple(prep.x.shape[1:]), valid_range=(prep.lo, prep.hi), inferred=prep.inferred
    )


def _check_applicable(adapter: ModelAdapter, spec: AttackSpec) -> None:
    if spec.needs_gradients and not adapter.has_gradients:
        raise GradientUnavailableError(
            f"{spec.label} needs input gradients, which {adapter.name} does not have",
            hint="use a black-box attack on this model: square (scores) or hopskipjump (labels only)",
        )
    if getattr(spec, "needs_scores", True) and adapter.output_kind is OutputKind.LABELS:
        raise GradientUnavailableError(f"{spec.label} needs scores, and {adapter.name} only returns labels")
    if isinstance(spec, APGD) and spec.loss == "dlr" and adapter.n_classes < 3:
        raise ConfigError(
            f"apgd-dlr needs at least 3 classes; {adapter.name} has {adapter.n_classes}", hint="use apgd-ce"
        )
    if isinstance(spec, APGDTargeted) and adapter.n_classes < 4:
        raise ConfigError(
            f"{spec.label} needs at least 4 classes; {adapter.name} has {adapter.n_classes}",
            hint="use apgd-ce, or fab-t for a targeted attack",
        )


def _run_prepared(
    adapter: ModelAdapter, prep: _Prepared, spec: AttackSpec, epsilon: float | None, seed: int
) -> tuple[AttackResult, AttackOutcome]:
    torch = require_torch("evasion attacks")
    _check_applicable(adapter, spec)
    if spec.uses_epsilon and (epsilon is None or epsilon <= 0):
        raise ConfigError(f"{spec.label} needs a positive epsilon, got {epsilon}")
    eps = float(epsilon) if spec.uses_epsilon and epsilon is not None else 0.0
    device = getattr(adapter, "device", None) or torch.device("cpu")
    gen = torch.Generator(device=device).manual_seed(seed)
    forward = CountingForward(adapter.torch_scores)
    x_adv = prep.x.clone()
    broken = torch.zeros(len(prep.x), dtype=torch.bool)
    todo = np.flatnonzero(prep.clean_correct)
    t0 = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(todo), prep.batch_size):
            idx = torch.as_tensor(todo[start : start + prep.batch_size])
            xb, yb = prep.x[idx].to(device), prep.y[idx].to(device)
            xa, ok = spec.run(forward, xb, yb, epsilon=eps, lo=prep.lo, hi=prep.hi, gen=gen)
            x_adv[idx] = xa.detach().cpu().to(x_adv.dtype)
            broken[idx] = ok.cpu()
    seconds = time.perf_counter() - t0
    norms = flat_norm(x_adv - prep.x, spec.norm).numpy()
    success = broken.numpy() & prep.clean_correct
    n = len(prep.x)
    n_correct = int(prep.clean_correct.sum())
    result = AttackResult(
        attack=spec.label,
        norm=spec.norm,
        epsilon=eps if spec.uses_epsilon else None,
        samples=n,
        clean_accuracy=n_correct / n,
        robust_accuracy=float((prep.clean_correct & ~success).sum()) / n,
        success_rate=float(success.sum()) / n_correct if n_correct else 0.0,
        median_perturbation=float(np.median(norms[success])) if success.any() else None,
        seconds=seconds,
        samples_per_second=n / seconds if seconds > 0 else float("inf"),
        queries_per_sample=forward.rows / n,
        parameters=_params(spec),
    )
    outcome = AttackOutcome(
        x_adv=x_adv.numpy(),
        success=success,
        clean_correct=prep.clean_correct.copy(),
        norms=norms,
        queries=forward.rows,
        seconds=seconds,
    )
    return result, outcome


def _spec(attack: str | AttackSpec) -> AttackSpec:
    return attack_from_name(attack) if isinstance(attack, str) else attack


def run_attack(
    model: Any,
    x: Any,
    y: Any,
    attack: str | AttackSpec,
    epsilon: float | None = None,
    *,
    valid_range: tuple[float, float] | None = None,
    batch_size: int = 256,
    seed: int = 0,
) -> tuple[AttackResult, AttackOutcome]:
    """Run one attack at one epsilon; return the summary and the per-sample outcome (adversarials)."""
    adapter = as_model(model)
    prep = _Prepared(adapter, x, y, valid_range, batch_size)
    return _run_prepared(adapter, prep, _spec(attack), epsilon, seed)


def run_evasion(
    model: Any,
    x: Any,
    y: Any,
    *,
    attacks: Sequence[str | AttackSpec] = ("fgsm", "pgd-10", "apgd-ce", "cw-l2"),
    epsilons: Sequence[float] = (0.1, 0.3),
    valid_range: tuple[float, float] | None = None,
    batch_size: int = 256,
    seed: int = 0,
) -> EvasionReport:
    """Run every attack at every epsilon (minimal-perturbation attacks once) and collect the results.

    Raises :class:`GradientUnavailableError` before running anything when an attack needs gradients
    (or scores) the model does not provide.
    """
    adapter = as_model(model)
    specs = [_spec(a) for a in attacks]
    prep = _Prepared(adapter, x, y, valid_range, batch_size)
    for spec in specs:
        _check_applicable(adapter, spec)
    results: list[AttackResult] = []
    for spec in specs:
        for eps in epsilons if spec.uses_epsilon else [None]:
            result, _ = _run_prepared(adapter, prep, spec, eps, seed)
            results.append(result)
    notes = []
    if prep.inferred:
        notes.append(
            f"valid input range [{prep.lo:g}, {prep.hi:g}] inferred from the data; "
            "pass valid_range to declare it"
        )
    if adapter.output_kind is OutputKind.PROBABILITIES:
        notes.append(
            f"{adapter.name} outputs probabilities, not logits: attacks use their logarithm; a saturated "
            "softmax can hide gradients, so robust accuracy may be overstated"
        )
    elif adapter.output_kind is OutputKind.LOG_PROBABILITIES:
        notes.append(f"{adapter.name} outputs log-probabilities; attacks use them as logits (same softmax)")
    return EvasionReport(model=_model_info(adapter, prep), results=tuple(results), notes=tuple(notes))
