"""ONNX Runtime sessions as black-box models, and the checks that come before a session is made.

:class:`OnnxModel` wraps an ``onnxruntime.InferenceSession``, or loads a ``.onnx`` file into a hardened
one (CPU only, no custom-op library, no profiling or optimised-model files written; refused before
ONNX Runtime sees it when it uses a custom operator domain or external data outside its directory).
The operator and external-data checks use the ONNX reader the supply-chain scanner uses
(:mod:`garrison.formats.onnx_model`, :mod:`garrison.formats.onnx_paths`).
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from garrison.assess.adapters import OutputKind
from garrison.assess.adapters_blackbox import Answer, BlackBoxModel
from garrison.core.errors import ConfigError, GarrisonError, InputError, MissingExtraError, ResourceLimitError

__all__ = [
    "OnnxModel",
    "OnnxRefusedError",
    "check_onnx_bytes",
    "hardened_session",
    "load_onnx_session",
    "read_regular",
]

_MAX_ONNX_BYTES = 2**31 - 1
"""Largest ``.onnx`` file loaded (protobuf's own limit)."""


class OnnxRefusedError(GarrisonError):
    """An ONNX model was not loaded: it is malformed, uses a custom operator, or its data escapes."""

    exit_code = 3


def _onnxruntime(feature: str) -> Any:
    try:
        import onnxruntime  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingExtraError(feature, extra="onnx", module="onnxruntime") from exc
    return onnxruntime


def check_onnx_bytes(data: bytes, model_dir: Path, label: str, *, allow_external: bool = True) -> bool:
    """Refuse (:class:`OnnxRefusedError`) a model ONNX Runtime should not load; return whether it has
    external data.

    Refused: a malformed ``ModelProto``, a walk that hit a limit, any operator or opset import from a
    domain outside the ONNX standard and ONNX Runtime's built-in ones (those run only with a native
    custom-op library), and external data whose location is absolute, climbs out of ``model_dir``,
    leaves it through a link or is not a regular file — or any external data when ``allow_external``
    is false. These are the checks of Garrison's ONNX scanner (GAR-ONNX-001, 101 to 105, 201).
    """
    # The ONNX scanner's parser and path checks, shared rather than written twice.
    from garrison.formats.onnx_model import RUNTIME_DOMAINS, STANDARD_DOMAINS, read_model
    from garrison.formats.onnx_paths import check_entry

    result = read_model(data)
    if result.problem or result.limit:
        raise OnnxRefusedError(
            f"{label} was not loaded: not a well-formed ONNX model ({result.problem or result.limit})"
        )
    model = result.model
    builtin = STANDARD_DOMAINS | RUNTIME_DOMAINS
    custom = {
        n.domain
        for n in model.nodes
        if n.domain not in builtin and (n.domain, n.op_type) not in model.functions
    }
    custom |= set(model.opset_domains) - builtin - {d for d, _ in model.functions}
    if custom:
        raise OnnxRefusedError(
            f"{label} was not loaded: it uses the custom operator domain(s) {', '.join(sorted(custom))}, "
            "which run only with a native custom-op library",
            hint="Garrison never registers custom-op libraries; export the model with standard operators",
        )
    if model.external and not allow_external:
        raise OnnxRefusedError(
            f"{label} was not loaded: tensor {model.external[0].name!r} keeps its data in another file",
            hint="its signature covers only the .onnx file; save the model with its weights inside "
            "(onnx.save_model(..., save_as_external_data=False))",
        )
    for tensor in model.external:
        issues = check_entry(model_dir, tensor.entries)
        if issues or tensor.repeated:
            why = issues[0].message if issues else "its external-data keys repeat"
            raise OnnxRefusedError(f"{label} was not loaded: tensor {tensor.name!r}: {why}")
    return bool(model.external)


def hardened_session(data: bytes, *, external_dir: Path | None = None, threads: int | None = None) -> Any:
    """An ``InferenceSession`` over ``data`` on the CPU, with no custom-op library registered, no
    profiling, no optimised model written, and only ONNX (not ORT-format) input accepted.

    Call :func:`check_onnx_bytes` first. ``external_dir`` is where external data lives (ONNX Runtime
    also refuses locations that leave it); ``threads`` bounds the intra-op threads.
    """
    ort = _onnxruntime("ONNX models")
    options = ort.SessionOptions()
    options.enable_profiling = False
    options.log_severity_level = 3  # errors only: library code does not write to stderr
    options.add_session_config_entry("session.load_model_format", "ONNX")
    options.inter_op_num_threads = 1
    if threads is not None:
        options.intra_op_num_threads = threads
    if external_dir is not None:
        options.add_session_config_entry(
            "session.model_external_initializers_file_folder_path", str(external_dir)
        )
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - any failure to build the session is "not loaded"
        raise OnnxRefusedError(f"ONNX Runtime did not load the model: {str(exc)[:300]}") from None


def read_regular(path: Path, limit: int = _MAX_ONNX_BYTES) -> tuple[Path, bytes]:
    """The resolved path and every byte of a regular file of at most ``limit`` bytes, read once."""
    try:
        target = path.resolve(strict=True)
        fd = os.open(target, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise InputError(f"path not found: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot open {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{path} is not a regular file")
        if info.st_size > limit:
            raise ResourceLimitError(
                f"{path} is {info.st_size} bytes, over {limit}", limit="bytes", value=limit
            )
        os.set_blocking(handle.fileno(), True)
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ResourceLimitError(f"{path} grew past {limit} bytes while read", limit="bytes", value=limit)
    return target, data


def load_onnx_session(path: str | os.PathLike[str], *, threads: int | None = None) -> Any:
    """Check a ``.onnx`` file (:func:`check_onnx_bytes`) and load the bytes checked into a
    :func:`hardened_session`; external data is read from the model's own directory.
    """
    target, data = read_regular(Path(path))
    external = check_onnx_bytes(data, target.parent, os.fspath(path))
    return hardened_session(data, external_dir=target.parent if external else None, threads=threads)


_ONNX_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
}
_FLOAT_OUTPUTS = frozenset({"tensor(float)", "tensor(double)", "tensor(float16)"})


class OnnxModel(BlackBoxModel):
    """An ONNX classifier run by ONNX Runtime: a session, or a ``.onnx`` path loaded hardened.

    The input is the session's only input (or ``input_name``); the output is ``output_name``, else the
    first floating-point output (scores), else the first integer or string output (labels), else a
    ZipMap (sequence of maps: probabilities by class, in the maps' key order). Rows are cast to the
    input's type and reshaped to its fixed trailing dimensions when their size matches; a fixed batch
    dimension bounds ``batch_size``. No gradients.
    """

    framework = "onnx"

    def __init__(
        self,
        model: Any,
        *,
        input_name: str | None = None,
        output_name: str | None = None,
        batch_size: int = 256,
        output_kind: OutputKind | None = None,
        n_classes: int | None = None,
        classes: Sequence[Any] | None = None,
        threads: int | None = None,
        name: str | None = None,
    ) -> None:
        if isinstance(model, str | os.PathLike):
            label = Path(model).name
            model = load_onnx_session(model, threads=threads)
        elif hasattr(model, "run") and hasattr(model, "get_inputs"):
            label = "onnx-session"
        else:
            raise InputError(
                f"expected an onnxruntime.InferenceSession or a .onnx path, got {type(model).__name__}"
            )
        self.session = model
        inputs = {i.name: i for i in model.get_inputs()}
        if input_name is None and len(inputs) != 1:
            raise ConfigError(f"the model has inputs {sorted(inputs)}; pass input_name= to pick the features")
        chosen = inputs.get(input_name or next(iter(inputs)))
        if chosen is None:
            raise ConfigError(f"the model has no input {input_name!r}; it has {sorted(inputs)}")
        if len(inputs) > 1:
            raise ConfigError(
                f"the model needs inputs {sorted(inputs)}; only one-input models can be assessed"
            )
        self.input_name = chosen.name
        if chosen.type not in _ONNX_DTYPES:
            raise ConfigError(f"input {chosen.name!r} is a {chosen.type}; a numeric tensor is needed")
        self._dtype = _ONNX_DTYPES[chosen.type]
        shape = list(chosen.shape or [])
        self._trailing = tuple(d if isinstance(d, int) else None for d in shape[1:])
        if shape and isinstance(shape[0], int) and shape[0] > 0:
            batch_size = min(batch_size, shape[0])
        self.output_name, self._output_type = _pick_output(model, output_name)
        super().__init__(
            name=name or label,
            batch_size=batch_size,
            output_kind=output_kind,
            n_classes=n_classes,
            classes=classes,
        )

    def run(self, rows: np.ndarray) -> Any:
        """The chosen output for ``rows`` as ONNX Runtime returns it (an array, or a list of maps).

        Rows are cast to the input's type and reshaped to its fixed trailing dimensions when their size
        matches; a failure is an :class:`InputError`.
        """
        feed = np.ascontiguousarray(rows, dtype=self._dtype)
        fixed = tuple(d or 1 for d in self._trailing)
        if (
            self._trailing
            and None not in self._trailing
            and feed.shape[1:] != fixed
            and math.prod(feed.shape[1:]) == math.prod(fixed)
        ):
            feed = feed.reshape(len(feed), *fixed)
        try:
            (out,) = self.session.run([self.output_name], {self.input_name: feed})
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime raises its own exception types
            raise InputError(
                f"{self.name} failed on inputs of shape {feed.shape}: {str(exc)[:300]}"
            ) from None
        return out

    @property
    def output_type(self) -> str:
        """ONNX type of the chosen output, such as ``tensor(float)`` or ``seq(map(int64,tensor(float)))``."""
        return self._output_type

    def _answer(self, rows: np.ndarray) -> Answer:
        out = self.run(rows)
        if self._output_type.startswith("seq(map("):
            return self._zipmap(out, len(rows))
        arr = np.asarray(out)
        if len(arr) != len(rows):
            raise InputError(f"{self.name} answered {len(arr)} rows for {len(rows)} inputs")
        if self._output_type in _FLOAT_OUTPUTS:
            return Answer(form="scores", values=arr.reshape(len(arr), -1))
        return Answer(
            form="labels", values=np.asarray([self._class_index(v) for v in arr.reshape(-1).tolist()])
        )

    def _zipmap(self, out: Any, n: int) -> Answer:
        if not isinstance(out, list) or len(out) != n or not all(isinstance(r, dict) for r in out):
            raise InputError(f"{self.name}: output {self.output_name!r} is not one map per input")
        keys = sorted(out[0]) if out else []
        if self.classes is None:
            self.classes = tuple(keys)
            self._n_classes = len(keys)
        order = list(self.classes)
        if any(sorted(r) != sorted(order) for r in out):
            raise InputError(f"{self.name}: output {self.output_name!r} maps classes other than {order[:10]}")
        return Answer(form="scores", values=np.asarray([[r[k] for k in order] for r in out], np.float64))


def _pick_output(session: Any, wanted: str | None) -> tuple[str, str]:
    outputs = [(o.name, o.type) for o in session.get_outputs()]
    if wanted is not None:
        for name, kind in outputs:
            if name == wanted:
                return name, kind
        raise ConfigError(f"the model has no output {wanted!r}; it has {[n for n, _ in outputs]}")
    for accept in (
        lambda t: t in _FLOAT_OUTPUTS,
        lambda t: t.startswith("tensor(int") or t == "tensor(string)",
        lambda t: t.startswith("seq(map("),
    ):
        for name, kind in outputs:
            if accept(kind):
                return name, kind
    raise ConfigError(f"no output of the model reads as class scores or labels: {outputs}")
