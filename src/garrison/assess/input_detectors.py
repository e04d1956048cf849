"""Run-time detectors of out-of-distribution and adversarial inputs, for the gateway's ML routes.

Two detectors, both calibrated to a false-positive rate on clean inputs the caller holds out:

- :class:`MahalanobisDetector` (Lee et al., 2018): class-conditional Gaussians with one shared
  covariance over features, the score of an input being its smallest Mahalanobis distance to a
  class mean. Features are the model's penultimate activations (the input of a PyTorch module's
  last linear layer: where adversarial inputs stand out), its logits, or the raw input (no model
  needed: an out-of-distribution check a gateway can run on any route, saved as a plain ``.npz``).
- :class:`SqueezeDetector` (Xu et al., 2018, feature squeezing): how far the model's probabilities
  move when the input's bit depth is reduced or it is median-filtered; adversarial perturbations
  tend not to survive squeezing, clean inputs do.

Neither catches everything: on a digits MLP, squeezing to 2 bits flags most PGD examples at ε=0.1 and
few at ε=0.3, where the input-space Mahalanobis distance flags nearly all; :class:`AnyOf` runs
several under one false-positive budget.

Each has ``name``, ``threshold`` and ``score(x)`` (one score per row, higher is more suspicious): the
gateway's :class:`~garrison.gateway.ml_features.InputDetector` protocol.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from garrison.assess.adapters import ModelAdapter, TorchModel, as_model, require_torch
from garrison.core.errors import InputError, UsageError

FeatureSpace = Literal["penultimate", "logits", "input"]


def calibrate(scores: np.ndarray, fpr: float) -> float:
    """The threshold that flags a fraction ``fpr`` of these clean scores (the (1 - fpr) quantile)."""
    if not 0.0 < fpr < 1.0:
        raise UsageError(f"the false-positive rate must be between 0 and 1, not {fpr}")
    values = np.asarray(scores, dtype=np.float64)
    if values.size < 10:
        raise InputError(f"calibration needs at least 10 clean inputs, got {values.size}")
    return float(np.quantile(values, 1.0 - fpr, method="higher"))


def detection_rate(detector: Any, x: np.ndarray) -> float:
    """The share of rows of ``x`` the detector flags (scores above its threshold)."""
    scores = np.asarray(detector.score(x), dtype=np.float64)
    return float(np.mean(scores > detector.threshold)) if scores.size else 0.0


@dataclass(slots=True, kw_only=True)
class MahalanobisDetector:
    """Smallest Mahalanobis distance to a class mean, with one shared covariance."""

    means: np.ndarray
    """Class means, shape (classes, features)."""
    precision: np.ndarray
    """Inverse of the shared (shrunk) covariance, shape (features, features)."""
    threshold: float = float("inf")
    """Scores above this are flagged (set by :meth:`calibrate`)."""
    space: FeatureSpace = "input"
    """Where the features come from."""
    model: ModelAdapter | None = field(default=None, repr=False)
    """The model whose activations are the features (not for ``input``)."""
    name: str = "mahalanobis"

    @classmethod
    def fit(
        cls,
        x: Any,
        y: Any | None = None,
        *,
        model: Any | None = None,
        space: FeatureSpace = "penultimate",
        shrinkage: float = 0.01,
    ) -> MahalanobisDetector:
        """Fit class means and the shared covariance on clean training inputs.

        ``y`` are the true labels; without them the model's predictions (or one class, for
        ``input`` without a model) are used. ``shrinkage`` adds that fraction of the mean variance
        to the diagonal, so few samples or constant features cannot make the covariance singular.
        """
        adapter = as_model(model) if model is not None else None
        if space != "input" and adapter is None:
            raise UsageError(f"the {space} feature space needs the model")
        features = _features(np.asarray(x), adapter, space)
        if y is not None:
            labels = adapter.label_indices(y) if adapter is not None else _indices(np.asarray(y))
        elif adapter is not None:
            labels = adapter.predict(np.asarray(x))
        else:
            labels = np.zeros(len(features), dtype=np.int64)
        classes = np.unique(labels)
        means = np.stack([features[labels == c].mean(axis=0) for c in classes])
        centred = features - means[np.searchsorted(classes, labels)]
        cov = centred.T @ centred / max(len(features) - len(classes), 1)
        cov += np.eye(cov.shape[0]) * (shrinkage * float(np.trace(cov)) / cov.shape[0] + 1e-9)
        return cls(means=means, precision=np.linalg.inv(cov), space=space, model=adapter)

    def score(self, x: np.ndarray) -> np.ndarray:
        """Smallest squared Mahalanobis distance to a class mean, per row."""
        features = _features(np.asarray(x), self.model, self.space)
        diff = features[:, None, :] - self.means[None, :, :]
        distances = np.einsum("nkd,de,nke->nk", diff, self.precision, diff, optimize=True)
        return np.asarray(distances.min(axis=1), dtype=np.float64)

    def calibrate(self, clean: np.ndarray, fpr: float = 0.01) -> MahalanobisDetector:
        """Set the threshold to flag ``fpr`` of these held-out clean inputs; returns itself."""
        self.threshold = calibrate(self.score(clean), fpr)
        return self

    def save(self, path: Path) -> None:
        """Write an input-space detector as ``.npz`` (arrays only: loading it runs nothing)."""
        if self.space != "input":
            raise UsageError("only an input-space detector is self-contained; the others need their model")
        meta = json.dumps(
            {"kind": "mahalanobis", "space": "input", "threshold": self.threshold, "name": self.name}
        )
        with path.open("wb") as handle:
            np.savez(handle, means=self.means, precision=self.precision, meta=np.array(meta))

    @classmethod
    def load(cls, path: Path) -> MahalanobisDetector:
        """Read what :meth:`save` wrote; an :class:`InputError` names what is wrong with the file."""
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                means, precision = (
                    np.asarray(data["means"], np.float64),
                    np.asarray(data["precision"], np.float64),
                )
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"{path} is not a Garrison input detector: {exc}") from None
        if meta.get("kind") != "mahalanobis" or means.ndim != 2 or precision.shape != (means.shape[1],) * 2:
            raise InputError(f"{path} is not a Garrison Mahalanobis detector (wrong kind or shapes)")
        return cls(
            means=means,
            precision=precision,
            threshold=float(meta["threshold"]),
            space="input",
            name=str(meta.get("name", "mahalanobis")),
        )


@dataclass(slots=True, kw_only=True)
class SqueezeDetector:
    """Largest L1 change of the model's probabilities under bit-depth reduction and median filtering."""

    model: ModelAdapter
    bits: int = 4
    """Bit depth the inputs (in [0, 1]) are reduced to."""
    median: int = 2
    """Median filter size for image inputs (N, C, H, W); 0 turns it off."""
    threshold: float = float("inf")
    name: str = "squeeze"

    @classmethod
    def for_model(cls, model: Any, *, bits: int = 4, median: int = 2) -> SqueezeDetector:
        return cls(model=as_model(model), bits=bits, median=median)

    def score(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        base = self.model.probabilities(x)
        levels = 2**self.bits - 1
        squeezed = [np.round(np.clip(x, 0.0, 1.0) * levels) / levels]
        if self.median and x.ndim == 4:
            squeezed.append(_median_filter(x, self.median))
        changes = [
            np.abs(self.model.probabilities(s.astype(np.float32)) - base).sum(axis=1) for s in squeezed
        ]
        return np.asarray(np.max(changes, axis=0), dtype=np.float64)

    def calibrate(self, clean: np.ndarray, fpr: float = 0.01) -> SqueezeDetector:
        self.threshold = calibrate(self.score(clean), fpr)
        return self


@dataclass(slots=True, kw_only=True)
class AnyOf:
    """Flag a row when any of several detectors would: each calibrated at ``fpr / n`` (a union bound),
    the score is the largest of score / threshold, and the threshold is 1."""

    detectors: tuple[Any, ...]
    threshold: float = 1.0
    name: str = "any"

    def calibrate(self, clean: np.ndarray, fpr: float = 0.01) -> AnyOf:
        for detector in self.detectors:
            detector.calibrate(clean, fpr / len(self.detectors))
        return self

    def score(self, x: np.ndarray) -> np.ndarray:
        ratios = [np.asarray(d.score(x), dtype=np.float64) / max(d.threshold, 1e-12) for d in self.detectors]
        return np.asarray(np.max(ratios, axis=0), dtype=np.float64)


def _indices(y: np.ndarray) -> np.ndarray:
    _, inverse = np.unique(y, return_inverse=True)
    return np.asarray(inverse, dtype=np.int64)


def _features(x: np.ndarray, model: ModelAdapter | None, space: FeatureSpace) -> np.ndarray:
    if space == "input" or model is None:
        return np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if space == "logits":
        return np.asarray(model.scores(x), dtype=np.float64)
    if not isinstance(model, TorchModel):
        raise UsageError("penultimate features need a PyTorch module; use space='logits' or 'input'")
    return _penultimate(model, x)


def _penultimate(model: TorchModel, x: np.ndarray) -> np.ndarray:
    """The input of the module's last linear layer, captured with a forward hook."""
    torch = require_torch("penultimate features")
    module = model.module
    last = None
    for layer in module.modules():
        if isinstance(layer, torch.nn.Linear):
            last = layer
    if last is None:
        raise UsageError("the module has no linear layer; use space='logits' or 'input'")
    captured: list[Any] = []
    handle = last.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0].detach()))
    try:
        with torch.no_grad():
            for start in range(0, len(x), 512):
                module(torch.as_tensor(np.asarray(x[start : start + 512], dtype=np.float32)).to(model.device))
    finally:
        handle.remove()
    features: np.ndarray = torch.cat(captured).cpu().numpy().astype(np.float64).reshape(len(x), -1)
    return features


def _median_filter(x: np.ndarray, size: int) -> np.ndarray:
    """A size×size median over each channel of (N, C, H, W) images, edges padded by reflection."""
    pad_before, pad_after = (size - 1) // 2, size // 2
    padded = np.pad(x, ((0, 0), (0, 0), (pad_before, pad_after), (pad_before, pad_after)), mode="reflect")
    height, width = x.shape[2], x.shape[3]
    windows = [padded[:, :, i : i + height, j : j + width] for i in range(size) for j in range(size)]
    filtered: np.ndarray = np.median(np.stack(windows), axis=0).astype(x.dtype)
    return filtered
