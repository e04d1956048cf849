"""HopSkipJump, L2, labels only (Chen, Jordan & Wainwright 2020): decision-based, minimal perturbation.

Needs nothing but predicted labels. Starting from a misclassified blend of the input with random noise,
each iteration (1) binary-searches the blend towards the input until it sits on the decision boundary,
(2) estimates the boundary's normal from the labels of ``evals`` random probes around that point
(baseline-corrected Monte Carlo), and (3) steps along it with a geometrically shrinking step size that
keeps the point adversarial. Every sample advances together: a round of probes for all samples is one
batched call, so a model that is slow per call (a scikit-learn forest) pays per round, not per probe.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from garrison.assess.adapters import require_torch

if TYPE_CHECKING:
    import torch

Decide = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]
"""``decide(x, y)``: boolean per row, True where the model does not predict ``y``."""


def _view(v: torch.Tensor, ndim: int) -> torch.Tensor:
    return v.reshape((-1,) + (1,) * (ndim - 1))


def _blend(x: torch.Tensor, x_adv: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    a = _view(alpha, x.ndim)
    return (1 - a) * x + a * x_adv


def _boundary(
    decide: Decide, x: torch.Tensor, y: torch.Tensor, x_adv: torch.Tensor, theta: float
) -> torch.Tensor:
    """Binary search on the segment from ``x`` (correct) to ``x_adv`` (adversarial) to within ``theta``."""
    torch = require_torch("evasion attacks")
    low = torch.zeros(len(x), dtype=x.dtype, device=x.device)
    high = torch.ones(len(x), dtype=x.dtype, device=x.device)
    for _ in range(max(1, math.ceil(math.log2(1.0 / theta)))):
        mid = (low + high) / 2
        adv = decide(_blend(x, x_adv, mid), y)
        high = torch.where(adv, mid, high)
        low = torch.where(adv, low, mid)
    return _blend(x, x_adv, high)


def _initial(
    decide: Decide, x: torch.Tensor, y: torch.Tensor, lo: float, hi: float, gen: torch.Generator, tries: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A misclassified point per sample: uniform noise in the valid range, up to ``tries`` draws."""
    torch = require_torch("evasion attacks")
    found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    start = x.clone()
    for _ in range(tries):
        idx = (~found).nonzero()[:, 0]
        if len(idx) == 0:
            break
        noise = x.new_empty((len(idx), *x.shape[1:])).uniform_(lo, hi, generator=gen)
        adv = decide(noise, y[idx])
        start[idx[adv]] = noise[adv]
        found[idx[adv]] = True
    return start, found


def hop_skip_jump(
    decide: Decide,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    iterations: int,
    initial_evals: int,
    max_evals: int,
    lo: float,
    hi: float,
    gen: torch.Generator,
    init_tries: int = 100,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(x_adv, broken)``: the closest misclassified input found (L2) per sample."""
    torch = require_torch("evasion attacks")
    dim = x[0].numel()
    theta = 1.0 / (math.sqrt(dim) * dim)
    start, found = _initial(decide, x, y, lo, hi, gen, init_tries)
    best = x.clone()
    if not found.any():
        return best, found
    idx = found.nonzero()[:, 0]
    x0, y0 = x[idx], y[idx]
    xt = _boundary(decide, x0, y0, start[idx], theta)
    for t in range(1, iterations + 1):
        dist = (xt - x0).reshape(len(idx), -1).norm(dim=1)
        delta = math.sqrt(dim) * theta * dist
        evals = min(int(initial_evals * math.sqrt(t)), max_evals)
        k = len(idx)
        per_probe = (k, evals, *([1] * (x.ndim - 1)))
        u = x0.new_empty((k, evals, *x.shape[1:])).normal_(generator=gen)
        u = u / u.reshape(k, evals, -1).norm(dim=2).clamp_min(1e-12).reshape(per_probe)
        probes = (xt[:, None] + delta.reshape((k, 1, *([1] * (x.ndim - 1)))) * u).clamp(lo, hi)
        labels = y0[:, None].expand(-1, evals).reshape(-1)
        phi = decide(probes.reshape(-1, *x.shape[1:]), labels).reshape(k, evals).to(x.dtype) * 2 - 1
        mean = phi.mean(1, keepdim=True)
        centred = torch.where(mean.abs() == 1, phi, phi - mean)
        grad = (centred.reshape(per_probe) * u).mean(1)
        grad = grad / _view(grad.reshape(k, -1).norm(dim=1).clamp_min(1e-12), x.ndim)
        step = dist / math.sqrt(t)
        pending = torch.ones(len(idx), dtype=torch.bool, device=x.device)
        candidate = xt.clone()
        for _ in range(25):
            trial = (xt + _view(step, x.ndim) * grad).clamp(lo, hi)
            ok = decide(trial, y0) & pending
            candidate = torch.where(_view(ok, x.ndim), trial, candidate)
            pending &= ~ok
            if not pending.any():
                break
            step = torch.where(pending, step / 2, step)
        xt = _boundary(decide, x0, y0, candidate, theta)
    best[idx] = xt
    return best, found
