"""The evasion attacks as specifications: frozen dataclasses holding each attack's parameters.

An attack spec names itself (``label``), says whether it needs gradients or an epsilon, and runs on one
batch of correctly classified samples through a forward function. :func:`attack_from_name` maps the
names a command line uses (``pgd-40``, ``apgd-dlr``, ``cw-l2``, ``hsj``, …) to specs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from garrison.assess.adapters import require_torch
from garrison.assess.attack_core import NORMS, Forward
from garrison.core.errors import ConfigError

if TYPE_CHECKING:
    import torch


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ConfigError(f"unknown norm {norm!r}", hint="use 'linf' or 'l2'")


@dataclass(frozen=True, slots=True, kw_only=True)
class FGSM:
    """Fast gradient sign method (Goodfellow et al. 2015): one step of size ε (L2: fast gradient method)."""

    norm: str = "linf"
    """``"linf"`` or ``"l2"``."""

    needs_gradients: ClassVar[bool] = True
    uses_epsilon: ClassVar[bool] = True

    @property
    def label(self) -> str:
        """Name in results: ``fgsm`` or ``fgm-l2``."""
        return "fgsm" if self.norm == "linf" else "fgm-l2"

    def run(
        self,
        forward: Forward,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        epsilon: float,
        lo: float,
        hi: float,
        gen: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attack one batch of correctly classified samples."""
        from garrison.assess.evasion_pgd import fgsm

        _check_norm(self.norm)
        return fgsm(forward, x, y, eps=epsilon, norm=self.norm, lo=lo, hi=hi)


@dataclass(frozen=True, slots=True, kw_only=True)
class PGD:
    """Projected gradient descent on the cross-entropy (Madry et al. 2018) with random restarts."""

    norm: str = "linf"
    """``"linf"`` or ``"l2"``."""
    steps: int = 10
    """Gradient steps per restart."""
    step_size: float | None = None
    """Absolute step; ``None`` means ``2.5 · ε / steps``."""
    restarts: int = 1
    """Random starts; a sample broken by any of them counts as broken."""
    random_init: bool = True
    """Start the first restart at a random point of the ball (later restarts always do)."""

    needs_gradients: ClassVar[bool] = True
    uses_epsilon: ClassVar[bool] = True

    @property
    def label(self) -> str:
        """Name in results: ``pgd-10``, ``pgd-l2-40``, …"""
        return f"pgd-{self.steps}" if self.norm == "linf" else f"pgd-l2-{self.steps}"

    def run(
        self,
        forward: Forward,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        epsilon: float,
        lo: float,
        hi: float,
        gen: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attack one batch of correctly classified samples."""
        from garrison.assess.evasion_pgd import pgd

        _check_norm(self.norm)
        step = self.step_size if self.step_size is not None else 2.5 * epsilon / self.steps
        return pgd(
            forward,
            x,
            y,
            eps=epsilon,
            norm=self.norm,
            steps=self.steps,
            step_size=step,
            restarts=self.restarts,
            random_init=self.random_init,
            lo=lo,
            hi=hi,
            gen=gen,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class APGD:
    """Auto-PGD (Croce & Hein 2020) with the cross-entropy (``ce``) or difference of logits ratio (dlr)."""

    loss: str = "ce"
    """``"ce"`` or ``"dlr"`` (needs at least three classes)."""
    norm: str = "linf"
    """``"linf"`` or ``"l2"``."""
    steps: int = 100
    """Iterations per restart."""
    restarts: int = 1
    """Random starts."""

    needs_gradients: ClassVar[bool] = True
    uses_epsilon: ClassVar[bool] = True

    @property
    def label(self) -> str:
        """Name in results: ``apgd-ce``, ``apgd-dlr``, ``apgd-ce-l2``, …"""
        return f"apgd-{self.loss}" + ("" if self.norm == "linf" else "-l2")

    def run(
        self,
        forward: Forward,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        epsilon: float,
        lo: float,
        hi: float,
        gen: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attack one batch of correctly classified samples."""
        from garrison.assess.evasion_pgd import apgd

        _check_norm(self.norm)
        if self.loss not in ("ce", "dlr"):
            raise ConfigError(f"unknown APGD loss {self.loss!r}", hint="use 'ce' or 'dlr'")
        return apgd(
            forward,
            x,
            y,
            eps=epsilon,
            norm=self.norm,
            steps=self.steps,
            restarts=self.restarts,
            loss=self.loss,
            lo=lo,
            hi=hi,
            gen=gen,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CarliniWagnerL2:
    """Carlini–Wagner L2: minimal L2 perturbation; no epsilon (see :mod:`garrison.assess.evasion_cw`)."""

    binary_search_steps: int = 5
    """Rounds of the binary search over the constant c."""
    steps: int = 50
    """Adam steps per round (stops early when the loss stalls)."""
    learning_rate: float = 0.1
    """Adam step size in tanh space."""
    initial_const: float = 0.1
    """Starting c."""
    confidence: float = 0.0
    """Margin κ by which the wrong class must win."""
    warm_start: bool = True
    """Start each round from the smallest adversarial found so far (same L2 in a quarter of the steps)."""

    needs_gradients: ClassVar[bool] = True
    uses_epsilon: ClassVar[bool] = False
    norm: ClassVar[str] = "l2"
    label: ClassVar[str] = "cw-l2"

    def run(
        self,
        forward: Forward,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        epsilon: float,
        lo: float,
        hi: float,
        gen: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attack one batch of correctly classified samples (``epsilon`` is ignored)."""
        from garrison.assess.evasion_cw import carlini_wagner_l2

        return carlini_wagner_l2(
            forward,
            x,
            y,
            binary_search_steps=self.binary_search_steps,
            steps=self.steps,
            learning_rate=self.learning_rate,
            initial_const=self.initial_const,
            confidence=self.confidence,
            warm_start=self.warm_start,
            lo=lo,
            hi=hi,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SquareAttack:
    """Square attack, L∞, scores only (no gradients): works on black-box models with probabilities."""

    queries: int = 1000
    """Query budget per sample."""
    p_init: float = 0.05
    """Initial fraction of the input covered by the square."""

    needs_gradients: ClassVar[bool] = False
    uses_epsilon: ClassVar[bool] = True
    norm: ClassVar[str] = "linf"
    label: ClassVar[str] = "square"

    def run(
        self,
        forward: Forward,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        epsilon: float,
        lo: float,
        hi: float,
        gen: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attack one batch of correctly classified samples."""
        from garrison.assess.evasion_blackbox import square_linf

        return square_linf(
            forward, x, y, eps=epsilon, queries=self.queries, p_init=self.p_init, lo=lo, hi=hi, gen=gen
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class HopSkipJump:
    """HopSkipJump, L2, labels only: minimal perturbation, no epsilon (:mod:`garrison.assess.evasion_hsj`)."""

    iterations: int = 20
    """Gradient-estimation rounds (20: about 6,500 queries per sample)."""
    initial_evals: int = 100
    """Probes per sample in the first round; round t uses ``initial_evals · √t``."""
    max_evals: int = 1000
    """Cap on probes per sample per round."""
    max_rows: int = 65536
    """Rows per model call when probing (memory bound)."""

    needs_gradients: ClassVar[bool] = False
    needs_scores: ClassVar[bool] = False
    uses_epsilon: ClassVar[bool] = False
    norm: ClassVar[str] = "l2"
    label: ClassVar[str] = "hopskipjump"

    def run(
        self,
        forward: Forward,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        epsilon: float,
        lo: float,
        hi: float,
        gen: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attack one batch of correctly classified samples (``epsilon`` is ignored)."""
        from garrison.assess.evasion_hsj import hop_skip_jump

        th = require_torch("evasion attacks")
        rows = self.max_rows

        def decide(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
            parts = [forward(xs[i : i + rows]).argmax(1) != ys[i : i + rows] for i in range(0, len(xs), rows)]
            out: torch.Tensor = th.cat(parts)
            return out

        return hop_skip_jump(
            decide,
            x,
            y,
            iterations=self.iterations,
            initial_evals=self.initial_evals,
            max_evals=self.max_evals,
            lo=lo,
            hi=hi,
            gen=gen,
        )


AttackSpec = FGSM | PGD | APGD | CarliniWagnerL2 | SquareAttack | HopSkipJump
"""Any attack specification :func:`run_attack` accepts."""


def attack_from_name(name: str) -> AttackSpec:
    """The attack a name stands for, with its default parameters.

    ``fgsm``, ``fgm-l2``, ``pgd`` (10 steps), ``pgd-N``, ``pgd-l2``, ``pgd-l2-N``, ``apgd-ce``,
    ``apgd-dlr`` (append ``-l2`` for the L2 versions), ``cw-l2``, ``square``, ``hopskipjump`` (``hsj``).
    """
    key = name.strip().lower()
    fixed: dict[str, AttackSpec] = {
        "fgsm": FGSM(),
        "fgm-l2": FGSM(norm="l2"),
        "apgd-ce": APGD(),
        "apgd-dlr": APGD(loss="dlr"),
        "apgd-ce-l2": APGD(norm="l2"),
        "apgd-dlr-l2": APGD(loss="dlr", norm="l2"),
        "cw-l2": CarliniWagnerL2(),
        "square": SquareAttack(),
        "hopskipjump": HopSkipJump(),
        "hsj": HopSkipJump(),
    }
    if key in fixed:
        return fixed[key]
    match = re.fullmatch(r"pgd(-l2)?(?:-(\d+))?", key)
    if match:
        return PGD(norm="l2" if match.group(1) else "linf", steps=int(match.group(2) or 10))
    raise ConfigError(
        f"unknown attack {name!r}", hint="one of: " + ", ".join([*fixed, "pgd", "pgd-N", "pgd-l2-N"])
    )
