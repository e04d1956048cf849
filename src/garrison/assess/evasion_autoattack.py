"""AutoAttack, "standard" version, L∞ (Croce & Hein 2020, "Reliable evaluation of adversarial
robustness with an ensemble of diverse parameter-free attacks").

Four attacks in sequence, each on the samples the previous ones left unbroken:

1. APGD-CE: APGD on the cross-entropy, ``apgd_steps`` iterations, one random start;
2. APGD-T: APGD on the targeted DLR loss towards each of the ``targets`` best-scoring wrong classes
   (skipped for models with fewer than four classes, where the loss is undefined);
3. FAB-T: the targeted fast adaptive boundary attack over the same target classes;
4. Square: the score-only random search, ``square_queries`` queries, ``p_init`` 0.8.

A sample counts as broken as soon as any of them finds an input within ε and the valid range that the
model misclassifies, so the ensemble is at least as strong as its first attack on the same samples and
in practice as strong as the best of the four. Each attack starts from a copy of the random generator's
state at the start, so the first attack gives exactly what it gives alone with the same seed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from garrison.assess.adapters import require_torch
from garrison.assess.attack_core import Forward

if TYPE_CHECKING:
    import torch

Stage = Callable[["torch.Tensor", "torch.Tensor", "torch.Generator"], "tuple[torch.Tensor, torch.Tensor]"]


def autoattack_standard(
    forward: Forward,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    apgd_steps: int,
    targets: int,
    fab_steps: int,
    square_queries: int,
    lo: float,
    hi: float,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, tuple[tuple[str, int], ...]]:
    """Run the standard L∞ ensemble; return ``(x_adv, broken, per-attack counts of samples broken)``."""
    from garrison.assess.evasion_blackbox import square_linf
    from garrison.assess.evasion_fab import fab_targeted
    from garrison.assess.evasion_pgd import apgd, apgd_targeted

    torch = require_torch("evasion attacks")
    with torch.no_grad():
        n_classes = int(forward(x[:1]).shape[1]) if len(x) else 0
    stages: list[tuple[str, Stage]] = [
        (
            "apgd-ce",
            lambda xs, ys, g: apgd(
                forward,
                xs,
                ys,
                eps=eps,
                norm="linf",
                steps=apgd_steps,
                restarts=1,
                loss="ce",
                lo=lo,
                hi=hi,
                gen=g,
            ),
        ),
    ]
    if n_classes >= 4:
        stages.append(
            (
                "apgd-t",
                lambda xs, ys, g: apgd_targeted(
                    forward,
                    xs,
                    ys,
                    eps=eps,
                    norm="linf",
                    steps=apgd_steps,
                    restarts=1,
                    targets=targets,
                    lo=lo,
                    hi=hi,
                    gen=g,
                ),
            )
        )
    stages.append(
        (
            "fab-t",
            lambda xs, ys, g: fab_targeted(
                forward, xs, ys, eps=eps, steps=fab_steps, restarts=1, targets=targets, lo=lo, hi=hi, gen=g
            ),
        )
    )
    stages.append(
        (
            "square",
            lambda xs, ys, g: square_linf(
                forward, xs, ys, eps=eps, queries=square_queries, p_init=0.8, lo=lo, hi=hi, gen=g
            ),
        )
    )
    state = gen.get_state()
    best = x.clone()
    broken = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    counts: list[tuple[str, int]] = []
    for name, stage in stages:
        idx = (~broken).nonzero()[:, 0]
        if len(idx) == 0:
            counts.append((name, 0))
            continue
        g = torch.Generator(device=gen.device)
        g.set_state(state)
        xa, ok = stage(x[idx], y[idx], g)
        best[idx[ok]] = xa[ok]
        broken[idx[ok]] = True
        counts.append((name, int(ok.sum())))
    torch.randint(2**31 - 1, (1,), generator=gen, device=gen.device)  # next batch: fresh randomness
    return best, broken, tuple(counts)
