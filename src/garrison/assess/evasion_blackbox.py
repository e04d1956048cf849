"""Black-box evasion with scores only: the Square attack, L∞ (Andriushchenko et al. 2020).

Needs no gradients, only the model's scores, so it runs on any estimator with ``predict_proba``
(a random forest included). Each query evaluates one candidate per still-unbroken sample, all samples
in one batched forward pass.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from garrison.assess.adapters import require_torch
from garrison.assess.attack_core import Forward, margin

if TYPE_CHECKING:
    import torch


def _p_schedule(p_init: float, i: int, n_iters: int) -> float:
    """The paper's schedule of the square's area fraction, halved at fixed fractions of the budget."""
    it = int(i / max(n_iters, 1) * 10000)
    halvings = sum(it > b for b in (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000))
    return p_init / float(2**halvings)


def _as_images(x: torch.Tensor) -> torch.Tensor:
    """View inputs as (N, C, H, W): (N, D) as one row of D features, (N, H, W) as one channel."""
    if x.ndim == 2:
        return x.reshape(len(x), 1, 1, x.shape[1])
    if x.ndim == 3:
        return x.reshape(len(x), 1, x.shape[1], x.shape[2])
    if x.ndim == 4:
        return x
    return x.reshape(len(x), 1, 1, -1)


def square_linf(
    forward: Forward,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    queries: int,
    p_init: float,
    lo: float,
    hi: float,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random search over square windows set to ±ε, accepting a candidate when the margin drops."""
    torch = require_torch("evasion attacks")
    shape = x.shape
    xi = _as_images(x)
    n, c, h, w = xi.shape
    with torch.no_grad():
        signs = torch.randint(0, 2, (n, c, 1, w), generator=gen, device=x.device).to(x.dtype) * 2 - 1
        xa = (xi + eps * signs).clamp(lo, hi)
        m = margin(forward(xa.reshape(shape)), y)
        rows = torch.arange(h, device=x.device).reshape(1, 1, h, 1)
        cols = torch.arange(w, device=x.device).reshape(1, 1, 1, w)
        for i in range(1, queries):
            idx = (m >= 0).nonzero()[:, 0]
            if len(idx) == 0:
                break
            p = _p_schedule(p_init, i, queries)
            if h == 1:
                sh, sw = 1, max(min(round(p * w), w), 1)
            else:
                s = max(min(round(math.sqrt(p * h * w)), h, w), 1)
                sh, sw = s, s
            k = len(idx)
            r0 = torch.randint(0, h - sh + 1, (k, 1, 1, 1), generator=gen, device=x.device)
            c0 = torch.randint(0, w - sw + 1, (k, 1, 1, 1), generator=gen, device=x.device)
            window = (rows >= r0) & (rows < r0 + sh) & (cols >= c0) & (cols < c0 + sw)
            new_signs = torch.randint(0, 2, (k, c, 1, 1), generator=gen, device=x.device).to(x.dtype) * 2 - 1
            x0 = xi[idx]
            cand = torch.where(window, (x0 + eps * new_signs).clamp(lo, hi), xa[idx])
            m_new = margin(forward(cand.reshape((k, *shape[1:]))), y[idx])
            better = m_new < m[idx]
            upd = idx[better]
            xa[upd] = cand[better]
            m[upd] = m_new[better]
    broken = m < 0
    xa = xa.reshape(shape)
    return torch.where(broken.reshape((-1,) + (1,) * (x.ndim - 1)), xa, x), broken
