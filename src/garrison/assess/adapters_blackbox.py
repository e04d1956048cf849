"""The black-box adapter: a model known only by its answers, read the same way whatever serves it.

:class:`BlackBoxModel` is the base of :class:`~garrison.assess.adapters_onnx.OnnxModel` (an ONNX
Runtime session) and :class:`~garrison.assess.adapters_http.HttpModel` (an HTTP endpoint); a subclass
says how to get one batch's :class:`Answer`. What the model answers is read per response and fixed on
the first one:

- a score row per input (``(N, C)``): logits, probabilities or log-probabilities, detected as for the
  other adapters (:func:`~garrison.assess.adapters.detect_output_kind`; probabilities rounded by an
  output control are still read as probabilities);
- a label per input (an integer index, or a class value when ``classes=`` is given): labels only;
- the top-k classes per input: probabilities, the k known ones kept and the rest of the mass spread
  evenly over the other classes (as an attacker reads a top-k API); top-k values that are not
  probabilities are logits, and the unseen classes get the k-th one (their upper bound). Labels and
  top-k need ``n_classes`` or ``classes``; the predicted class is always the model's own top one.

A black box has no gradients: attack it with ``square`` (scores) or ``hopskipjump`` (labels).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from garrison.assess.adapters import ModelAdapter, OutputKind, detect_output_kind, require_torch, to_numpy
from garrison.core.errors import ConfigError, GarrisonError, InputError

if TYPE_CHECKING:
    import torch

__all__ = ["Answer", "BlackBoxModel"]

_ROUNDED_SUM_TOLERANCE = 0.02
"""Rows in [0, 1] summing to 1 within this are probabilities (rounded by an output control)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """One batch's answer, before it is fixed into the adapter's reading."""

    form: Literal["scores", "labels", "top-k"]
    """What the model returned: score rows, one label per row, or the top-k classes per row."""
    values: np.ndarray
    """Scores (N, C); labels (N,) as class indices; top-k probabilities (N, k)."""
    indices: np.ndarray | None = None
    """Top-k class indices (N, k)."""


# --- the black-box base --------------------------------------------------------------------------------


class BlackBoxModel(ModelAdapter):
    """A model known only by its answers; subclasses say how to get one batch's answer."""

    framework = "black-box"

    def __init__(
        self,
        *,
        name: str,
        batch_size: int,
        output_kind: OutputKind | None,
        n_classes: int | None,
        classes: Sequence[Any] | None,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.name = name
        self.batch_size = batch_size
        self.classes: tuple[Any, ...] | None = None if classes is None else tuple(classes)
        if self.classes is not None and n_classes is not None and n_classes != len(self.classes):
            raise ConfigError(f"n_classes={n_classes} but {len(self.classes)} classes were given")
        self._declared_kind = output_kind
        self._kind: OutputKind | None = None
        self._form: str | None = None
        self._n_classes = n_classes if self.classes is None else len(self.classes)

    @abstractmethod
    def _answer(self, rows: np.ndarray) -> Answer:
        """The model's answer to one batch of at most ``batch_size`` rows."""

    # -- reading answers --

    def _class_index(self, label: Any) -> int:
        if self.classes is not None:
            try:
                return self.classes.index(label)
            except ValueError:
                raise InputError(
                    f"{self.name} returned the label {label!r}, which is not among classes= "
                    f"({list(self.classes)[:10]})"
                ) from None
        if isinstance(label, bool) or not isinstance(label, int | np.integer):
            raise InputError(
                f"{self.name} returned the label {label!r}; labels other than class indices need classes=",
                hint="pass classes=[...] in the model's class order",
            )
        index = int(label)
        if self._n_classes is not None and not 0 <= index < self._n_classes:
            raise InputError(f"{self.name} returned class index {index}, outside 0..{self._n_classes - 1}")
        return index

    def _need_classes(self, form: str) -> int:
        if self._n_classes is None:
            raise ConfigError(
                f"{self.name} answers with {form}, which do not say how many classes there are",
                hint="pass n_classes= (or classes=) to the adapter",
            )
        return self._n_classes

    def _fix(self, answer: Answer) -> np.ndarray:
        """The batch as (N, C): raw scores, one-hot labels, or top-k probabilities spread out."""
        if self._form is None:
            self._form = answer.form
        elif answer.form != self._form:
            raise InputError(f"{self.name} first answered with {self._form}, now with {answer.form}")
        if answer.form == "labels":
            c = self._need_classes("labels")
            self._kind = OutputKind.LABELS
            onehot: np.ndarray = np.eye(c, dtype=np.float64)[answer.values.astype(np.int64)]
            return onehot
        if answer.form == "top-k":
            c = self._need_classes("top-k classes")
            assert answer.indices is not None
            if self._kind is None:
                v = answer.values
                probs = np.all(v >= 0) and np.all(v <= 1) and np.all(v.sum(1) <= 1 + _ROUNDED_SUM_TOLERANCE)
                self._kind = self._declared_kind or (OutputKind.PROBABILITIES if probs else OutputKind.LOGITS)
            return _spread_top_k(answer.indices, answer.values, c, logits=self._kind is OutputKind.LOGITS)
        out = answer.values.astype(np.float64)
        if out.shape[1] == 1:
            kind = self._kind or self._declared_kind or OutputKind.LOGITS
            out = np.concatenate([1.0 - out, out] if kind is OutputKind.PROBABILITIES else [0 * out, out], 1)
            self._kind = kind
        if self._n_classes is None:
            self._n_classes = out.shape[1]
        elif out.shape[1] != self._n_classes:
            raise InputError(
                f"{self.name} returned {out.shape[1]} scores per row; expected {self._n_classes}"
            )
        if self._kind is None:
            self._kind = self._declared_kind or _detect(out)
        return out

    def _table(self, x: Any) -> tuple[np.ndarray, np.ndarray]:
        """(N, C) in the fixed reading, and the predicted class indices (N,)."""
        a = to_numpy(x)
        if a.ndim < 1:
            raise InputError(f"expected a batch of inputs (N, ...), got shape {a.shape}")
        if len(a) == 0:
            return np.zeros((0, self._n_classes or 0)), np.zeros(0, np.int64)
        tables, labels = [], []
        for start in range(0, len(a), self.batch_size):
            answer = self._answer(a[start : start + self.batch_size])
            table = self._fix(answer)
            tables.append(table)
            if answer.form == "scores":
                labels.append(np.argmax(table, axis=1))
            elif answer.form == "labels":
                labels.append(answer.values.astype(np.int64))
            else:
                assert answer.indices is not None
                labels.append(answer.indices[:, 0].astype(np.int64))
        return np.concatenate(tables), np.concatenate(labels)

    def ensure_probed(self, x: Any) -> None:
        """Ask about a few rows of ``x`` to learn the class count and output kind."""
        if self._kind is None:
            self._table(to_numpy(x)[:1])

    # -- the adapter interface --

    @property
    def output_kind(self) -> OutputKind:
        """What the model answers, read on the first answer."""
        if self._kind is None:
            raise GarrisonError(f"{self.name} has not seen any input yet", hint="call predict() first")
        return self._kind

    @property
    def n_classes(self) -> int:
        """Number of classes: declared, or the width of the first score rows."""
        if self._n_classes is None:
            raise GarrisonError(f"{self.name} has not seen any input yet", hint="call predict() first")
        return self._n_classes

    @property
    def has_gradients(self) -> bool:
        """A black box has none."""
        return False

    def label_indices(self, y: Any) -> np.ndarray:
        """Class indices for ``y``: looked up in ``classes`` when given, else taken as indices."""
        if self.classes is None:
            return super().label_indices(y)
        values = to_numpy(y).reshape(-1).tolist()
        return np.asarray([self._class_index(v) for v in values], dtype=np.int64)

    def predict(self, x: Any) -> np.ndarray:
        """Predicted class indices (N,): the model's own label or top class."""
        return self._table(x)[1]

    def probabilities(self, x: Any) -> np.ndarray:
        """Class probabilities (N, C): softmax of logits, one-hot for labels, top-k spread out."""
        table, _ = self._table(x)
        if self._kind is OutputKind.LOGITS:
            return _softmax(table)
        if self._kind is OutputKind.LOG_PROBABILITIES:
            exp: np.ndarray = np.exp(table).astype(np.float32)
            return exp
        probs: np.ndarray = table.astype(np.float32)
        return probs

    def scores(self, x: Any) -> np.ndarray:
        """Logit-like scores (N, C): logits or log-probabilities as returned, else log-probabilities."""
        table, _ = self._table(x)
        if self._kind in (OutputKind.LOGITS, OutputKind.LOG_PROBABILITIES):
            return table.astype(np.float32)
        logp: np.ndarray = np.log(np.clip(table, 1e-30, None)).astype(np.float32)
        return logp

    def torch_scores(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`scores` as a tensor on ``x``'s device (not differentiable)."""
        th = require_torch("black-box model scores")
        out: torch.Tensor = th.as_tensor(self.scores(x.detach().cpu().numpy())).to(x.device)
        return out


def _detect(out: np.ndarray) -> OutputKind:
    kind = detect_output_kind(out)
    if (
        kind is OutputKind.LOGITS
        and np.all(out >= 0)
        and np.all(out <= 1)
        and np.allclose(out.sum(1), 1.0, atol=_ROUNDED_SUM_TOLERANCE)
    ):
        return OutputKind.PROBABILITIES  # rounded by an output control
    return kind


def _softmax(s: np.ndarray) -> np.ndarray:
    z = s - s.max(axis=1, keepdims=True)
    e = np.exp(z)
    out: np.ndarray = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    return out


def _spread_top_k(indices: np.ndarray, values: np.ndarray, n_classes: int, *, logits: bool) -> np.ndarray:
    """Probabilities with the k known classes kept and the remaining mass shared by the others; for
    top-k logits, the unseen classes get the k-th logit, the most they can be.
    """
    n, k = indices.shape
    if k > n_classes or (indices.size and (indices.min() < 0 or indices.max() >= n_classes)):
        raise InputError(f"top-k classes {indices.tolist()[:2]} do not fit {n_classes} classes")
    rows = np.arange(n)[:, None]
    if logits:
        scores = np.repeat(values.min(axis=1, keepdims=True), n_classes, axis=1).astype(np.float64)
        scores[rows, indices] = values
        return scores
    out = np.zeros((n, n_classes))
    kept = np.clip(values.astype(np.float64), 0.0, 1.0)
    if k < n_classes:
        rest = np.clip(1.0 - kept.sum(1, keepdims=True), 0.0, None) / (n_classes - k)
        out += rest
    out[rows, indices] = kept
    return out
