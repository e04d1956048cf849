"""Hardening helpers: make a model harder to attack, then measure it again with the same attacks.

Three defences, each the standard one for the attacks in this package:

- :func:`adversarial_training` against evasion: Madry et al. (2018) PGD adversarial training of a
  PyTorch module. Each batch is attacked with an L∞ PGD (random start, ``steps`` signed-gradient steps
  of ``step_size``, projection on the ε ball and the valid range, the maximum-loss iterate kept, not
  the first misclassified one as the evaluation attacks do) and the loss is ``mix`` times the
  cross-entropy on the adversarial batch plus ``1 − mix`` times the clean one (``mix=1`` is Madry's
  recipe; 0.5 Goodfellow et al.'s mixed objective). Adam with ``lr``. The caller's module is copied,
  never changed.
- :func:`harden_outputs` against membership inference and extraction: a black-box
  :class:`ModelAdapter` that returns only what the gateway's output controls
  (:mod:`garrison.gateway.output_controls`) let a caller see — the label, the top k classes (scores
  optionally rounded), or every score rounded to ``decimals`` — so ``run_membership`` and
  ``run_extraction`` measure what an attacker behind the gateway can still do.
- ``train_dp`` (:mod:`garrison.assess.hardening_dp`) against membership inference: DP-SGD with
  Opacus, ε spent reported by its accountant.

torch is imported when a helper runs; Opacus only by ``train_dp``
(:mod:`garrison.assess.hardening_dp`, ``pip install 'garrison[dp]'``).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from garrison.assess.adapters import (
    ModelAdapter,
    OutputKind,
    TorchModel,
    as_model,
    require_torch,
    to_numpy,
)
from garrison.assess.attack_core import ce_loss, project, random_start
from garrison.core.errors import ConfigError, InputError

if TYPE_CHECKING:
    import torch

__all__ = [
    "OUTPUT_MODES",
    "AdversarialTrainingHistory",
    "EpochStats",
    "HardenedOutputs",
    "adversarial_training",
    "harden_outputs",
]

OUTPUT_MODES = ("label", "top-k", "round")
"""What :func:`harden_outputs` can reduce a model's output to (``top_k`` is read as ``top-k``)."""

_LOG_FLOOR = 1e-12
"""Probabilities are floored here before the log, so a hidden or zero score gives a finite score."""


# --- adversarial training ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class EpochStats:
    """One epoch of adversarial training, measured on the training batches as they were used."""

    epoch: int
    """Epoch number, from 1."""
    clean_loss: float
    """Mean cross-entropy on the clean batches (before each step's update)."""
    clean_accuracy: float
    """Accuracy on the clean batches (before each step's update)."""
    adversarial_loss: float
    """Mean cross-entropy on the PGD batches (before each step's update)."""
    adversarial_accuracy: float
    """Accuracy on the PGD batches: the training-set robust accuracy, a running estimate."""
    seconds: float
    """Wall-clock time of the epoch, attack included."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "epoch": self.epoch,
            "clean_loss": self.clean_loss,
            "clean_accuracy": self.clean_accuracy,
            "adversarial_loss": self.adversarial_loss,
            "adversarial_accuracy": self.adversarial_accuracy,
            "seconds": self.seconds,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AdversarialTrainingHistory:
    """How :func:`adversarial_training` trained, and how each epoch went."""

    epsilon: float
    """L∞ radius of the training attack."""
    steps: int
    """PGD steps per batch."""
    step_size: float
    """PGD step size."""
    mix: float
    """Weight of the adversarial loss (1 − mix on the clean loss)."""
    valid_range: tuple[float, float]
    """Input range the adversarial examples were clipped to."""
    epochs: tuple[EpochStats, ...]
    """One entry per epoch, in order."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form."""
        return {
            "epsilon": self.epsilon,
            "steps": self.steps,
            "step_size": self.step_size,
            "mix": self.mix,
            "valid_range": list(self.valid_range),
            "epochs": [e.to_dict() for e in self.epochs],
        }


def positive(name: str, value: Any, *, integer: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``value`` is a positive number (integer with ``integer``)."""
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not value > 0 or math.isnan(value):
        what = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"{name} must be {what}, not {value!r}")


def training_arrays(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and integer class labels as numpy, checked: non-empty, same length, indices from 0."""
    xa, ya = to_numpy(x), to_numpy(y).reshape(-1)
    if len(xa) == 0:
        raise InputError("no training examples")
    if len(xa) != len(ya):
        raise InputError(f"{len(xa)} inputs but {len(ya)} labels")
    if ya.dtype.kind not in "iu" and (ya.dtype.kind != "f" or not np.all(ya == np.round(ya))):
        raise InputError(f"labels must be class indices (integers), not {ya.dtype}")
    if ya.min() < 0:
        raise InputError(f"labels must be class indices from 0, found {int(ya.min())}")
    return xa, ya.astype(np.int64)


def rng_devices(module: Any) -> list[int]:
    """The CUDA device whose random state ``torch.random.fork_rng`` must save for ``module``."""
    params = list(module.parameters())
    if params and params[0].device.type == "cuda":
        return [params[0].device.index or 0]
    return []


@dataclass(frozen=True, slots=True, kw_only=True)
class _PgdSettings:
    """The training attack: L∞ radius, steps, step size and valid range."""

    eps: float
    """L∞ radius."""
    steps: int
    """Ascent steps."""
    step_size: float
    """Size of each signed-gradient step."""
    lo: float
    """Lowest valid input value."""
    hi: float
    """Highest valid input value."""


def _pgd_train_batch(
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    pgd: _PgdSettings,
    gen: torch.Generator,
) -> torch.Tensor:
    """Madry's L∞ PGD for training: random start, ``steps`` ascent steps, the highest-loss iterate."""
    th = require_torch("adversarial training")
    xa = random_start(x, pgd.eps, "linf", gen, pgd.lo, pgd.hi)
    best = xa
    best_loss = th.full((len(x),), -math.inf, dtype=x.dtype, device=x.device)
    view = (-1,) + (1,) * (x.ndim - 1)
    for _ in range(pgd.steps):
        with th.enable_grad():
            xg = xa.detach().requires_grad_(True)
            per = ce_loss(forward(xg), y)
            (g,) = th.autograd.grad(per.sum(), xg)
        per = per.detach()
        better = per > best_loss
        best = th.where(better.reshape(view), xa, best)
        best_loss = th.where(better, per, best_loss)
        xa = project(xa + pgd.step_size * g.sign(), x, pgd.eps, "linf", pgd.lo, pgd.hi).detach()
    with th.no_grad():
        last = ce_loss(forward(xa), y)
    better = last > best_loss
    out: torch.Tensor = th.where(better.reshape(view), xa, best).detach()
    return out


def _adversarial_epoch(
    adapter: TorchModel,
    opt: Any,
    data: tuple[torch.Tensor, torch.Tensor],
    order: torch.Tensor,
    *,
    batch_size: int,
    mix: float,
    pgd: _PgdSettings,
    gen: torch.Generator,
) -> np.ndarray:
    """One pass; returns the sums of clean loss, clean hits, adversarial loss, adversarial hits."""
    torch = require_torch("adversarial training")
    xt, yt = data
    model = adapter.module
    sums = np.zeros(4)
    for start in range(0, len(xt), batch_size):
        idx = order[start : start + batch_size]
        xb, yb = xt[idx], yt[idx]
        model.eval()
        x_adv = _pgd_train_batch(adapter.torch_scores, xb, yb, pgd, gen)
        model.train()
        opt.zero_grad()
        both = torch.cat([yb, yb])
        z = adapter.torch_scores(torch.cat([xb, x_adv]))
        per = ce_loss(z, both)
        clean, adv = per[: len(xb)], per[len(xb) :]
        torch.autograd.backward((1.0 - mix) * clean.mean() + mix * adv.mean())
        opt.step()
        with torch.no_grad():
            right = (z.argmax(1) == both).to(per.dtype)
            sums += [
                float(clean.sum()),
                float(right[: len(xb)].sum()),
                float(adv.sum()),
                float(right[len(xb) :].sum()),
            ]
    return sums


def _pgd_settings(
    epsilon: float,
    steps: int,
    step_size: float | None,
    valid_range: tuple[float, float] | None,
    x: np.ndarray,
) -> _PgdSettings:
    positive("epsilon", epsilon)
    positive("steps", steps, integer=True)
    if step_size is None:
        step_size = 2.5 * float(epsilon) / steps
    positive("step_size", step_size)
    if valid_range is None:
        from garrison.assess.evasion import infer_valid_range

        valid_range = infer_valid_range(x)
    lo, hi = float(valid_range[0]), float(valid_range[1])
    if not lo < hi:
        raise ConfigError(f"valid_range must be (low, high) with low < high, not {valid_range!r}")
    return _PgdSettings(eps=float(epsilon), steps=steps, step_size=float(step_size), lo=lo, hi=hi)


def adversarial_training(
    module: Any,
    x: Any,
    y: Any,
    *,
    epsilon: float,
    steps: int,
    step_size: float | None = None,
    epochs: int,
    batch_size: int,
    lr: float,
    mix: float = 0.5,
    seed: int,
    valid_range: tuple[float, float] | None = None,
    progress: Callable[[EpochStats], None] | None = None,
) -> tuple[Any, AdversarialTrainingHistory]:
    """PGD adversarial training (Madry et al. 2018) of a copy of ``module``; returns it and its history.

    ``x`` are inputs in the module's shape (numpy or torch), ``y`` class indices. Every batch of
    ``batch_size`` shuffled rows is attacked with L∞ PGD of radius ``epsilon`` (``steps`` steps of
    ``step_size``, default ``2.5 · epsilon / steps``, from a random start) on the current weights, in
    eval mode; then one Adam step (``lr``) on ``mix · CE(adversarial) + (1 − mix) · CE(clean)`` in
    train mode (``mix=0`` is plain training with the same batches, for comparison). ``valid_range``
    bounds the adversarial inputs (default: read from ``x`` as the evasion attacks do). ``progress``
    is called with each epoch's :class:`EpochStats`. Deterministic for a given ``seed`` on CPU; the
    caller's module and the global random state are left as they were. The returned module is in eval
    mode.
    """
    torch = require_torch("adversarial training")
    if not isinstance(module, torch.nn.Module):
        raise InputError(f"adversarial training needs a torch.nn.Module, not {type(module).__name__}")
    positive("epochs", epochs, integer=True)
    positive("batch_size", batch_size, integer=True)
    positive("lr", lr)
    if isinstance(mix, bool) or not isinstance(mix, int | float) or not 0.0 <= mix <= 1.0:
        raise ConfigError(f"mix must be a number from 0 to 1, not {mix!r}")
    xa, ya = training_arrays(x, y)
    pgd = _pgd_settings(epsilon, steps, step_size, valid_range, xa)
    model = copy.deepcopy(module)
    adapter = TorchModel(model, batch_size=batch_size)
    params = list(model.parameters())
    if not params:
        raise InputError(f"{adapter.name} has no parameters to train")
    xt = torch.as_tensor(xa).to(adapter.device, params[0].dtype)
    yt = torch.as_tensor(ya).to(adapter.device)
    adapter.ensure_probed(xt)
    if int(ya.max()) >= adapter.n_classes:
        raise InputError(f"label {int(ya.max())} is out of range for a model of {adapter.n_classes} classes")
    opt = torch.optim.Adam(params, lr=lr)
    stats: list[EpochStats] = []
    with torch.random.fork_rng(devices=rng_devices(model)):
        torch.manual_seed(seed)
        order_gen = torch.Generator().manual_seed(seed)
        attack_gen = torch.Generator(device=adapter.device).manual_seed(seed + 1)
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            order = torch.randperm(len(xt), generator=order_gen).to(adapter.device)
            sums = _adversarial_epoch(
                adapter, opt, (xt, yt), order, batch_size=batch_size, mix=float(mix), pgd=pgd, gen=attack_gen
            )
            n = float(len(xt))
            entry = EpochStats(
                epoch=epoch,
                clean_loss=float(sums[0]) / n,
                clean_accuracy=float(sums[1]) / n,
                adversarial_loss=float(sums[2]) / n,
                adversarial_accuracy=float(sums[3]) / n,
                seconds=time.perf_counter() - t0,
            )
            stats.append(entry)
            if progress is not None:
                progress(entry)
    model.eval()
    history = AdversarialTrainingHistory(
        epsilon=pgd.eps,
        steps=pgd.steps,
        step_size=pgd.step_size,
        mix=float(mix),
        valid_range=(pgd.lo, pgd.hi),
        epochs=tuple(stats),
    )
    return model, history


# --- output hardening --------------------------------------------------------------------------------


class HardenedOutputs(ModelAdapter):
    """A model as a caller sees it behind the gateway's output control: black-box, reduced output.

    The reduction is the gateway's (:func:`garrison.gateway.output_controls.apply_output_policy`)
    applied to the model's probability rows:

    - ``label``: the argmax of each row; :meth:`probabilities` is its one-hot vector.
    - ``top-k``: the ``k`` largest scores, best first (ties to the lower class index), rounded to
      ``decimals`` when given; :meth:`probabilities` holds them in their columns and 0 in the hidden
      ones (no invented mass: an attack decides how to read the hidden classes).
    - ``round``: every score rounded to ``decimals`` (half to even, as numpy rounds).

    :meth:`predict` is the label a caller reads from what it sees (the top entry; in round mode the
    first column of the largest rounded score). :meth:`outputs` returns the rows exactly as the
    gateway would send them. There are no gradients.
    """

    def __init__(
        self,
        model: Any,
        *,
        mode: str,
        k: int = 1,
        decimals: int | None = None,
        batch_size: int | None = None,
    ) -> None:
        canonical = "top-k" if mode == "top_k" else mode
        if canonical not in OUTPUT_MODES:
            raise ConfigError(f"unknown output mode {mode!r}", hint=f"use one of {', '.join(OUTPUT_MODES)}")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 1000:
            raise ConfigError(f"k must be an integer from 1 to 1000, not {k!r}")
        if decimals is not None and (
            isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 15
        ):
            raise ConfigError(f"decimals must be an integer from 0 to 15, not {decimals!r}")
        if canonical == "round" and decimals is None:
            raise ConfigError("round mode needs decimals", hint="pass decimals=1, 2, …")
        self.inner = as_model(model)
        self.framework = self.inner.framework
        self.mode = canonical
        self.k = k
        self.decimals = decimals
        self.batch_size = batch_size or self.inner.batch_size
        self.name = f"{self.inner.name} [{self.describe()}]"

    def describe(self) -> str:
        """The output control in words: ``label``, ``top-3``, ``top-1, 2 decimals``, ``round(1)``."""
        if self.mode == "label":
            return "label"
        if self.mode == "round":
            return f"round({self.decimals})"
        return f"top-{self.k}" + ("" if self.decimals is None else f", {self.decimals} decimals")

    @property
    def output_kind(self) -> OutputKind:
        """Labels in label mode, probabilities (reduced) otherwise."""
        return OutputKind.LABELS if self.mode == "label" else OutputKind.PROBABILITIES

    @property
    def n_classes(self) -> int:
        """The wrapped model's class count."""
        return self.inner.n_classes

    @property
    def has_gradients(self) -> bool:
        """Never: the caller of a gateway route sees outputs only."""
        return False

    def label_indices(self, y: Any) -> np.ndarray:
        """As the wrapped model reads labels."""
        return self.inner.label_indices(y)

    def _full(self, x: Any) -> np.ndarray:
        out: np.ndarray = np.asarray(self.inner.probabilities(x), dtype=np.float64)
        return out

    def _rounded(self, p: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.round(p, 0 if self.decimals is None else self.decimals)
        return out

    def _top(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = min(self.k, p.shape[1])
        index = np.argsort(-p, axis=1, kind="stable")[:, :k]
        best = np.take_along_axis(p, index, axis=1)
        if self.decimals is not None:
            best = np.round(best, self.decimals)
        return index, best

    def _visible(self, x: Any) -> np.ndarray:
        """What the caller sees, as an (N, C) array (float64)."""
        p = self._full(x)
        if self.mode == "round":
            return self._rounded(p)
        if self.mode == "label":
            onehot: np.ndarray = np.eye(p.shape[1], dtype=np.float64)[np.argmax(p, axis=1)]
            return onehot
        index, best = self._top(p)
        shown = np.zeros_like(p)
        np.put_along_axis(shown, index, best, axis=1)
        return shown

    def outputs(self, x: Any) -> list[Any]:
        """The rows as the gateway sends them: labels, ``[[class, score], …]`` best first, or rounded rows."""
        p = self._full(x)
        if self.mode == "label":
            return [int(i) for i in np.argmax(p, axis=1)]
        if self.mode == "round":
            rounded: list[Any] = self._rounded(p).tolist()
            return rounded
        index, best = self._top(p)
        return [
            [[int(i), float(v)] for i, v in zip(ir, br, strict=True)]
            for ir, br in zip(index.tolist(), best.tolist(), strict=True)
        ]

    def predict(self, x: Any) -> np.ndarray:
        """The label the caller reads: the shown label, the first top-k entry, the largest rounded score."""
        p = self._full(x)
        if self.mode == "round":
            labels: np.ndarray = np.argmax(self._rounded(p), axis=1)
            return labels
        if self.mode == "label":
            top: np.ndarray = np.argmax(p, axis=1)
            return top
        first: np.ndarray = self._top(p)[0][:, 0]
        return first

    def probabilities(self, x: Any) -> np.ndarray:
        """The visible scores as an (N, C) float32 array (hidden classes 0; one-hot in label mode)."""
        out: np.ndarray = self._visible(x).astype(np.float32)
        return out

    def scores(self, x: Any) -> np.ndarray:
        """Log of the visible scores, floored at 1e-12 (what an attack computes from the response)."""
        out: np.ndarray = np.log(np.maximum(self._visible(x), _LOG_FLOOR))
        return out

    def torch_scores(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`scores` as a tensor, not differentiable."""
        th = require_torch("hardened model scores")
        out: torch.Tensor = th.as_tensor(self.scores(x.detach().cpu().numpy()))
        return out


def harden_outputs(
    adapter_or_model: Any,
    *,
    mode: str = "label",
    k: int = 1,
    decimals: int | None = None,
) -> HardenedOutputs:
    """``adapter_or_model`` behind the gateway's output control ``mode`` (``label``, ``top-k``, ``round``).

    ``k`` is the class count of ``top-k``; ``decimals`` the rounding of ``round`` (required) or of the
    top-k scores (optional) — the same fields as the gateway's ``OutputPolicy``. Pass the result to
    :func:`~garrison.assess.privacy.run_membership` (wrap the shadows' models the same way in
    ``train_fn``: the attacker knows the policy) or :func:`~garrison.assess.extraction.run_extraction`
    (``output="probabilities"``: the attacker gets exactly the reduced output).
    """
    return HardenedOutputs(adapter_or_model, mode=mode, k=k, decimals=decimals)
