"""What an evasion assessment measured, as data: per attack and epsilon, and for the whole run.

Conventions. *Robust accuracy* is the fraction of all evaluated samples that the model classifies
correctly both clean and under the attack (a sample misclassified clean counts as not robust).
*Success rate* is the fraction of clean-correct samples the attack broke. A sample counts as broken if
any restart or iteration of the attack produced an input within the budget that the model
misclassifies; the adversarial kept for it is the first such input found (or, for Carlini–Wagner, the
smallest). Perturbation norms are measured in the attack's norm on the successful samples only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True, kw_only=True)
class AttackOutcome:
    """Per-sample output of one attack on one batch of samples (numpy arrays, one row per sample)."""

    x_adv: np.ndarray
    """Adversarial inputs, same shape as the inputs; the clean input where the attack failed."""
    success: np.ndarray
    """Boolean: the model misclassifies ``x_adv`` (and the clean input was classified correctly)."""
    clean_correct: np.ndarray
    """Boolean: the model classified the clean input correctly."""
    norms: np.ndarray
    """Perturbation norm of each ``x_adv`` in the attack's norm (0 where nothing was changed)."""
    queries: int
    """Model evaluations (rows through a forward pass, gradient passes included) spent on the batch."""
    seconds: float
    """Wall-clock time of the attack on the batch."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AttackResult:
    """One attack at one epsilon over all samples."""

    attack: str
    """Attack name as Garrison writes it, e.g. ``"pgd"``, ``"apgd-ce"``, ``"cw-l2"``."""
    norm: str
    """Threat model norm: ``"linf"`` or ``"l2"``."""
    epsilon: float | None
    """Perturbation budget in the input's units; ``None`` for minimal-perturbation attacks (CW-L2, HSJ)."""
    samples: int
    """Number of samples attacked."""
    clean_accuracy: float
    """Accuracy on the clean samples (0..1)."""
    robust_accuracy: float
    """Accuracy under the attack (0..1); see the module docstring for the convention."""
    success_rate: float
    """Fraction of clean-correct samples the attack broke (0..1)."""
    median_perturbation: float | None
    """Median perturbation norm over the broken samples; ``None`` when none was broken."""
    seconds: float
    """Wall-clock time of the attack (all batches)."""
    samples_per_second: float
    """``samples / seconds``."""
    queries_per_sample: float
    """Mean model evaluations per sample (gradient passes included)."""
    parameters: tuple[tuple[str, Any], ...] = ()
    """The attack's parameters, as ``(name, value)`` pairs, for the report."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelInfo:
    """What Garrison learned about the model it attacked."""

    name: str
    """The model's class name (or the name given to the adapter)."""
    framework: str
    """``"torch"``, ``"sklearn"``, ``"onnx"`` or ``"http"``."""
    output_kind: str
    """What the raw output is: ``logits``, ``probabilities``, ``log-probabilities`` or ``labels``."""
    n_classes: int
    """Number of classes."""
    input_shape: tuple[int, ...]
    """Shape of one input (from the data)."""
    valid_range: tuple[float, float]
    """Range every adversarial input is clipped to (declared or inferred from the data)."""
    valid_range_inferred: bool
    """True when :attr:`valid_range` was inferred from the data rather than declared."""
    has_gradients: bool
    """Whether gradient-based attacks could run."""

    @classmethod
    def of(
        cls, adapter: Any, *, input_shape: tuple[int, ...], valid_range: tuple[float, float], inferred: bool
    ) -> ModelInfo:
        """What a :class:`~garrison.assess.adapters.ModelAdapter` that has seen an input says about itself."""
        return cls(
            name=adapter.name,
            framework=adapter.framework,
            output_kind=adapter.output_kind.value,
            n_classes=adapter.n_classes,
            input_shape=tuple(input_shape),
            valid_range=valid_range,
            valid_range_inferred=inferred,
            has_gradients=adapter.has_gradients,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class EvasionReport:
    """Everything one :func:`garrison.assess.run_evasion` call measured."""

    model: ModelInfo
    """The model attacked."""
    results: tuple[AttackResult, ...] = ()
    """One entry per attack and epsilon, in the order run."""
    notes: tuple[str, ...] = field(default_factory=tuple)
    """Things the reader should know (gradient masking from a softmax output, an inferred range, …)."""

    def robust_accuracy(self, attack: str, epsilon: float | None = None) -> float:
        """Robust accuracy of ``attack`` at ``epsilon``; ``KeyError`` if it was not run."""
        for r in self.results:
            if r.attack == attack and (
                epsilon is None or (r.epsilon is not None and np.isclose(r.epsilon, epsilon))
            ):
                return r.robust_accuracy
        raise KeyError(f"{attack} at epsilon {epsilon} was not run")

    def curve(self, attack: str) -> tuple[tuple[float, float], ...]:
        """``(epsilon, robust accuracy)`` points of ``attack``, sorted by epsilon."""
        pts = [
            (r.epsilon, r.robust_accuracy)
            for r in self.results
            if r.attack == attack and r.epsilon is not None
        ]
        return tuple(sorted((float(e), a) for e, a in pts))
