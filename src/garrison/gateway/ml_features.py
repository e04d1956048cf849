"""Feature checks of classic ML routes, and the hook for input detectors.

:class:`FeatureValidator` finds the feature array in the common request shapes and checks its shape,
range and finiteness; :class:`InputDetector` is what an out-of-distribution or adversarial-input
detector implements (the assessment package provides a Mahalanobis one) for :func:`run_detector`.
Re-exported by :mod:`garrison.gateway.validate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from garrison.gateway.types import Denied


class FeatureSpec(BaseModel):
    """What the feature array of an ML route must look like."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shape: tuple[int | None, ...] = Field(
        min_length=1,
        description="Expected shape; null is any size, e.g. [null, 64] for a batch of 64 features.",
    )
    min: float | tuple[float, ...] | None = Field(
        default=None, description="Lowest allowed value: one for all features or one per feature (last axis)."
    )
    max: float | tuple[float, ...] | None = Field(
        default=None,
        description="Highest allowed value: one for all features or one per feature (last axis).",
    )
    dtype: Literal["float32", "float64", "int32", "int64"] = Field(
        default="float64",
        description="Type the model takes: float32 refuses values it cannot hold, ints refuse fractions.",
    )
    allow_nan: bool = Field(default=False, description="Let NaN and infinities through (they rarely belong).")
    input_name: str | None = Field(
        default=None, description="Which named input holds the features (KServe v2, TF Serving columnar)."
    )

    @model_validator(mode="after")
    def _check(self) -> FeatureSpec:
        if any(d is not None and d < 1 for d in self.shape):
            raise ValueError("feature shape sizes must be positive or null")
        last = self.shape[-1]
        for name, bound in (("min", self.min), ("max", self.max)):
            if isinstance(bound, tuple) and (last is None or len(bound) != last):
                raise ValueError(f"per-feature {name} needs a fixed last dimension of that length")
        return self


# --- features ---------------------------------------------------------------------------------------

_KSERVE_NUMERIC = frozenset(
    {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
)
_DTYPE_LIMITS = {
    "float32": float(np.finfo(np.float32).max),
    "float64": math.inf,
    "int32": float(2**31 - 1),
    "int64": float(2**63 - 1),
}


class FeatureValidator:
    """Finds the feature array in a request and checks its shape, range and finiteness (422 ``feature_*``).

    Payloads understood: ``{"instances": [...]}`` (TF Serving rows, KServe v1), ``{"inputs": [...]}``
    (TF Serving columnar with one input, MLflow), ``{"inputs": {"name": [...]}}`` and KServe v2
    ``{"inputs": [{"name", "shape", "datatype", "data"}]}``. A one-dimensional list is not promoted to a
    batch of one: it must match the declared shape as it is.
    """

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self._low = None if spec.min is None else np.asarray(spec.min, dtype=np.float64)
        self._high = None if spec.max is None else np.asarray(spec.max, dtype=np.float64)
        self._limit = _DTYPE_LIMITS[spec.dtype]

    def extract(self, payload: Any) -> np.ndarray:
        """The checked features as a float64 array."""
        raw, declared = self._locate(payload)
        array = _numeric_array(raw)
        if declared is not None:
            if array.size != math.prod(declared):
                raise Denied(422, "feature_shape")
            array = array.reshape(declared)
        self._check_shape(array.shape)
        values = array.astype(np.float64, copy=False)
        self._check_values(values)
        return values

    def _locate(self, payload: Any) -> tuple[Any, tuple[int, ...] | None]:
        if not isinstance(payload, dict):
            raise Denied(422, "feature_shape")
        if "instances" in payload and "inputs" not in payload:
            return payload["instances"], None
        inputs = payload.get("inputs")
        if isinstance(inputs, dict):
            return self._named(inputs), None
        if isinstance(inputs, list) and inputs and all(isinstance(t, dict) for t in inputs):
            return self._kserve_v2(inputs)
        if isinstance(inputs, list):
            return inputs, None
        raise Denied(422, "feature_shape")

    def _named(self, inputs: dict[str, Any]) -> Any:
        if self.spec.input_name is not None:
            if self.spec.input_name not in inputs:
                raise Denied(422, "feature_shape")
            return inputs[self.spec.input_name]
        if len(inputs) != 1:
            raise Denied(422, "feature_shape")
        return next(iter(inputs.values()))

    def _kserve_v2(self, tensors: list[dict[str, Any]]) -> tuple[Any, tuple[int, ...]]:
        if self.spec.input_name is not None:
            matches = [t for t in tensors if t.get("name") == self.spec.input_name]
        else:
            matches = tensors
        if len(matches) != 1:
            raise Denied(422, "feature_shape")
        tensor = matches[0]
        shape = tensor.get("shape")
        if (
            tensor.get("datatype") not in _KSERVE_NUMERIC
            or not isinstance(shape, list)
            or not all(type(d) is int and 0 <= d <= 2**31 for d in shape)
            or "data" not in tensor
        ):
            raise Denied(422, "feature_shape")
        return tensor["data"], tuple(shape)

    def _check_shape(self, shape: tuple[int, ...]) -> None:
        want = self.spec.shape
        if len(shape) != len(want) or any(
            w is not None and w != got for w, got in zip(want, shape, strict=True)
        ):
            raise Denied(422, "feature_shape")
        if 0 in shape:
            raise Denied(422, "feature_shape")

    def _check_values(self, values: np.ndarray) -> None:
        finite = np.isfinite(values)
        if not finite.all():
            if not self.spec.allow_nan:
                raise Denied(422, "feature_not_finite")
            values = np.where(finite, values, 0.0)
        if self._limit != math.inf and np.abs(values).max() > self._limit:
            raise Denied(422, "feature_range")
        if self.spec.dtype.startswith("int") and not np.array_equal(values, np.trunc(values)):
            raise Denied(422, "feature_range")
        if self._low is not None and (values < self._low).any():
            raise Denied(422, "feature_range")
        if self._high is not None and (values > self._high).any():
            raise Denied(422, "feature_range")


def _numeric_array(raw: Any) -> np.ndarray:
    """``raw`` as an int or float array; ragged lists, strings, booleans, nulls and objects refused."""
    if not isinstance(raw, list):
        raise Denied(422, "feature_shape")
    try:
        array = np.asarray(raw)
    except (ValueError, OverflowError):  # ragged nesting
        raise Denied(422, "feature_shape") from None
    if array.dtype.kind not in "iuf":  # b: all booleans, U: strings, O: nulls, objects, huge ints
        raise Denied(422, "feature_shape")
    return array


# --- input detectors --------------------------------------------------------------------------------


@runtime_checkable
class InputDetector(Protocol):
    """An out-of-distribution or adversarial-input detector (the assessment package provides them)."""

    name: str
    """Short name, used in decisions and events (``mahalanobis``)."""
    threshold: float
    """Scores above this are flagged."""

    def score(self, x: np.ndarray) -> np.ndarray:
        """One score per row of ``x`` (shape ``(n, ...)``); higher is more suspicious."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectorVerdict:
    """Rows an input detector scored above its threshold."""

    detector: str
    """The detector's name."""
    max_score: float
    """The highest row score."""
    threshold: float
    """The detector's threshold."""
    rows: tuple[int, ...]
    """Indices of the rows above the threshold."""


def run_detector(detector: InputDetector, x: np.ndarray) -> DetectorVerdict | None:
    """Score ``x``; ``None`` when every row is at or below the threshold.

    Fails closed: a detector that raises, or returns the wrong number of scores or a NaN, denies the
    request (500 ``input_detector_failed``).
    """
    batch = x if x.ndim > 1 else x[np.newaxis]
    try:
        scores = np.asarray(detector.score(batch), dtype=np.float64).reshape(-1)
    except Exception:  # noqa: BLE001 - any failure of a plug-in closes the request
        raise Denied(500, "input_detector_failed") from None
    if scores.shape[0] != batch.shape[0] or np.isnan(scores).any():
        raise Denied(500, "input_detector_failed")
    above = np.flatnonzero(scores > detector.threshold)
    if above.size == 0:
        return None
    return DetectorVerdict(
        detector=detector.name,
        max_score=float(scores.max()),
        threshold=float(detector.threshold),
        rows=tuple(int(i) for i in above),
    )
