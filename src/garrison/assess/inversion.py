"""Model inversion: can an attacker with gradient access draw what a class's training data looks like?

MI-Face (Fredrikson, Jha and Ristenpart, 2015): start from a neutral input and descend the gradient of
the model's loss on a target class, keeping the input in the valid range, until the model is sure of
the class. For a model that memorised its classes (faces of a few people, digits written by a few
hands) the result resembles the class's training examples. :func:`run_model_inversion` runs it for
each class at once (one batch, Adam on the input), with two small priors that keep the result
image-like rather than adversarial noise: total variation (``tv_weight``, over the last two axes of
each input viewed as ``image_shape``) and an L2 pull towards the start (``l2_weight``). The loss per
input is the cross-entropy of the target class plus those terms.

What leaked is measured against *reference* data (the training set, or a sample of it, that only the
assessor holds): each class's mean input. A reconstruction is compared with every class mean by the
cosine similarity of their deviations from the overall mean (centred cosine: the common background
cancels, what is left is what makes the class that class), and with its own class mean by a global
SSIM. It is *identifiable* when its nearest class mean is its own class. The identification rate over
classes, against chance ``1 / classes``, is the leakage score; the reconstructions and the class means
come back as numpy arrays for the report to show side by side.

Any model with input gradients works: a torch module, or a scikit-learn linear model or MLP (the
adapter converts them). Black-box models raise :class:`~garrison.assess.adapters.GradientUnavailableError`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from garrison.assess.adapters import (
    GradientUnavailableError,
    ModelAdapter,
    SklearnModel,
    as_model,
    require_torch,
    to_numpy,
)
from garrison.core.errors import ConfigError, InputError

__all__ = [
    "INITS",
    "MAX_STEPS",
    "ClassReconstruction",
    "InversionReport",
    "run_model_inversion",
    "score_reconstructions",
]

INITS = ("mean", "midpoint", "low", "random")
"""Starting inputs: the reference data's overall mean (class-agnostic), the middle of the valid range,
its lower bound, or uniform noise in it (seeded)."""

MAX_STEPS = 20_000
"""Upper bound on ``steps``."""

MAX_CLASSES = 1_000
"""Upper bound on the classes inverted in one run."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassReconstruction:
    """One class's reconstruction and how much of the class it gives away."""

    class_index: int
    """The class's column in the model's output."""
    label: Any
    """The class as the model names it (``classes_`` for scikit-learn, the index for torch)."""
    image: np.ndarray
    """The reconstruction, shaped ``image_shape``, in the valid range."""
    confidence: float
    """The model's probability of the class on the reconstruction."""
    predicted: int
    """The class the model predicts for the reconstruction."""
    similarity: float | None
    """Centred cosine similarity to the class's reference mean (None without reference data)."""
    best_other_similarity: float | None
    """The highest centred cosine similarity to another class's mean."""
    nearest_class: int | None
    """The class whose reference mean is most similar (centred cosine)."""
    ssim: float | None
    """Global SSIM between the reconstruction and the class's reference mean (1 is identical)."""
    identifiable: bool | None
    """Whether :attr:`nearest_class` is this class: the reconstruction gives the class away."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form (the image as nested lists)."""
        return {
            "class_index": self.class_index,
            "label": self.label.item() if isinstance(self.label, np.generic) else self.label,
            "confidence": self.confidence,
            "predicted": self.predicted,
            "similarity": self.similarity,
            "best_other_similarity": self.best_other_similarity,
            "nearest_class": self.nearest_class,
            "ssim": self.ssim,
            "identifiable": self.identifiable,
            "image": self.image.tolist(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class InversionReport:
    """Everything one :func:`run_model_inversion` call produced and measured."""

    model: str
    """The target model's name."""
    input_shape: tuple[int, ...]
    """Shape of one model input."""
    image_shape: tuple[int, ...]
    """Shape each reconstruction is returned in (and total variation is measured over)."""
    valid_range: tuple[float, float]
    """Range every reconstruction is clipped to."""
    reconstructions: tuple[ClassReconstruction, ...]
    """One per class inverted, in class order."""
    class_means: tuple[np.ndarray, ...]
    """The reference mean of each inverted class, shaped ``image_shape`` (empty without reference)."""
    identification_rate: float | None
    """Share of the inverted classes whose reconstruction is identifiable (None without reference)."""
    chance_rate: float
    """Identification rate of a random guess: ``1 / n_classes``."""
    mean_confidence: float
    """Mean of the model's confidence in the target class over the reconstructions."""
    mean_similarity: float | None
    """Mean centred cosine similarity of each reconstruction to its own class mean."""
    mean_margin: float | None
    """Mean of (similarity to own class mean − best similarity to another): above 0 is leakage."""
    steps: int
    """Gradient steps per reconstruction."""
    gradient_queries: int
    """Forward and backward passes of the model, rows counted (classes × steps)."""
    seconds: float
    """Wall-clock time of the inversion and the scoring."""
    parameters: tuple[tuple[str, Any], ...] = ()
    """The attack's parameters, as ``(name, value)`` pairs, for the report."""
    notes: tuple[str, ...] = field(default_factory=tuple)
    """Things the reader should know (inferred range, no reference data, TV disabled, …)."""

    @property
    def identified(self) -> int:
        """How many classes' reconstructions are identifiable."""
        return sum(1 for r in self.reconstructions if r.identifiable)

    def reconstruction(self, class_index: int) -> ClassReconstruction:
        """The reconstruction of ``class_index``; ``KeyError`` if that class was not inverted."""
        for r in self.reconstructions:
            if r.class_index == class_index:
                return r
        raise KeyError(f"class {class_index} was not inverted")

    def to_dict(self, *, images: bool = True) -> dict[str, Any]:
        """JSON-compatible form; ``images=False`` leaves out the reconstructions and class means."""
        recs = []
        for r in self.reconstructions:
            d = r.to_dict()
            if not images:
                d.pop("image")
            recs.append(d)
        return {
            "model": self.model,
            "input_shape": list(self.input_shape),
            "image_shape": list(self.image_shape),
            "valid_range": list(self.valid_range),
            "identification_rate": self.identification_rate,
            "identified": self.identified,
            "chance_rate": self.chance_rate,
            "mean_confidence": self.mean_confidence,
            "mean_similarity": self.mean_similarity,
            "mean_margin": self.mean_margin,
            "steps": self.steps,
            "gradient_queries": self.gradient_queries,
            "seconds": self.seconds,
            "parameters": dict(self.parameters),
            "notes": list(self.notes),
            "reconstructions": recs,
            "class_means": [m.tolist() for m in self.class_means] if images else [],
        }


# --- checks ------------------------------------------------------------------------------------------


def _finite_number(value: Any, name: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, not {value!r}")
    if value < 0 or (positive and value == 0):
        raise ConfigError(f"{name} must be {'positive' if positive else 'at least 0'}, not {value!r}")
    return float(value)


def _reference(reference: Any) -> tuple[np.ndarray, np.ndarray] | None:
    if reference is None:
        return None
    if not isinstance(reference, tuple | list) or len(reference) != 2:
        raise InputError(f"reference must be a pair (x, y) of arrays, not {type(reference).__name__}")
    x = to_numpy(reference[0]).astype(np.float64)
    y = to_numpy(reference[1]).reshape(-1)
    if len(x) != len(y):
        raise InputError(f"reference: {len(x)} inputs but {len(y)} labels")
    if len(x) == 0:
        raise InputError("reference is empty")
    if not np.all(np.isfinite(x)):
        raise InputError(f"reference: x has a non-finite value at {tuple(np.argwhere(~np.isfinite(x))[0])}")
    return x, y


def _shapes(
    adapter: ModelAdapter,
    ref: tuple[np.ndarray, np.ndarray] | None,
    input_shape: Sequence[int] | None,
    image_shape: Sequence[int] | None,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if input_shape is not None:
        shape = tuple(int(d) for d in input_shape)
    elif ref is not None:
        shape = tuple(ref[0].shape[1:])
    elif isinstance(adapter, SklearnModel) and hasattr(adapter.estimator, "n_features_in_"):
        shape = (int(adapter.estimator.n_features_in_),)
    else:
        raise ConfigError(
            f"the input shape of {adapter.name} is unknown", hint="pass input_shape or reference=(x, y)"
        )
    if not shape or any(d < 1 for d in shape):
        raise ConfigError(f"input_shape must be positive dimensions, not {shape}")
    if ref is not None and tuple(ref[0].shape[1:]) != shape:
        raise InputError(
            f"reference inputs have shape {ref[0].shape[1:]}, the model's input shape is {shape}"
        )
    image = shape if image_shape is None else tuple(int(d) for d in image_shape)
    if math.prod(image) != math.prod(shape) or any(d < 1 for d in image):
        raise ConfigError(f"image_shape {image} does not hold an input of shape {shape}")
    return shape, image


def _range(valid_range: tuple[float, float] | None, ref: Any, notes: list[str]) -> tuple[float, float]:
    if valid_range is None:
        if ref is None:
            notes.append("no valid_range and no reference data: inputs are clipped to [0, 1]")
            return 0.0, 1.0
        lo, hi = float(ref[0].min()), float(ref[0].max())
        notes.append(f"valid range [{lo:g}, {hi:g}] inferred from the reference data")
    else:
        if not isinstance(valid_range, tuple | list) or len(valid_range) != 2:
            raise ConfigError(f"valid_range must be (low, high), not {valid_range!r}")
        lo, hi = (
            float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan
            for v in valid_range
        )
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ConfigError(f"valid_range must be two finite numbers, not {valid_range!r}")
    if not lo < hi:
        raise ConfigError(f"valid_range must have low < high, not ({lo:g}, {hi:g})")
    return lo, hi


def _targets(classes: Sequence[int] | None, n_classes: int) -> list[int]:
    if classes is None:
        return list(range(n_classes))
    out = []
    for c in classes:
        if isinstance(c, bool) or not isinstance(c, int | np.integer) or not 0 <= int(c) < n_classes:
            raise ConfigError(f"class {c!r} is not a class index of the model (0 to {n_classes - 1})")
        out.append(int(c))
    if not out or len(out) > MAX_CLASSES or len(set(out)) != len(out):
        raise ConfigError(f"classes must be 1 to {MAX_CLASSES} distinct class indices, not {list(classes)!r}")
    return out


# --- scoring -----------------------------------------------------------------------------------------


def _ssim(a: np.ndarray, b: np.ndarray, span: float) -> float:
    """SSIM over the whole image as one window (Wang et al., 2004, constants K1 = 0.01, K2 = 0.03)."""
    c1, c2 = (0.01 * span) ** 2, (0.03 * span) ** 2
    ma, mb = a.mean(), b.mean()
    va, vb = a.var(), b.var()
    cov = ((a - ma) * (b - mb)).mean()
    return float(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with each row of ``b``."""
    na = np.linalg.norm(a, axis=1, keepdims=True)
    nb = np.linalg.norm(b, axis=1, keepdims=True)
    out: np.ndarray = (a @ b.T) / np.maximum(na * nb.T, 1e-12)
    return out


# --- the attack --------------------------------------------------------------------------------------


def _total_variation(x: Any, image_shape: tuple[int, ...]) -> Any:
    """Per-input anisotropic total variation over the last two axes (mean absolute neighbour difference)."""
    img = x.reshape(len(x), *image_shape)
    dh = (img[..., 1:, :] - img[..., :-1, :]).abs().flatten(1).mean(1)
    dw = (img[..., :, 1:] - img[..., :, :-1]).abs().flatten(1).mean(1)
    return dh + dw


def _start(
    init: str, shape: tuple[int, ...], n: int, bounds: tuple[float, float], ref: Any, seed: int
) -> np.ndarray:
    lo, hi = bounds
    if init == "mean" and ref is not None:
        x0 = np.broadcast_to(np.clip(ref[0].mean(axis=0), lo, hi), (n, *shape))
    elif init == "random":
        x0 = np.random.default_rng(seed).uniform(lo, hi, size=(n, *shape))
    elif init == "low":
        x0 = np.full((n, *shape), lo)
    else:
        x0 = np.full((n, *shape), (lo + hi) / 2)
    return np.ascontiguousarray(x0, dtype=np.float32)


def _invert(
    adapter: ModelAdapter,
    x0: np.ndarray,
    targets: list[int],
    *,
    bounds: tuple[float, float],
    steps: int,
    learning_rate: float,
    tv_weight: float,
    l2_weight: float,
    image_shape: tuple[int, ...] | None,
) -> np.ndarray:
    """Projected Adam on the inputs: cross-entropy of the target class + TV + L2 to the start."""
    torch = require_torch("model inversion")
    device = getattr(adapter, "device", torch.device("cpu"))
    start = torch.as_tensor(x0, device=device)
    x = start.clone()
    y = torch.as_tensor(targets, device=device)
    # Adam written out (beta 0.9, 0.999): torch.optim's first step imports torch._dynamo, seconds of
    # start-up for a loop this small.
    m = torch.zeros_like(x)
    v = torch.zeros_like(x)
    for step in range(1, steps + 1):
        x.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(adapter.torch_scores(x), y, reduction="none")
        if image_shape is not None and tv_weight > 0:
            loss = loss + tv_weight * _total_variation(x, image_shape)
        if l2_weight > 0:
            loss = loss + l2_weight * (x - start).pow(2).flatten(1).mean(1)
        (grad,) = torch.autograd.grad(loss.sum(), x)
        with torch.no_grad():
            m.mul_(0.9).add_(grad, alpha=0.1)
            v.mul_(0.999).addcmul_(grad, grad, value=0.001)
            m_hat = m / (1 - 0.9**step)
            v_hat = v / (1 - 0.999**step)
            x = (x - learning_rate * m_hat / (v_hat.sqrt() + 1e-8)).clamp_(*bounds)
    out: np.ndarray = x.detach().cpu().numpy()
    return out


def run_model_inversion(
    model: Any,
    *,
    reference: tuple[Any, Any] | None = None,
    classes: Sequence[int] | None = None,
    input_shape: Sequence[int] | None = None,
    image_shape: Sequence[int] | None = None,
    valid_range: tuple[float, float] | None = None,
    steps: int = 300,
    learning_rate: float = 0.05,
    tv_weight: float = 0.01,
    l2_weight: float = 0.0,
    init: str = "mean",
    seed: int = 0,
) -> InversionReport:
    """Reconstruct a representative input of each class in ``classes`` (default: all) and score it.

    ``reference`` is ``(x, y)`` data of the model's classes (its training set or a sample): it gives
    the input shape, the valid range (unless ``valid_range`` is given), the ``"mean"`` start, and the
    class means the reconstructions are scored against. Without it only confidences are measured.
    ``image_shape`` views each input as an image (for total variation and the returned arrays), e.g.
    ``(8, 8)`` for a model on 64 flattened pixels. Deterministic for a given ``seed``.
    """
    t_start = time.perf_counter()
    adapter = as_model(model)
    if not adapter.has_gradients:
        raise GradientUnavailableError(
            f"model inversion needs input gradients, and {adapter.name} has none",
            hint="invert a torch module, a scikit-learn linear model or MLPClassifier",
        )
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise ConfigError(f"steps must be an integer from 1 to {MAX_STEPS}, not {steps!r}")
    lr = _finite_number(learning_rate, "learning_rate", positive=True)
    tv = _finite_number(tv_weight, "tv_weight")
    l2 = _finite_number(l2_weight, "l2_weight")
    if init not in INITS:
        raise ConfigError(f"unknown init {init!r}", hint=f"choose from {', '.join(INITS)}")
    ref = _reference(reference)
    shape, image = _shapes(adapter, ref, input_shape, image_shape)
    notes: list[str] = []
    bounds = _range(valid_range, ref, notes)
    if init == "mean" and ref is None:
        notes.append("init 'mean' needs reference data: started from the middle of the valid range")
    probe = _start("midpoint", shape, 1, bounds, None, seed)
    adapter.scores(probe)
    targets = _targets(classes, adapter.n_classes)
    tv_shape = image if len(image) >= 2 else None
    if tv > 0 and tv_shape is None:
        notes.append("inputs are 1-D: total variation is off (pass image_shape to view them as images)")

    x0 = _start(init, shape, len(targets), bounds, ref, seed)
    params = (
        ("steps", steps),
        ("learning_rate", lr),
        ("tv_weight", tv),
        ("l2_weight", l2),
        ("init", init),
        ("loss", "cross-entropy"),
        ("optimizer", "adam, clipped to the valid range"),
    )
    x = _invert(
        adapter,
        x0,
        targets,
        bounds=bounds,
        steps=steps,
        learning_rate=lr,
        tv_weight=tv,
        l2_weight=l2,
        image_shape=tv_shape,
    )
    probs = adapter.probabilities(x)
    labels = getattr(adapter, "classes", None)
    recs, means = _score(x, probs, targets, ref, adapter, image, bounds, labels)
    scored = [r for r in recs if r.identifiable is not None]
    return InversionReport(
        model=adapter.name,
        input_shape=shape,
        image_shape=image,
        valid_range=bounds,
        reconstructions=tuple(recs),
        class_means=tuple(means),
        identification_rate=(sum(bool(r.identifiable) for r in scored) / len(scored)) if scored else None,
        chance_rate=1.0 / adapter.n_classes,
        mean_confidence=float(np.mean([r.confidence for r in recs])),
        mean_similarity=float(np.mean([r.similarity for r in scored])) if scored else None,
        mean_margin=(
            float(np.mean([r.similarity - r.best_other_similarity for r in scored]))  # type: ignore[operator]
            if scored
            else None
        ),
        steps=steps,
        gradient_queries=steps * len(targets),
        seconds=time.perf_counter() - t_start,
        parameters=params,
        notes=tuple(notes),
    )


def _score(
    x: np.ndarray,
    probs: np.ndarray,
    targets: list[int],
    ref: tuple[np.ndarray, np.ndarray] | None,
    adapter: ModelAdapter,
    image: tuple[int, ...],
    bounds: tuple[float, float],
    labels: np.ndarray | None,
) -> tuple[list[ClassReconstruction], list[np.ndarray]]:
    """Each reconstruction with its confidence and, given reference data, its similarity scores."""
    flat = x.reshape(len(x), -1).astype(np.float64)
    sims: np.ndarray | None = None
    class_means: np.ndarray | None = None
    present: np.ndarray | None = None
    if ref is not None:
        ref_idx = adapter.label_indices(ref[1])
        ref_flat = ref[0].reshape(len(ref[0]), -1)
        present = np.unique(ref_idx)
        class_means = np.stack([ref_flat[ref_idx == c].mean(0) for c in present])
        overall = ref_flat.mean(0)
        sims = _cosine(flat - overall, class_means - overall)
    recs: list[ClassReconstruction] = []
    means: list[np.ndarray] = []
    for i, t in enumerate(targets):
        similarity = other = ssim = None
        nearest: int | None = None
        identifiable: bool | None = None
        if sims is not None and present is not None and class_means is not None and t in present:
            row = sims[i]
            own = int(np.searchsorted(present, t))
            similarity = float(row[own])
            rest = np.delete(row, own)
            other = float(rest.max()) if len(rest) else -1.0
            nearest = int(present[int(np.argmax(row))])
            identifiable = nearest == t
            ssim = _ssim(flat[i], class_means[own], bounds[1] - bounds[0])
            means.append(class_means[own].reshape(image))
        label = labels[t] if labels is not None else t
        recs.append(
            ClassReconstruction(
                class_index=t,
                label=label,
                image=x[i].reshape(image),
                confidence=float(probs[i, t]),
                predicted=int(np.argmax(probs[i])),
                similarity=similarity,
                best_other_similarity=other,
                nearest_class=nearest,
                ssim=ssim,
                identifiable=identifiable,
            )
        )
    return recs, means


def score_reconstructions(
    model: Any,
    images: Any,
    classes: Sequence[int],
    reference: tuple[Any, Any],
    *,
    image_shape: Sequence[int] | None = None,
    valid_range: tuple[float, float] | None = None,
) -> tuple[ClassReconstruction, ...]:
    """Score reconstructions made elsewhere (another tool's, or saved ones) as :func:`run_model_inversion`
    scores its own: ``images[i]`` is a reconstruction of class index ``classes[i]``, in the model's input
    shape; ``reference`` is the ``(x, y)`` data the class means come from."""
    adapter = as_model(model)
    ref = _reference(reference)
    assert ref is not None
    x = to_numpy(images).astype(np.float32)
    if len(x) != len(classes):
        raise InputError(f"{len(x)} images but {len(classes)} classes")
    if not np.all(np.isfinite(x)):
        raise InputError("images hold non-finite values")
    _, image = _shapes(adapter, ref, tuple(x.shape[1:]), image_shape)
    bounds = _range(valid_range, ref, [])
    probs = adapter.probabilities(x)
    targets = [int(c) for c in classes]
    _targets(sorted(set(targets)), adapter.n_classes)
    recs, _ = _score(x, probs, targets, ref, adapter, image, bounds, getattr(adapter, "classes", None))
    return tuple(recs)
