"""FAB-T, L∞: the targeted fast adaptive boundary attack (Croce & Hein 2020, "Minimally distorted
adversarial examples with a fast adaptive boundary attack", ICML).

FAB looks for the smallest perturbation that crosses the decision boundary between the true class y
and a target class t. At each iterate x_i it linearises g = z_t − z_y, so the boundary becomes the
hyperplane ``g(x_i) + <∇g, d> = 0``, and projects both x_i and the original input x onto that hyperplane
intersected with the valid box (the smallest L∞ step that reaches it, computed exactly). The next iterate
is a convex combination of the two projections, each stretched by an overshoot η, weighted towards the
original input by α = min(‖δ_i‖ / (‖δ_i‖ + ‖δ_x‖), α_max). Whenever an iterate is misclassified it is
recorded if it is the closest found so far, and the search steps back towards x (x + β·(x_i − x)), so
the boundary is approached from both sides and the perturbation shrinks.

As a robustness check at a budget ε (AutoAttack's use), a sample is broken when its smallest adversarial
is within ε; such samples leave the batch at once, which saves work and changes no verdict. The
returned adversarials are projected onto the ε ball and the valid range and checked again by the model,
so the budget holds exactly.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from garrison.assess.adapters import require_torch
from garrison.assess.attack_core import (
    Forward,
    first_row_per_sample,
    flat_norm,
    other_classes_by_score,
    project,
    targets_per_pass,
)

if TYPE_CHECKING:
    import torch


def project_linf_halfspace_box(
    x: torch.Tensor, w: torch.Tensor, r: torch.Tensor, lo: float, hi: float
) -> torch.Tensor:
    """Smallest-L∞ step ``d`` per row with ``<w, d> >= r`` and ``lo <= x + d <= hi`` (rows of (N, D)).

    The optimum moves every coordinate by the same amount s along sign(w), capped by the room left in the
    box in that direction: ``d_j = sign(w_j) · min(s, u_j)``. ``<w, d(s)> = Σ |w_j| min(s, u_j)`` grows
    piecewise linearly in s, so the smallest sufficient s is found exactly from the sorted caps. A row
    that cannot reach ``r`` inside the box gets the box corner that comes closest; a row with ``r <= 0``
    needs no step.
    """
    th = require_torch("evasion attacks")
    aw = w.abs()
    u = th.where(w > 0, hi - x, x - lo).clamp_min(0)
    us, order = u.sort(dim=1)
    aws = aw.gather(1, order)
    cum_wu = (aws * us).cumsum(1)
    suffix_w = aws.flip(1).cumsum(1).flip(1)
    # value of <w, d(s)> at s = the k-th smallest cap
    at_caps = cum_wu + us * (suffix_w - aws)
    reach = at_caps >= r[:, None]
    feasible = reach.any(1)
    k = th.where(feasible, reach.to(th.int8).argmax(1), th.zeros_like(feasible, dtype=th.long))
    before = th.where(k > 0, cum_wu.gather(1, (k - 1).clamp_min(0)[:, None])[:, 0], cum_wu.new_zeros(()))
    slope = suffix_w.gather(1, k[:, None])[:, 0].clamp_min(1e-30)
    s = (r - before) / slope
    s = th.where(feasible, s, s.new_full((), math.inf))
    s = th.where(r <= 0, s.new_zeros(()), s)
    out: torch.Tensor = w.sign() * th.minimum(s[:, None], u)
    return out


def _grad_of_gap(
    forward: Forward, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``z_t − z_y`` at ``x`` and its input gradient."""
    torch = require_torch("evasion attacks")
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        z = forward(xg)
        gap = z.gather(1, t[:, None])[:, 0] - z.gather(1, y[:, None])[:, 0]
        (g,) = torch.autograd.grad(gap.sum(), xg)
    return gap.detach(), g.detach()


def _fab_run(
    forward: Forward,
    x: torch.Tensor,
    y: torch.Tensor,
    t: torch.Tensor,
    start: torch.Tensor,
    *,
    eps: float,
    steps: int,
    lo: float,
    hi: float,
    eta: float,
    alpha_max: float,
    beta: float,
    group: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One FAB-T run from ``start``: the closest adversarial found per row and its L∞ size (inf: none).

    Rows whose closest adversarial is already within ``eps`` stop early, and with them every row of the
    same ``group`` (the same sample towards another target).
    """
    torch = require_torch("evasion attacks")
    n = len(x)
    flat = x.reshape(n, -1)
    best = x.clone()
    best_norm = x.new_full((n,), math.inf)
    idx = torch.arange(n, device=x.device)
    xi, x0, y0, t0 = start.reshape(n, -1), flat, y, t
    for _ in range(steps):
        gap, g = _grad_of_gap(forward, xi.reshape((len(xi), *x.shape[1:])), y0, t0)
        w = g.reshape(len(xi), -1)
        r0 = -gap - (w * (x0 - xi)).sum(1)
        # both projections in one call: the iterate's (first half) and the original input's
        both = project_linf_halfspace_box(
            torch.cat((xi, x0)), torch.cat((w, w)), torch.cat((-gap, r0)), lo, hi
        )
        d_i, d_0 = both[: len(xi)], both[len(xi) :]
        n_i, n_0 = flat_norm(d_i, "linf"), flat_norm(d_0, "linf")
        alpha = (n_i / (n_i + n_0).clamp_min(1e-30)).clamp(0.0, alpha_max)[:, None]
        xi = ((1 - alpha) * (xi + eta * d_i) + alpha * (x0 + eta * d_0)).clamp(lo, hi)
        with torch.no_grad():
            wrong = forward(xi.reshape((len(xi), *x.shape[1:]))).argmax(1) != y0
        if wrong.any():
            size = flat_norm(xi - x0, "linf")
            closer = wrong & (size < best_norm[idx])
            best[idx[closer]] = xi[closer].reshape((-1, *x.shape[1:]))
            best_norm[idx[closer]] = size[closer]
            xi = torch.where(wrong[:, None], (1 - beta) * x0 + beta * xi, xi)
            within = best_norm <= eps
            done = torch.zeros(int(group.max()) + 1, dtype=torch.bool, device=x.device)
            done[group[within]] = True
            keep = ~done[group[idx]]
            if not keep.all():
                idx, xi, x0, y0, t0 = idx[keep], xi[keep], x0[keep], y0[keep], t0[keep]
                if len(idx) == 0:
                    break
    return best, best_norm


def fab_targeted(
    forward: Forward,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int,
    restarts: int,
    targets: int,
    lo: float,
    hi: float,
    gen: torch.Generator,
    eta: float = 1.05,
    alpha_max: float = 0.1,
    beta: float = 0.9,
) -> tuple[torch.Tensor, torch.Tensor]:
    """FAB-T, L∞, against each of the ``targets`` best-scoring wrong classes at the clean input, on the
    samples still unbroken at budget ``eps``; the targets run side by side, the samples stacked once per
    target (as many targets per pass as memory allows): a sample is broken when any run breaks it.

    The first restart of each target starts at the input itself; later ones at a uniformly random point
    of the L∞ ball of radius min(ε, smallest adversarial so far) / 2 (the paper's rule). Returns
    ``(x_adv, broken)`` like the other attacks: x_adv is within ``eps`` and the valid range, and the model
    misclassifies it wherever ``broken`` is set.
    """
    torch = require_torch("evasion attacks")
    with torch.no_grad():
        z = forward(x)
    order = other_classes_by_score(z, y, min(targets, z.shape[1] - 1))
    best = x.clone()
    broken = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    view = (-1,) + (1,) * (x.ndim - 1)
    numel = x[0].numel() if len(x) else 1
    k = 0
    while k < order.shape[1]:
        idx = (~broken).nonzero()[:, 0]
        if len(idx) == 0:
            break
        g = targets_per_pass(len(idx), order.shape[1] - k, numel)
        rows = idx.repeat(g)
        row_targets = order[idx, k : k + g].T.reshape(-1)
        smallest = x.new_full((len(rows),), math.inf)
        for restart in range(restarts):
            live = (~broken[rows]).nonzero()[:, 0]
            if len(live) == 0:
                break
            samples = rows[live]
            xs = x[samples]
            if restart == 0:
                start = xs.clone()
            else:
                radius = smallest[live].clamp(max=eps) / 2
                noise = xs.new_empty(xs.shape).uniform_(-1, 1, generator=gen)
                start = (xs + noise * radius.reshape(view)).clamp(lo, hi)
            adv, size = _fab_run(
                forward,
                xs,
                y[samples],
                row_targets[live],
                start,
                eps=eps,
                steps=steps,
                lo=lo,
                hi=hi,
                eta=eta,
                alpha_max=alpha_max,
                beta=beta,
                group=samples,
            )
            smallest[live] = torch.minimum(smallest[live], size)
            found = (size <= eps).nonzero()[:, 0]
            if len(found) == 0:
                continue
            cand = project(adv[found], xs[found], eps, "linf", lo, hi)
            with torch.no_grad():
                ok = forward(cand).argmax(1) != y[samples[found]]
            if ok.any():
                hit_samples, first = first_row_per_sample(samples[found][ok])
                best[hit_samples] = cand[ok][first]
                broken[hit_samples] = True
        k += g
    return best, broken
