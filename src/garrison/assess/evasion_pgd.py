"""Gradient attacks in a norm ball: FGSM, PGD with random restarts, APGD (CE and DLR losses) and APGD-T
(targeted DLR towards each of the best-scoring other classes in turn).

Each function takes a forward function (inputs to logit-like scores), the inputs ``x`` and true class
indices ``y`` of the samples to attack (all classified correctly clean), and returns ``(x_adv, broken)``:
the first misclassified input found for each broken sample, the clean input for the others.

Samples are dropped from the batch as soon as an iterate misclassifies them, so no work is spent on
them; since a sample only ever counts as broken by an input inside the budget, this changes the speed
and never the strength: a sample is broken if ANY iteration of ANY restart broke it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from garrison.assess.adapters import require_torch
from garrison.assess.attack_core import (
    Forward,
    ce_loss,
    dlr_loss,
    dlr_targeted_loss,
    first_row_per_sample,
    other_classes_by_score,
    project,
    random_start,
    step_direction,
    targets_per_pass,
)

if TYPE_CHECKING:
    import torch


def _loss_and_grad(
    forward: Forward, x: torch.Tensor, y: torch.Tensor, loss: str, target: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-sample loss, its input gradient and the scores at ``x`` (``target`` for ``dlr-t`` only)."""
    torch = require_torch("evasion attacks")
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        z = forward(xg)
        if loss == "ce":
            per = ce_loss(z, y)
        elif loss == "dlr":
            per = dlr_loss(z, y)
        else:
            assert target is not None
            per = dlr_targeted_loss(z, y, target)
        (g,) = torch.autograd.grad(per.sum(), xg)
    return per.detach(), g.detach(), z.detach()


def fgsm(
    forward: Forward, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str, lo: float, hi: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of size ``eps`` along the sign (L∞) or normalised (L2) gradient of the cross-entropy."""
    torch = require_torch("evasion attacks")
    _, g, _ = _loss_and_grad(forward, x, y, "ce")
    x_adv = project(x + eps * step_direction(g, norm), x, eps, norm, lo, hi)
    with torch.no_grad():
        broken = forward(x_adv).argmax(1) != y
    return torch.where(broken.reshape((-1,) + (1,) * (x.ndim - 1)), x_adv, x), broken


def pgd(
    forward: Forward,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str,
    steps: int,
    step_size: float,
    restarts: int,
    random_init: bool,
    lo: float,
    hi: float,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Projected gradient ascent on the cross-entropy (Madry et al. 2018), with ``restarts`` random starts."""
    torch = require_torch("evasion attacks")
    best = x.clone()
    broken = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for restart in range(restarts):
        idx = (~broken).nonzero()[:, 0]
        if len(idx) == 0:
            break
        x0, y0 = x[idx], y[idx]
        xa = random_start(x0, eps, norm, gen, lo, hi) if (random_init or restart > 0) else x0.clone()
        for _ in range(steps):
            _, g, z = _loss_and_grad(forward, xa, y0, "ce")
            wrong = z.argmax(1) != y0
            if wrong.any():
                hit = idx[wrong]
                best[hit] = xa[wrong]
                broken[hit] = True
                keep = ~wrong
                idx, x0, y0, xa, g = idx[keep], x0[keep], y0[keep], xa[keep], g[keep]
                if len(idx) == 0:
                    break
            xa = project(xa + step_size * step_direction(g, norm), x0, eps, norm, lo, hi)
        if len(idx):
            with torch.no_grad():
                wrong = forward(xa).argmax(1) != y0
            best[idx[wrong]] = xa[wrong]
            broken[idx[wrong]] = True
    return best, broken


def _settled(broken: torch.Tensor, group: torch.Tensor | None) -> torch.Tensor:
    """Rows that need no more work: broken ones and, with ``group``, every row of a group with one."""
    if group is None:
        return broken
    th = require_torch("evasion attacks")
    done = th.zeros(int(group.max()) + 1 if len(group) else 0, dtype=th.bool, device=group.device)
    done[group[broken]] = True
    out: torch.Tensor = done[group]
    return out


def apgd_checkpoints(steps: int) -> list[int]:
    """Iterations at which APGD may halve its step: ``ceil(p_j * steps)`` with p_0 = 0, p_1 = 0.22 and
    p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06) (Croce & Hein 2020, section 3.2).
    """
    ps = [0.0, 0.22]
    while True:
        nxt = ps[-1] + max(ps[-1] - ps[-2] - 0.03, 0.06)
        if nxt > 1:
            break
        ps.append(nxt)
    out = sorted({math.ceil(round(p * steps, 6)) for p in ps[1:]})
    return [w for w in out if 0 < w < steps]


class _ApgdState:
    """Per-sample tensors of one APGD restart, all indexed alike so that broken samples drop out together."""

    def __init__(
        self,
        idx: torch.Tensor,
        x0: torch.Tensor,
        y0: torch.Tensor,
        t0: torch.Tensor,
        xk: torch.Tensor,
        eps: float,
    ) -> None:
        torch = require_torch("evasion attacks")
        n = len(idx)
        self.idx, self.x0, self.y0, self.t0, self.xk = idx, x0, y0, t0, xk
        self.eta = torch.full((n,), 2.0 * eps, dtype=x0.dtype, device=x0.device)
        self.f_prev = torch.full((n,), -math.inf, dtype=x0.dtype, device=x0.device)
        self.f_best = self.f_prev.clone()
        self.x_best, self.g_best, self.x_prev = xk.clone(), torch.zeros_like(xk), xk.clone()
        self.increases = torch.zeros(n, dtype=x0.dtype, device=x0.device)
        self.eta_ckpt, self.f_best_ckpt = self.eta.clone(), self.f_best.clone()

    _FIELDS = (
        "idx",
        "x0",
        "y0",
        "t0",
        "xk",
        "eta",
        "f_prev",
        "f_best",
        "x_best",
        "g_best",
        "x_prev",
        "increases",
    )

    def keep(self, mask: torch.Tensor) -> None:
        """Drop the samples where ``mask`` is False."""
        for name in (*self._FIELDS, "eta_ckpt", "f_best_ckpt"):
            setattr(self, name, getattr(self, name)[mask])

    def checkpoint(self, g: torch.Tensor, span: int, rho: float) -> torch.Tensor:
        """Halve the step where progress stalled and restart those samples from their best point."""
        th = require_torch("evasion attacks")
        reduce = (self.increases < rho * span) | (
            (self.eta_ckpt == self.eta) & (self.f_best_ckpt == self.f_best)
        )
        self.eta = th.where(reduce, self.eta / 2, self.eta)
        mask = reduce.reshape((-1,) + (1,) * (g.ndim - 1))
        self.xk = th.where(mask, self.x_best, self.xk)
        self.increases.zero_()
        self.eta_ckpt, self.f_best_ckpt = self.eta.clone(), self.f_best.clone()
        out: torch.Tensor = th.where(mask, self.g_best, g)
        return out

    def record(self, f: torch.Tensor, g: torch.Tensor, first: bool) -> None:
        """Count loss increases and remember each sample's best point."""
        torch = require_torch("evasion attacks")
        if not first:
            self.increases += (f > self.f_prev).to(f.dtype)
        better = f > self.f_best
        if better.any():
            self.f_best = torch.where(better, f, self.f_best)
            mask = better.reshape((-1,) + (1,) * (g.ndim - 1))
            self.x_best = torch.where(mask, self.xk, self.x_best)
            self.g_best = torch.where(mask, g, self.g_best)
        self.f_prev = f


def apgd(
    forward: Forward,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str,
    steps: int,
    restarts: int,
    loss: str,
    lo: float,
    hi: float,
    gen: torch.Generator,
    rho: float = 0.75,
    momentum: float = 0.75,
    target: torch.Tensor | None = None,
    group: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Auto-PGD (Croce & Hein 2020): momentum 0.75, step 2ε halved at checkpoints when fewer than
    ``rho`` of the steps since the last checkpoint increased the loss, or when neither the step nor the
    best loss changed since it; a halving restarts from the best point found.

    ``loss`` is ``ce``, ``dlr`` or ``dlr-t`` (targeted DLR towards ``target``, one class per sample). A
    sample counts as broken when it is misclassified, as whatever class. ``group`` (one id per row) ties
    rows that stand for the same sample: once one of them is broken, the others stop too.
    """
    torch = require_torch("evasion attacks")
    checkpoints = set(apgd_checkpoints(steps))
    best = x.clone()
    broken = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    view = (-1,) + (1,) * (x.ndim - 1)
    for _ in range(restarts):
        idx = (~_settled(broken, group)).nonzero()[:, 0]
        if len(idx) == 0:
            break
        t0 = y[idx] if target is None else target[idx]
        st = _ApgdState(idx, x[idx], y[idx], t0, random_start(x[idx], eps, norm, gen, lo, hi), eps)
        last_ckpt = 0
        for k in range(steps):
            f, g, z = _loss_and_grad(forward, st.xk, st.y0, loss, st.t0)
            wrong = z.argmax(1) != st.y0
            if wrong.any():
                best[st.idx[wrong]] = st.xk[wrong]
                broken[st.idx[wrong]] = True
                stay = ~_settled(broken, group)[st.idx]
                st.keep(stay)
                f, g = f[stay], g[stay]
                if len(st.idx) == 0:
                    break
            st.record(f, g, first=k == 0)
            if k in checkpoints:
                g = st.checkpoint(g, k - last_ckpt, rho)
                last_ckpt = k
            xk = st.xk
            zk = project(xk + st.eta.reshape(view) * step_direction(g, norm), st.x0, eps, norm, lo, hi)
            if k > 0:
                zk = project(
                    xk + momentum * (zk - xk) + (1 - momentum) * (xk - st.x_prev), st.x0, eps, norm, lo, hi
                )
            st.x_prev, st.xk = xk, zk
        if len(st.idx):
            with torch.no_grad():
                wrong = forward(st.xk).argmax(1) != st.y0
            best[st.idx[wrong]] = st.xk[wrong]
            broken[st.idx[wrong]] = True
    return best, broken


def apgd_targeted(
    forward: Forward,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str,
    steps: int,
    restarts: int,
    targets: int,
    lo: float,
    hi: float,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """APGD-T (Croce & Hein 2020): APGD on the targeted DLR loss towards each of the ``targets``
    best-scoring wrong classes at the clean input. Needs at least four classes (the loss reads the four
    highest scores).

    The targets are attacked side by side, the unbroken samples stacked once per target in one batch (as
    many targets per pass as memory allows, see :func:`targets_per_pass`): a sample is broken when any of
    its targeted runs breaks it, as in the sequential schedule, and small batches run in far fewer model
    calls.
    """
    torch = require_torch("evasion attacks")
    with torch.no_grad():
        z = forward(x)
    order = other_classes_by_score(z, y, min(targets, z.shape[1] - 1))
    best = x.clone()
    broken = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    numel = x[0].numel() if len(x) else 1
    k = 0
    while k < order.shape[1]:
        idx = (~broken).nonzero()[:, 0]
        if len(idx) == 0:
            break
        g = targets_per_pass(len(idx), order.shape[1] - k, numel)
        rows = idx.repeat(g)
        xa, ok = apgd(
            forward,
            x[rows],
            y[rows],
            eps=eps,
            norm=norm,
            steps=steps,
            restarts=restarts,
            loss="dlr-t",
            lo=lo,
            hi=hi,
            gen=gen,
            target=order[idx, k : k + g].T.reshape(-1),
            group=rows,
        )
        hit = ok.nonzero()[:, 0]
        if len(hit):
            samples, first = first_row_per_sample(rows[hit])
            best[samples] = xa[hit[first]]
            broken[samples] = True
        k += g
    return best, broken
