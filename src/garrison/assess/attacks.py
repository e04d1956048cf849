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


def _check_positive(label: str, **counts: int) -> None:
    for name, value in counts.items():
        if value < 1:
            raise ConfigError(f"{label}: {name} must be at least 1, got {value}")


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

    binary_search_steps: int = 4
    """Rounds of the binary search over the constant c."""
    steps: int = 50
    """Adam steps per round (stops early when the loss stalls)."""
    learning_rate: float = 0.1
    """Adam step size in tanh space."""
    initial_const: float = 1.0
    """Starting c (halved towards the last failure after each success, so 4 rounds reach c = 1/8)."""
    confidence: float = 0.0
    """Margin κ by which the wrong class must win."""
    warm_start: bool = True
    """Start each round from the smallest adversarial found so far instead of from the input."""

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


@dataclass(frozen=True, slots=True, kw_only=True)
class APGDTargeted:
    """APGD-T (Croce & Hein 2020): APGD on the targeted DLR loss towards each of the ``targets``
    best-scoring wrong classes (run side by side in one batch). Needs at least four classes.
    """

    norm: str = "linf"
    """``"linf"`` or ``"l2"``."""
    steps: int = 100
    """Iterations per target class and restart."""
    restarts: int = 1
    """Random starts per target class."""
    targets: int = 9
    """Target classes tried (at most the number of classes − 1)."""

    needs_gradients: ClassVar[bool] = True
    uses_epsilon: ClassVar[bool] = True

    @property
    def label(self) -> str:
        """Name in results: ``apgd-t`` or ``apgd-t-l2``."""
        return "apgd-t" + ("" if self.norm == "linf" else "-l2")

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
        from garrison.assess.evasion_pgd import apgd_targeted

        _check_norm(self.norm)
        _check_positive(self.label, steps=self.steps, restarts=self.restarts, targets=self.targets)
        return apgd_targeted(
            forward,
            x,
            y,
            eps=epsilon,
            norm=self.norm,
            steps=self.steps,
            restarts=self.restarts,
            targets=self.targets,
            lo=lo,
            hi=hi,
            gen=gen,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class FABTargeted:
    """FAB-T, L∞ (Croce & Hein 2020): the targeted fast adaptive boundary attack towards each of the
    ``targets`` best-scoring wrong classes (run side by side in one batch); a sample is broken when the
    smallest adversarial found is within ε (see :mod:`garrison.assess.evasion_fab`).
    """

    steps: int = 100
    """Iterations per target class and restart."""
    restarts: int = 1
    """Starts per target class: the input itself, then random points near it."""
    targets: int = 9
    """Target classes tried (at most the number of classes − 1)."""
    eta: float = 1.05
    """Overshoot of each projection onto the linearised boundary."""
    alpha_max: float = 0.1
    """Largest weight of the step taken from the original input."""
    beta: float = 0.9
    """Backward step: a misclassified iterate moves to ``x + β·(x_i − x)``."""

    needs_gradients: ClassVar[bool] = True
    uses_epsilon: ClassVar[bool] = True
    norm: ClassVar[str] = "linf"
    label: ClassVar[str] = "fab-t"

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
        from garrison.assess.evasion_fab import fab_targeted

        _check_positive(self.label, steps=self.steps, restarts=self.restarts, targets=self.targets)
        return fab_targeted(
            forward,
            x,
            y,
            eps=epsilon,
            steps=self.steps,
            restarts=self.restarts,
            targets=self.targets,
            lo=lo,
            hi=hi,
            gen=gen,
            eta=self.eta,
            alpha_max=self.alpha_max,
            beta=self.beta,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AutoAttack:
    """AutoAttack, standard version, L∞ (Croce & Hein 2020): APGD-CE, APGD-T, FAB-T and Square in
    sequence, each on the samples the earlier ones left unbroken (see
    :mod:`garrison.assess.evasion_autoattack`). APGD-T is left out for models with fewer than four classes.
    """

    apgd_steps: int = 100
    """Iterations of APGD-CE and of APGD-T per target class."""
    targets: int = 9
    """Target classes of APGD-T and FAB-T."""
    fab_steps: int = 100
    """FAB-T iterations per target class."""
    square_queries: int = 5000
    """Square's query budget per sample."""

    needs_gradients: ClassVar[bool] = True
    uses_epsilon: ClassVar[bool] = True
    norm: ClassVar[str] = "linf"
    label: ClassVar[str] = "autoattack"

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
        from garrison.assess.evasion_autoattack import autoattack_standard

        _check_positive(
            self.label,
            apgd_steps=self.apgd_steps,
            targets=self.targets,
            fab_steps=self.fab_steps,
            square_queries=self.square_queries,
        )
        x_adv, broken, _ = autoattack_standard(
            forward,
            x,
            y,
            eps=epsilon,
            apgd_steps=self.apgd_steps,
            targets=self.targets,
            fab_steps=self.fab_steps,
            square_queries=self.square_queries,
            lo=lo,
            hi=hi,
            gen=gen,
        )
        return x_adv, broken


AttackSpec = (
    FGSM | PGD | APGD | APGDTargeted | FABTargeted | AutoAttack | CarliniWagnerL2 | SquareAttack | HopSkipJump
)
"""Any attack specification :func:`run_attack` accepts."""


def attack_from_name(name: str) -> AttackSpec:
    """The attack a name stands for, with its default parameters.

    ``fgsm``, ``fgm-l2``, ``pgd`` (10 steps), ``pgd-N``, ``pgd-l2``, ``pgd-l2-N``, ``apgd-ce``,
    ``apgd-dlr``, ``apgd-t`` (append ``-l2`` for the L2 versions), ``fab-t``, ``autoattack`` (the standard
    L∞ set), ``cw-l2``, ``square``, ``hopskipjump`` (``hsj``).
    """
    key = name.strip().lower()
    fixed: dict[str, AttackSpec] = {
        "fgsm": FGSM(),
        "fgm-l2": FGSM(norm="l2"),
        "apgd-ce": APGD(),
        "apgd-dlr": APGD(loss="dlr"),
        "apgd-ce-l2": APGD(norm="l2"),
        "apgd-dlr-l2": APGD(loss="dlr", norm="l2"),
        "apgd-t": APGDTargeted(),
        "apgd-t-l2": APGDTargeted(norm="l2"),
        "fab-t": FABTargeted(),
        "autoattack": AutoAttack(),
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
