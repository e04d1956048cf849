"""Output controls for classic ML routes: return less than the model computed.

Full probability vectors are what model-extraction (Tramèr et al. 2016) and membership-inference
(Shokri et al. 2017) attacks feed on; the standard defences are returning only the label, only the top
k classes, or probabilities rounded to a few decimals. An :class:`OutputPolicy` picks one, per role.

Response shapes understood (``rows`` is a list of score vectors, one per input):

- ``{"predictions": rows}`` (TF Serving, KServe v1) and ``{"probabilities": rows}`` / ``{"scores":
  rows}``, beside metadata keys listed in ``passthrough_keys``;
- KServe v2 ``{"outputs": [{"name", "shape", "datatype", "data"}, ...]}``;
- a plain list ``rows``.

Label mode turns each row into its argmax (or the class name); top-k into ``[[index, p], ...]``, best
first (KServe v2: ``data`` holds the k scores and an ``<name>_indices`` output the classes); round mode
rounds every score. Integer outputs (labels already) pass as they are. Anything else (an unknown key, a
one-dimensional float list that may be binary probabilities or regression values, ragged rows) fails
closed: 502 ``output_policy_unappliable``, never the full scores.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from garrison.gateway.types import Decision, Denied, Outcome

OutputMode = Literal["full", "label", "top_k", "round"]

_PERMISSIVENESS = {"label": 0, "top_k": 1, "round": 2, "full": 3}
_SCORE_KEYS = ("predictions", "probabilities", "scores")
_DEFAULT_PASSTHROUGH = ("id", "model_name", "model_version", "request_id")
_KSERVE_INT_TYPES = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})
_KSERVE_FLOAT_TYPES = frozenset({"FP16", "FP32", "FP64"})


class OutputPolicy(BaseModel):
    """What one role gets back from a classic ML route."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: OutputMode = Field(default="label", description="full, label (argmax), top_k or round.")
    k: int = Field(default=1, ge=1, le=1000, description="How many classes top_k returns.")
    decimals: int | None = Field(
        default=None, ge=0, le=15, description="Rounding of scores (round mode: required; top_k: optional)."
    )
    class_names: tuple[str, ...] | None = Field(
        default=None, description="Names returned instead of class indices, in class order."
    )
    passthrough_keys: tuple[str, ...] = Field(
        default=_DEFAULT_PASSTHROUGH, description="Response keys copied unchanged besides the scores."
    )

    @model_validator(mode="after")
    def _check(self) -> OutputPolicy:
        if self.mode == "round" and self.decimals is None:
            raise ValueError("round mode needs decimals")
        return self


def policy_for(
    roles: Iterable[str], by_role: Mapping[str, OutputPolicy], default: OutputPolicy
) -> OutputPolicy:
    """The policy of a caller with ``roles``: the most permissive among its roles that have one.

    Permissiveness: full > round > top_k > label; ties go to more decimals, then larger k. A caller
    with no role listed gets ``default``.
    """
    found = [by_role[r] for r in sorted(roles) if r in by_role]
    if not found:
        return default
    return max(
        found,
        key=lambda p: (_PERMISSIVENESS[p.mode], 99 if p.decimals is None else p.decimals, p.k),
    )


def apply_output_policy(policy: OutputPolicy, response: Any) -> Any:
    """The response rewritten as ``policy`` says; raises 502 ``output_policy_unappliable`` when it cannot."""
    if policy.mode == "full":
        return response
    if isinstance(response, list):
        return _rows(policy, response)
    if not isinstance(response, dict):
        raise _unappliable()
    if "outputs" in response:
        return _kserve_v2(policy, response)
    out: dict[str, Any] = {}
    found = False
    for key, value in response.items():
        if key in _SCORE_KEYS:
            out[key] = _rows(policy, value)
            found = True
        elif key in policy.passthrough_keys:
            out[key] = value
        else:
            raise _unappliable()
    if not found:
        raise _unappliable()
    return out


def predicted_classes(response: Any) -> np.ndarray | None:
    """The class the model predicted for each input, read from a full response (before any policy).

    For the extraction monitor. Rows of scores give their argmax, integer lists are taken as labels;
    ``None`` when the response has no shape this module knows.
    """
    candidates: list[Any] = []
    if isinstance(response, list):
        candidates.append(response)
    elif isinstance(response, dict) and isinstance(response.get("outputs"), list):
        for tensor in response["outputs"]:
            if (
                isinstance(tensor, dict)
                and isinstance(tensor.get("shape"), list)
                and len(tensor["shape"]) in (1, 2)
            ):
                shape = tensor["shape"]
                candidates.append((tensor.get("data"), shape))
    elif isinstance(response, dict):
        candidates.extend(response[k] for k in _SCORE_KEYS if k in response)
    for candidate in candidates:
        data, shape = candidate if isinstance(candidate, tuple) else (candidate, None)
        try:
            array = _scores(data)
            if shape is not None:
                array = array.reshape(shape)
        except (Denied, ValueError):
            continue
        if array.ndim == 1 and array.dtype.kind in "iu":
            return array.astype(np.int64)
        if array.ndim == 2 and array.shape[1] >= 2:
            best: np.ndarray = np.argmax(array, axis=1)
            return best
    return None


def _unappliable() -> Denied:
    return Denied(502, "output_policy_unappliable")


def _scores(value: Any) -> np.ndarray:
    if not isinstance(value, list):
        raise _unappliable()
    try:
        array = np.asarray(value)
    except (ValueError, OverflowError):
        raise _unappliable() from None
    if array.dtype.kind not in "iuf" or array.size == 0:
        raise _unappliable()
    return array


def _rows(policy: OutputPolicy, value: Any) -> Any:
    array = _scores(value)
    if array.dtype.kind in "iu" and (array.ndim == 1 or policy.mode == "round"):
        return value  # labels already, or integers that rounding leaves as they are
    scores = array.astype(np.float64)
    if policy.mode == "round":
        return _round(scores, policy.decimals)
    if array.ndim != 2 or array.shape[1] < 2:
        raise _unappliable()  # e.g. one binary probability or regression value per row: no safe argmax
    if policy.mode == "label":
        return [_name(policy, int(i)) for i in np.argmax(scores, axis=1)]
    index, best = _top_k(scores, policy)
    return [
        [[_name(policy, int(i)), p] for i, p in zip(ir, pr, strict=True)]
        for ir, pr in zip(index, best, strict=True)
    ]


def _round(scores: np.ndarray, decimals: int | None) -> Any:
    return np.round(scores, 0 if decimals is None else decimals).tolist()


def _top_k(scores: np.ndarray, policy: OutputPolicy) -> tuple[list[list[int]], list[list[float]]]:
    k = min(policy.k, scores.shape[1])
    index = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    best = np.take_along_axis(scores, index, axis=1)
    if policy.decimals is not None:
        best = np.round(best, int(policy.decimals))
    return index.tolist(), best.tolist()


def _name(policy: OutputPolicy, index: int) -> int | str:
    if policy.class_names is None:
        return index
    if index >= len(policy.class_names):
        raise _unappliable()
    return policy.class_names[index]


def _kserve_v2(policy: OutputPolicy, response: dict[str, Any]) -> dict[str, Any]:
    outputs = response["outputs"]
    if not isinstance(outputs, list):
        raise _unappliable()
    rewritten: list[dict[str, Any]] = []
    for tensor in outputs:
        rewritten.extend(_kserve_tensor(policy, tensor))
    out: dict[str, Any] = {}
    for key, value in response.items():
        if key == "outputs":
            out[key] = rewritten
        elif key in policy.passthrough_keys:
            out[key] = value
        elif key != "parameters":  # dropped: may carry anything, and dropping leaks nothing
            raise _unappliable()
    return out


def _kserve_tensor(policy: OutputPolicy, tensor: Any) -> list[dict[str, Any]]:
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        raise _unappliable()
    name, datatype, shape = tensor["name"], tensor.get("datatype"), tensor.get("shape")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise _unappliable()
    if datatype in _KSERVE_INT_TYPES:
        return [{"name": name, "shape": shape, "datatype": datatype, "data": tensor.get("data")}]
    if datatype not in _KSERVE_FLOAT_TYPES:
        raise _unappliable()
    data = _scores(tensor.get("data")).reshape(-1).astype(np.float64)
    if data.size != math.prod(shape):
        raise _unappliable()
    if policy.mode == "round":
        rounded = _round(data, policy.decimals)
        return [{"name": name, "shape": shape, "datatype": datatype, "data": rounded}]
    if len(shape) != 2 or shape[1] < 2:
        raise _unappliable()
    scores = data.reshape(shape)
    if policy.mode == "label":
        labels = [_name(policy, int(i)) for i in np.argmax(scores, axis=1)]
        kind = "BYTES" if policy.class_names is not None else "INT64"
        return [{"name": name, "shape": [shape[0]], "datatype": kind, "data": labels}]
    index, best = _top_k(scores, policy)
    k = len(index[0]) if index else 0
    names = [_name(policy, i) for row in index for i in row]
    return [
        {
            "name": name,
            "shape": [shape[0], k],
            "datatype": datatype,
            "data": [p for row in best for p in row],
        },
        {
            "name": f"{name}_indices",
            "shape": [shape[0], k],
            "datatype": "BYTES" if policy.class_names is not None else "INT64",
            "data": names,
        },
    ]


# --- output scanners --------------------------------------------------------------------------------


@runtime_checkable
class OutputScanner(Protocol):
    """Looks at response text (LLM output, serialized ML output): redaction, canary and leak checks."""

    name: str
    """Short name, used in decisions (``output.<name>``)."""

    def scan(self, text: str) -> tuple[Outcome, str]:
        """The verdict (allow, redact, flag or deny) and the text to send on (redacted where needed)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ScannedOutput:
    """Text after every output scanner, and what each decided."""

    text: str
    """What to send to the caller."""
    decisions: tuple[Decision, ...]
    """One per scanner, in order."""


def run_output_scanners(scanners: Sequence[OutputScanner], text: str) -> ScannedOutput:
    """Run scanners in order, each on the previous one's output.

    A ``deny`` verdict stops the response (502 ``output.<name>``); so does a scanner that raises or
    returns something else than a verdict and a string (fail closed).
    """
    decisions = []
    for scanner in scanners:
        step = f"output.{scanner.name}"
        try:
            verdict, new_text = scanner.scan(text)
        except Exception:  # noqa: BLE001 - any failure of a plug-in closes the response
            raise Denied(502, f"{step}:failed") from None
        if not isinstance(verdict, Outcome) or not isinstance(new_text, str):
            raise Denied(502, f"{step}:failed")
        if verdict is Outcome.DENY:
            raise Denied(502, step)
        if verdict is Outcome.ALLOW and new_text != text:
            raise Denied(502, f"{step}:failed")  # changed the text without saying so
        decisions.append(Decision(step=step, outcome=verdict))
        text = new_text
    return ScannedOutput(text=text, decisions=tuple(decisions))
