"""One interface over the models an assessment attacks: PyTorch modules and scikit-learn estimators.

A plain model is enough. :func:`as_model` wraps an ``nn.Module`` in :class:`TorchModel` and anything
with ``predict`` in :class:`SklearnModel`; nothing needs declaring. The class count comes from the
first forward pass (or ``classes_``), the input shape from the data, and what the model outputs —
logits, probabilities or log-probabilities — is detected on that first pass and reported
(:attr:`ModelAdapter.output_kind`), so attacks never mistake probabilities for logits.

Gradients: a torch module has them. A scikit-learn linear classifier (``coef_``/``intercept_``:
logistic regression, linear SVM, SGD, ridge), an ``MLPClassifier``, and a ``Pipeline`` of
``StandardScaler``/``MinMaxScaler`` steps ending in one of those are converted to an equivalent torch
function whose logits are the estimator's ``decision_function`` (the MLP's pre-activation output).
Every other estimator is black-box: probabilities if it has ``predict_proba``, labels only otherwise,
and :meth:`ModelAdapter.gradient` raises :class:`GradientUnavailableError`.

Inputs are numpy arrays or torch tensors in the model's own input shape; outputs are numpy arrays.
Everything runs in batches of ``batch_size`` rows.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from garrison.core.errors import GarrisonError, InputError, MissingExtraError

try:
    import numpy as np
except ImportError as exc:  # pragma: no cover - numpy comes with the torch and sklearn extras
    raise MissingExtraError("model assessment", extra="torch", module="numpy") from exc

if TYPE_CHECKING:
    import torch

#: Rows whose outputs sum to 1 within this tolerance are read as probabilities.
_SUM_TOLERANCE = 1e-3


class OutputKind(StrEnum):
    """What a model's raw output is."""

    LOGITS = "logits"
    """Unnormalised scores; softmax gives probabilities."""
    PROBABILITIES = "probabilities"
    """Rows are non-negative and sum to 1 (the module ends in a softmax)."""
    LOG_PROBABILITIES = "log-probabilities"
    """Rows are non-positive and their exponentials sum to 1 (the module ends in a log-softmax)."""
    LABELS = "labels"
    """Only a predicted label (a black-box estimator without ``predict_proba``)."""


class GradientUnavailableError(GarrisonError):
    """An attack or call needs input gradients, and the model does not provide them."""

    exit_code = 2


def require_torch(feature: str) -> Any:
    """Import torch, or raise :class:`MissingExtraError` naming the feature that needs it."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is installed in development
        raise MissingExtraError(feature, extra="torch", module="torch") from exc
    return torch


def to_numpy(x: Any) -> np.ndarray:
    """A numpy view of a numpy array, torch tensor or nested sequence."""
    if isinstance(x, np.ndarray):
        return x
    if type(x).__module__.startswith("torch"):
        return np.asarray(x.detach().cpu().numpy())
    return np.asarray(x)


def _batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def detect_output_kind(out: np.ndarray) -> OutputKind:
    """Read an output batch (N, C) as logits, probabilities or log-probabilities.

    Probabilities: every value in [0, 1] and every row sums to 1 within 1e-3. Log-probabilities: every
    value is at most 0 and the exponentials of each row sum to 1. Anything else is logits. A single
    column is read as one binary logit.
    """
    if out.ndim != 2:
        raise InputError(f"the model returned an output of shape {out.shape}; expected (batch, classes)")
    if out.shape[1] == 1:
        return OutputKind.LOGITS
    out64 = out.astype(np.float64)
    if np.all(out64 >= 0) and np.all(out64 <= 1) and np.allclose(out64.sum(1), 1.0, atol=_SUM_TOLERANCE):
        return OutputKind.PROBABILITIES
    if np.all(out64 <= 0) and np.allclose(np.exp(out64).sum(1), 1.0, atol=_SUM_TOLERANCE):
        return OutputKind.LOG_PROBABILITIES
    return OutputKind.LOGITS


class ModelAdapter(ABC):
    """A classifier as the attacks see it: labels, probabilities, scores and, where possible, gradients."""

    #: Short description of the wrapped model, for reports.
    name: str
    #: What runs the model, for reports: ``torch``, ``sklearn``, ``onnx``, ``http``, ...
    framework: str = "custom"
    #: Rows per forward pass.
    batch_size: int

    @property
    @abstractmethod
    def output_kind(self) -> OutputKind:
        """What the model's raw output is (detected on the first forward pass)."""

    @property
    @abstractmethod
    def n_classes(self) -> int:
        """Number of classes (from the first forward pass or ``classes_``)."""

    @property
    @abstractmethod
    def has_gradients(self) -> bool:
        """Whether :meth:`gradient` and the gradient-based attacks work on this model."""

    @abstractmethod
    def torch_scores(self, x: torch.Tensor) -> torch.Tensor:
        """Logit-like scores (N, C) as a torch tensor: logits, or log-probabilities for a model that
        outputs probabilities (same softmax, same argmax). Differentiable when :attr:`has_gradients`.
        """

    def label_indices(self, y: Any) -> np.ndarray:
        """Class indices 0..C-1 for the labels ``y`` (a torch module's labels already are); labels
        that are not whole non-negative numbers are an :class:`InputError`."""
        labels = to_numpy(y).reshape(-1)
        if labels.dtype.kind not in "iub":
            whole = labels.dtype.kind == "f" and bool(
                np.all(np.isfinite(labels) & (labels == np.round(labels)))
            )
            if not whole:
                raise InputError(
                    f"labels for {self.name} must be class indices (whole numbers 0..C-1), "
                    f"got {labels.dtype} values such as {labels[:3].tolist()!r}"
                )
        out = labels.astype(np.int64)
        if len(out) and out.min() < 0:
            raise InputError(f"labels for {self.name} must be class indices 0..C-1, got {int(out.min())}")
        return out

    def predict(self, x: Any) -> np.ndarray:
        """Predicted class indices, shape (N,)."""
        labels: np.ndarray = np.argmax(self.scores(x), axis=1)
        return labels

    def scores(self, x: Any) -> np.ndarray:
        """Logit-like scores (N, C) as numpy, in batches, without gradients."""
        torch = require_torch("model scores")
        xt = torch.as_tensor(to_numpy(x))
        parts = []
        with torch.no_grad():
            for s in _batches(len(xt), self.batch_size):
                parts.append(self.torch_scores(xt[s]).detach().cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros((0, self.n_classes), np.float32)

    def probabilities(self, x: Any) -> np.ndarray:
        """Class probabilities (N, C)."""
        s = self.scores(x).astype(np.float64)
        s -= s.max(axis=1, keepdims=True)
        e = np.exp(s)
        probs: np.ndarray = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
        return probs

    def logits(self, x: Any) -> np.ndarray:
        """Raw logits (N, C); only for a model whose output is logits."""
        if self.output_kind is not OutputKind.LOGITS:
            raise GarrisonError(
                f"{self.name} outputs {self.output_kind.value}, not logits",
                hint="use probabilities() or scores() (log-probabilities, same argmax)",
            )
        return self.scores(x)

    def gradient(self, x: Any, y: Any, loss: str = "ce") -> np.ndarray:
        """Gradient of the loss with respect to the input, same shape as ``x``.

        ``loss`` is ``"ce"`` (cross-entropy of the scores against ``y``) or ``"margin"`` (the best other
        class's score minus the true class's score). Both increase as the model gets more wrong.
        """
        torch = require_torch("input gradients")
        if not self.has_gradients:
            raise GradientUnavailableError(
                f"{self.name} has no input gradients",
                hint="use a black-box attack (square, hopskipjump)",
            )
        if loss not in ("ce", "margin"):
            raise GarrisonError(f"unknown loss {loss!r}", hint="use 'ce' or 'margin'")
        xt = torch.as_tensor(to_numpy(x))
        yt = torch.as_tensor(self.label_indices(y))
        parts = []
        for s in _batches(len(xt), self.batch_size):
            xb = xt[s].clone().float().requires_grad_(True)
            z = self.torch_scores(xb)
            yb = yt[s].to(z.device)
            if len(yb) and int(yb.max()) >= z.shape[1]:
                raise InputError(
                    f"label {int(yb.max())} is not a class of {self.name}, which has {z.shape[1]}"
                )
            if loss == "ce":
                value = torch.nn.functional.cross_entropy(z, yb, reduction="sum")
            else:
                true = z.gather(1, yb[:, None])[:, 0]
                other = z.scatter(1, yb[:, None], -math.inf).amax(1)
                value = (other - true).sum()
            (g,) = torch.autograd.grad(value, xb)
            parts.append(g.detach().cpu().numpy())
        return np.concatenate(parts)


class TorchModel(ModelAdapter):
    """A PyTorch ``nn.Module`` classifier. Put in eval mode; its parameters are never changed.

    The module must map a batch of inputs to (N, C) outputs; a single output column is read as one
    binary logit (scores ``[0, z]``). ``output_kind`` forces the reading of the output when detection
    on the first batch would be wrong.
    """

    framework = "torch"

    def __init__(
        self,
        module: Any,
        *,
        batch_size: int = 256,
        output_kind: OutputKind | None = None,
        name: str | None = None,
    ) -> None:
        th = require_torch("PyTorch models")
        if not isinstance(module, th.nn.Module):
            raise InputError(f"expected a torch.nn.Module, got {type(module).__name__}")
        module.eval()
        self.module = module
        self.batch_size = batch_size
        self.name = name or type(module).__name__
        self._kind = output_kind
        self._n_classes: int | None = None
        self._channels_last = False
        self._pools: list[Any] = []
        params = list(module.parameters())
        self._dtype = params[0].dtype if params else th.float32
        self._device: torch.device = params[0].device if params else th.device("cpu")

    def _raw(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self._device, self._dtype)
        if self._channels_last:
            th = require_torch("PyTorch models")
            x = x.to(memory_format=th.channels_last)
            hooks = [m.register_forward_hook(_channels_last_grad_hook) for m in self._pools]
            try:
                out: torch.Tensor = self._call(x)
            finally:
                for h in hooks:
                    h.remove()
        else:
            out = self._call(x)
        if out.ndim != 2:
            raise InputError(f"{self.name} returned an output of shape {tuple(out.shape)}; expected (N, C)")
        if out.shape[1] == 1:
            out = torch_cat_zero(out)
        return out

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        """The module on ``x``; its own failure (inputs of the wrong shape or type) is an
        :class:`InputError` naming the shape, not a traceback."""
        try:
            out: torch.Tensor = self.module(x)
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise InputError(
                f"{self.name} failed on inputs of shape {tuple(x.shape)}: {first}",
                hint="check that the data has the shape and scale the model was trained on",
            ) from None
        return out

    def _probe(self, x: torch.Tensor) -> None:
        torch = require_torch("PyTorch models")
        with torch.no_grad():
            head = x[: min(len(x), 64)]
            out = self._raw(head)
            self._channels_last = self._prefers_channels_last(head, out)
        self._n_classes = int(out.shape[1])
        if self._kind is None:
            self._kind = detect_output_kind(out.detach().cpu().numpy())

    def _prefers_channels_last(self, x: torch.Tensor, out: torch.Tensor) -> bool:
        """Whether to feed images to the module in channels-last layout (NHWC strides, same values).

        PyTorch's CPU kernels for convolutions and, above all, pooling are faster on channels-last
        tensors, and the layout carries through the network (the effect on whole attacks is measured
        by benchmarks/assess/bench_evasion.py). The gradient coming back into a pooling layer from a
        flatten arrives in the default layout, and pooling's backward pass on mixed layouts converts
        both tensors; a forward hook on each pooling module, present only during the call, returns
        that gradient in channels-last layout instead (same values). Used only for 4-D inputs to a
        module with a ``Conv2d``, and only when the module gives the same output both ways: a module
        that reshapes its input with ``view`` fails on a channels-last tensor, and then keeps the default.
        """
        th = require_torch("PyTorch models")
        if x.ndim != 4 or not any(isinstance(m, th.nn.Conv2d) for m in self.module.modules()):
            return False
        pool_types = (th.nn.MaxPool2d, th.nn.AvgPool2d, th.nn.AdaptiveMaxPool2d, th.nn.AdaptiveAvgPool2d)
        self._pools = [m for m in self.module.modules() if isinstance(m, pool_types)]
        try:
            self._channels_last = True
            again = self._raw(x)
        except (RuntimeError, InputError):
            return False
        finally:
            self._channels_last = False
        return bool(again.shape == out.shape and th.allclose(again, out, rtol=1e-4, atol=1e-5))

    def ensure_probed(self, x: Any) -> None:
        """Run the first forward pass on ``x`` (a few rows) to learn the class count and output kind."""
        if self._n_classes is None:
            torch = require_torch("PyTorch models")
            self._probe(torch.as_tensor(to_numpy(x)))

    @property
    def device(self) -> torch.device:
        """Where the module's parameters live; attacks run there (a GPU module is attacked on the GPU)."""
        return self._device

    @property
    def output_kind(self) -> OutputKind:
        """What the module outputs, detected on the first forward pass."""
        if self._kind is None:
            raise GarrisonError(f"{self.name} has not seen any input yet", hint="call predict() first")
        return self._kind

    @property
    def n_classes(self) -> int:
        """Number of classes, from the first forward pass."""
        if self._n_classes is None:
            raise GarrisonError(f"{self.name} has not seen any input yet", hint="call predict() first")
        return self._n_classes

    @property
    def has_gradients(self) -> bool:
        """A torch module always has input gradients."""
        return True

    def torch_scores(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, or log-probabilities for a module that outputs probabilities."""
        if self._n_classes is None:
            self._probe(x)
        out = self._raw(x)
        if self._kind is OutputKind.PROBABILITIES:
            logp: torch.Tensor = out.clamp_min(1e-30).log()
            return logp
        return out

    def scores(self, x: Any) -> np.ndarray:
        """Logit-like scores (N, C) as numpy."""
        self.ensure_probed(x)
        return super().scores(x)

    def probabilities(self, x: Any) -> np.ndarray:
        """Class probabilities (N, C); a module's own probabilities are returned as they are."""
        self.ensure_probed(x)
        if self._kind is OutputKind.PROBABILITIES:
            probs: np.ndarray = np.exp(self.scores(x))
            return probs
        return super().probabilities(x)


def _channels_last_grad_hook(module: Any, inputs: Any, output: Any) -> Any:
    """Forward hook: ``output`` unchanged, its gradient turned channels-last on the way back."""
    if getattr(output, "ndim", 0) != 4:
        return output
    return _channels_last_grad_fn().apply(output)


@functools.cache
def _channels_last_grad_fn() -> Any:
    """An identity autograd function whose backward returns the gradient in channels-last layout."""
    th = require_torch("PyTorch models")

    def forward(ctx: Any, x: Any) -> Any:
        return x.view_as(x)

    def backward(ctx: Any, g: Any) -> Any:
        return g.contiguous(memory_format=th.channels_last)

    body = {"forward": staticmethod(forward), "backward": staticmethod(backward)}
    return type("ChannelsLastGrad", (th.autograd.Function,), body)


def torch_cat_zero(z: torch.Tensor) -> torch.Tensor:
    """Turn one binary logit column ``z`` into two-class scores ``[0, z]``."""
    th = require_torch("binary models")
    out: torch.Tensor = th.cat((th.zeros_like(z), z), dim=1)
    return out


class SklearnModel(ModelAdapter):
    """A scikit-learn classifier (anything with ``predict``; ``classes_`` gives the classes).

    Linear classifiers, ``MLPClassifier`` and scaler pipelines ending in one of those get gradients
    through an equivalent torch function; others are black-box.
    """

    framework = "sklearn"

    def __init__(self, estimator: Any, *, batch_size: int = 4096, name: str | None = None) -> None:
        if not hasattr(estimator, "predict"):
            raise InputError(f"{type(estimator).__name__} has no predict(); not a classifier")
        self.estimator = estimator
        self.batch_size = batch_size
        self.name = name or type(estimator).__name__
        classes = getattr(estimator, "classes_", None)
        if classes is None:
            raise InputError(
                f"{self.name} has no classes_; is it fitted?", hint="fit the estimator before assessing it"
            )
        self.classes = np.asarray(classes)
        self._torch_fn: Callable[[torch.Tensor], torch.Tensor] | None = None
        self._convertible = _converter(estimator) is not None

    @property
    def output_kind(self) -> OutputKind:
        """Logits (decision function) when convertible, probabilities with predict_proba, else labels."""
        if self._convertible:
            return OutputKind.LOGITS
        if hasattr(self.estimator, "predict_proba"):
            return OutputKind.PROBABILITIES
        return OutputKind.LABELS

    @property
    def n_classes(self) -> int:
        """``len(classes_)``."""
        return len(self.classes)

    @property
    def has_gradients(self) -> bool:
        """True for the estimators Garrison converts to torch."""
        return self._convertible

    def label_indices(self, y: Any) -> np.ndarray:
        """Index of each label in ``classes_``; an unknown label is an :class:`InputError`."""
        y = to_numpy(y).reshape(-1)
        idx = np.searchsorted(self.classes, y)
        idx = np.clip(idx, 0, len(self.classes) - 1)
        if len(y) and not np.all(self.classes[idx] == y):
            raise InputError(f"labels not among {self.name}.classes_ ({self.classes.tolist()[:10]})")
        out: np.ndarray = idx.astype(np.int64)
        return out

    def _flat(self, x: Any) -> np.ndarray:
        a = to_numpy(x)
        return a.reshape(len(a), -1)

    def predict(self, x: Any) -> np.ndarray:
        """Predicted class indices, in batches."""
        a = self._flat(x)
        parts = [self.label_indices(self.estimator.predict(a[s])) for s in _batches(len(a), self.batch_size)]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def probabilities(self, x: Any) -> np.ndarray:
        """``predict_proba`` in batches, or one-hot labels for a labels-only estimator."""
        a = self._flat(x)
        if not hasattr(self.estimator, "predict_proba"):
            if self._convertible:
                return super().probabilities(a)
            onehot: np.ndarray = np.eye(self.n_classes, dtype=np.float32)[self.predict(a)]
            return onehot
        parts = [self.estimator.predict_proba(a[s]) for s in _batches(len(a), self.batch_size)]
        return (
            np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, self.n_classes), np.float32)
        )

    def torch_scores(self, x: torch.Tensor) -> torch.Tensor:
        """Decision-function logits (differentiable), or for a black box log ``predict_proba``."""
        th = require_torch("scikit-learn model scores")
        flat = x.reshape(len(x), -1)
        if self._convertible:
            if self._torch_fn is None:
                convert = _converter(self.estimator)
                assert convert is not None
                self._torch_fn = convert(self.estimator, th)
            return self._torch_fn(flat.float())
        p = self.probabilities(flat.detach().cpu().numpy())
        logp: torch.Tensor = th.as_tensor(p).clamp_min(1e-30).log()
        return logp


# --- scikit-learn to torch ---------------------------------------------------------------------------


def _converter(est: Any) -> Callable[[Any, Any], Callable[[torch.Tensor], torch.Tensor]] | None:
    kind = type(est).__name__
    if kind == "Pipeline":
        steps = [s for _, s in est.steps if s not in (None, "passthrough")]
        if not steps or _converter(steps[-1]) is None:
            return None
        if all(type(s).__name__ in ("StandardScaler", "MinMaxScaler") for s in steps[:-1]):
            return _convert_pipeline
        return None
    if kind == "MLPClassifier":
        return _convert_mlp
    if hasattr(est, "coef_") and hasattr(est, "intercept_") and hasattr(est, "decision_function"):
        return _convert_linear
    return None


def _binary(z: torch.Tensor) -> torch.Tensor:
    return torch_cat_zero(z) if z.shape[1] == 1 else z


def _convert_linear(est: Any, torch: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    w = torch.as_tensor(np.asarray(est.coef_, dtype=np.float32))
    b = torch.as_tensor(np.asarray(est.intercept_, dtype=np.float32).reshape(-1))

    def fn(x: torch.Tensor) -> torch.Tensor:
        return _binary(x @ w.T + b)

    return fn


def _convert_mlp(est: Any, torch: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    ws = [torch.as_tensor(np.asarray(w, dtype=np.float32)) for w in est.coefs_]
    bs = [torch.as_tensor(np.asarray(b, dtype=np.float32)) for b in est.intercepts_]
    acts: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "relu": torch.relu,
        "tanh": torch.tanh,
        "logistic": torch.sigmoid,
        "identity": lambda t: t,
    }
    if est.activation not in acts:
        raise GradientUnavailableError(f"MLPClassifier activation {est.activation!r} is not supported")
    act = acts[est.activation]

    def fn(x: torch.Tensor) -> torch.Tensor:
        h = x
        for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
            h = h @ w + b
            if i < len(ws) - 1:
                h = act(h)
        return _binary(h)

    return fn


def _convert_pipeline(est: Any, torch: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    steps = [s for _, s in est.steps if s not in (None, "passthrough")]
    affine: list[tuple[torch.Tensor, torch.Tensor]] = []
    for s in steps[:-1]:
        if type(s).__name__ == "StandardScaler":
            mean = np.zeros(s.n_features_in_) if s.mean_ is None else s.mean_
            scale = np.ones(s.n_features_in_) if s.scale_ is None else s.scale_
            mul, add = 1.0 / scale, -mean / scale
        else:
            mul, add = s.scale_, s.min_
        affine.append((torch.as_tensor(mul, dtype=torch.float32), torch.as_tensor(add, dtype=torch.float32)))
    last = steps[-1]
    convert = _converter(last)
    assert convert is not None
    head = convert(last, torch)

    def fn(x: torch.Tensor) -> torch.Tensor:
        for mul, add in affine:
            x = x * mul + add
        return head(x)

    return fn


def as_model(model: Any, *, batch_size: int | None = None) -> ModelAdapter:
    """Wrap ``model``: an adapter as it is, a torch module in :class:`TorchModel`, an estimator in
    :class:`SklearnModel`, an ONNX Runtime session or ``.onnx`` path in
    :class:`~garrison.assess.adapters_remote.OnnxModel`, an ``http(s)://`` URL in
    :class:`~garrison.assess.adapters_remote.HttpModel`.
    """
    if isinstance(model, ModelAdapter):
        return model
    if any(c.__module__.startswith("torch.nn") for c in type(model).__mro__):
        return TorchModel(model) if batch_size is None else TorchModel(model, batch_size=batch_size)
    if hasattr(model, "predict") and hasattr(model, "classes_"):
        return SklearnModel(model) if batch_size is None else SklearnModel(model, batch_size=batch_size)
    from garrison.assess.adapters_remote import remote_model

    remote = remote_model(model) if batch_size is None else remote_model(model, batch_size=batch_size)
    if remote is not None:
        return remote
    raise InputError(
        f"cannot assess a {type(model).__name__}",
        hint="pass a torch.nn.Module, a fitted scikit-learn classifier, an onnxruntime session, a .onnx "
        "path or an http(s):// URL",
    )
