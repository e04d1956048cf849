"""Shared pieces of the evasion attacks: norms, projection, random starts, losses, query counting.

Everything here works on torch tensors with the batch in the first dimension; ``lo``/``hi`` are the
valid input range. torch is imported by the caller; functions take tensors and use their methods.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

Forward = Callable[["torch.Tensor"], "torch.Tensor"]
"""A function from a batch of inputs to logit-like scores (N, C)."""

NORMS = ("linf", "l2")


class CountingForward:
    """Wraps a forward function and counts the rows it evaluates (the attack's queries)."""

    def __init__(self, forward: Forward) -> None:
        self.forward = forward
        self.rows = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += len(x)
        return self.forward(x)


def _view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a per-sample vector (N,) to broadcast against ``like`` (N, ...)."""
    return v.reshape((-1,) + (1,) * (like.ndim - 1))


def flat_norm(d: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample norm of ``d`` (N, ...)."""
    flat = d.reshape(len(d), -1)
    if norm == "linf":
        return flat.abs().amax(1) if flat.shape[1] else flat.new_zeros(len(d))
    out: torch.Tensor = flat.norm(dim=1)
    return out


def project(
    x_adv: torch.Tensor, x: torch.Tensor, eps: torch.Tensor | float, norm: str, lo: float, hi: float
) -> torch.Tensor:
    """Project ``x_adv`` onto the ``eps`` ball around ``x`` and then onto [lo, hi].

    Clipping to the range after the ball can only shrink each coordinate of the perturbation, so the
    result is inside both.
    """
    d = x_adv - x
    if norm == "linf":
        e = d.new_tensor(eps) if isinstance(eps, float) else _view(eps, d)
        d = d.clamp(min=-e, max=e)
    else:
        scale = (eps / flat_norm(d, "l2").clamp_min(1e-12)).clamp(max=1.0)
        d = d * _view(scale, d)
    return (x + d).clamp(lo, hi)


def step_direction(g: torch.Tensor, norm: str) -> torch.Tensor:
    """Steepest ascent direction of unit size in ``norm``: sign for L∞, normalised gradient for L2."""
    if norm == "linf":
        return g.sign()
    return g / _view(flat_norm(g, "l2").clamp_min(1e-12), g)


def random_start(
    x: torch.Tensor, eps: float, norm: str, gen: torch.Generator, lo: float, hi: float
) -> torch.Tensor:
    """A uniformly random point of the L∞ ball, or a random direction at a uniform radius for L2."""
    if norm == "linf":
        u = x.new_empty(x.shape).uniform_(-eps, eps, generator=gen)
        return (x + u).clamp(lo, hi)
    d = x.new_empty(x.shape).normal_(generator=gen)
    d = d / _view(flat_norm(d, "l2").clamp_min(1e-12), d)
    r = x.new_empty(len(x)).uniform_(0, 1, generator=gen) * eps
    return (x + d * _view(r, d)).clamp(lo, hi)


def margin(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """True class score minus the best other class score (negative means misclassified)."""
    true = z.gather(1, y[:, None])[:, 0]
    other = z.scatter(1, y[:, None], -math.inf).amax(1)
    return true - other


def dlr_loss(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Difference of logits ratio (Croce & Hein 2020), per sample; larger means more wrong.

    ``-(z_y - max_{i≠y} z_i) / (z_π1 - z_π3 + 1e-12)`` with π the scores sorted in decreasing order;
    invariant to shifting and rescaling the logits. Needs at least three classes.
    """
    top = z.topk(3, dim=1).values
    return -margin(z, y) / (top[:, 0] - top[:, 2] + 1e-12)


def ce_loss(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy per sample."""
    return z.logsumexp(1) - z.gather(1, y[:, None])[:, 0]


def dlr_targeted_loss(z: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Targeted difference of logits ratio (Croce & Hein 2020), per sample; larger means nearer ``t``.

    ``-(z_y - z_t) / (z_π1 - (z_π3 + z_π4) / 2 + 1e-12)`` with π the scores sorted in decreasing
    order. Needs at least four classes.
    """
    top = z.topk(4, dim=1).values
    diff = z.gather(1, y[:, None])[:, 0] - z.gather(1, t[:, None])[:, 0]
    return -diff / (top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12)


def other_classes_by_score(z: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` classes other than ``y`` with the highest scores, best first, as (N, k) indices."""
    masked = z.scatter(1, y[:, None], -math.inf)
    out: torch.Tensor = masked.topk(k, dim=1).indices
    return out


def targets_per_pass(n_samples: int, n_targets: int, numel: int, max_values: int = 2**24) -> int:
    """How many target classes to attack side by side (the batch stacked once per target): all that are
    left while the stacked inputs stay under ``max_values`` numbers, at least one.
    """
    return max(1, min(n_targets, max_values // max(n_samples * numel, 1)))


def first_row_per_sample(samples: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For rows belonging to ``samples`` (sample index per row, repeats allowed): the distinct samples and,
    for each, the position of its first row.
    """
    position = samples.new_ones(len(samples)).cumsum(0) - 1
    size = int(samples.max()) + 1 if len(samples) else 0
    first = samples.new_full((size,), len(samples)).scatter_reduce(0, samples, position, reduce="amin")
    present = (first < len(samples)).nonzero()[:, 0]
    return present, first[present]
