"""Inputs of ``garrison assess model``: the flags parsed, the model loaded safely, the data read.

The model goes through :func:`garrison.loading.safe_load_result` (scan first, then the restricted
unpickler), so a file with hidden code is refused before anything of it runs. A PyTorch state dict
needs the user's own code to build the network (``--arch module:function``); that code is named by
the user on the command line, never taken from the file.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from garrison.core.config import LoadedSettings

ASSESSMENTS = ("evasion", "privacy", "attribute", "inversion", "extraction")
"""Assessment families ``--attacks`` names, in the order they run."""


def parse_assessments(spec: str) -> tuple[str, ...]:
    """The ``--attacks`` families, in :data:`ASSESSMENTS` order; an unknown one is a usage error."""
    from garrison.core.errors import UsageError

    names = set(parse_names(spec, "--attacks"))
    unknown = sorted(names - set(ASSESSMENTS))
    if unknown:
        raise UsageError(
            f"--attacks {', '.join(unknown)}: unknown", hint="choose from " + ", ".join(ASSESSMENTS)
        )
    return tuple(n for n in ASSESSMENTS if n in names)


def parse_names(spec: str, flag: str) -> tuple[str, ...]:
    """Comma-separated names, lower-cased and deduplicated; empty is a usage error."""
    from garrison.core.errors import UsageError

    names = tuple(dict.fromkeys(n.strip().lower() for n in spec.split(",") if n.strip()))
    if not names:
        raise UsageError(f"{flag} is empty")
    return names


def parse_budgets(spec: str) -> tuple[int, ...]:
    """``--queries 100,250,500``: positive whole numbers, sorted and deduplicated."""
    from garrison.core.errors import UsageError

    try:
        values = {int(p) for p in spec.split(",") if p.strip()}
    except ValueError:
        raise UsageError(
            f"--queries {spec!r}: expected comma-separated whole numbers, e.g. 100,500"
        ) from None
    if not values or min(values) < 1:
        raise UsageError(f"--queries {spec!r}: expected positive whole numbers, e.g. 100,500")
    return tuple(sorted(values))


def parse_floats(spec: str, flag: str) -> tuple[float, ...]:
    """Positive numbers from a comma-separated flag, sorted and deduplicated."""
    from garrison.core.errors import UsageError

    try:
        values = tuple(float(p) for p in spec.split(",") if p.strip())
    except ValueError:
        raise UsageError(f"{flag} {spec!r}: expected comma-separated numbers") from None
    if not values or any(not math.isfinite(v) or v <= 0 for v in values):
        raise UsageError(f"{flag} {spec!r}: expected positive numbers, e.g. 0.1,0.3")
    return tuple(sorted(set(values)))


def parse_shape(spec: str | None) -> tuple[int, ...] | None:
    """``--input-shape 1,8,8`` as a tuple of sizes."""
    from garrison.core.errors import UsageError

    if spec is None:
        return None
    try:
        shape = tuple(int(p) for p in spec.split(","))
    except ValueError:
        raise UsageError(f"--input-shape {spec!r}: expected comma-separated sizes, e.g. 1,8,8") from None
    if any(s < 1 for s in shape):
        raise UsageError(f"--input-shape {spec!r}: sizes must be positive")
    return shape


def parse_range(spec: str | None) -> tuple[float, float] | None:
    """``--valid-range LO,HI`` as a pair with ``LO < HI``."""
    from garrison.core.errors import UsageError

    if spec is None:
        return None
    try:
        lo, hi = (float(p) for p in spec.split(","))
    except ValueError:
        raise UsageError(f"--valid-range {spec!r}: expected LO,HI, e.g. 0,1") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise UsageError(f"--valid-range {spec!r}: expected finite LO < HI")
    return (lo, hi)


@dataclass(frozen=True, slots=True, kw_only=True)
class Endpoint:
    """How to query a model behind ``--model http(s)://...``."""

    protocol: str = "json"
    """``json`` (``{"instances": rows}`` → ``{"predictions": ...}``) or ``kserve-v2``."""
    api_key_env: str | None = None
    """Environment variable holding the API key (sent as a bearer token, never shown)."""
    n_classes: int | None = None
    """Class count, needed when the endpoint answers labels or top-k only."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedModel:
    """What the report needs to know of where a model came from."""

    locator: str
    """The file, or the endpoint's URL without credentials or query."""
    digest: str | None
    """``sha256:<hex>`` of the file's bytes; ``None`` for an endpoint."""
    format: str | None
    """The format the scan identified (``onnx``, ``pytorch-zip``, …); ``None`` for an endpoint."""
    endpoint: bool = False
    """Whether the model is an endpoint rather than a file."""


def load_model(
    path: str,
    allow: Sequence[str],
    arch: str | None,
    loaded: LoadedSettings,
    endpoint: Endpoint | None = None,
) -> tuple[Any, LoadedModel]:
    """The model object (an estimator, a module or an adapter) and where it came from.

    A pickle-based file goes through :func:`garrison.loading.safe_load_result`; an ONNX file is
    scanned the same way and run in a hardened ONNX Runtime session; an ``http(s)://`` URL becomes a
    black-box :class:`~garrison.assess.adapters_remote.HttpModel`.
    """
    from garrison.core.errors import UsageError
    from garrison.loading import is_onnx_file, safe_load_onnx, safe_load_result

    if "://" in path:
        return _endpoint(path, endpoint or Endpoint(), arch)
    if is_onnx_file(path):
        if arch is not None:
            raise UsageError("--arch applies to PyTorch state dicts, and this is an ONNX model")
        onnx = safe_load_onnx(path, settings=loaded.settings)
        return onnx.model, LoadedModel(locator=path, digest=onnx.digest, format="onnx")
    result = safe_load_result(path, allow=allow, settings=loaded.settings)
    where = LoadedModel(locator=path, digest=result.digest, format=result.format)
    value = result.value
    if hasattr(value, "predict") and hasattr(value, "classes_"):
        if arch is not None:
            raise UsageError("--arch applies to PyTorch state dicts, and this is a scikit-learn model")
        return value, where
    torch = _torch()
    if isinstance(value, torch.nn.Module):
        if arch is not None:
            raise UsageError("--arch applies to state dicts, and this file holds a whole PyTorch module")
        return value.eval(), where
    if isinstance(value, dict) and value and all(isinstance(v, torch.Tensor) for v in value.values()):
        if arch is None:
            raise UsageError(
                f"{path} holds a PyTorch state dict (weights only), not a model",
                hint="name the code that builds the network with --arch module:function (a function "
                "returning the nn.Module, importable from the working directory), or save the whole "
                "module with torch.save(model, PATH)",
            )
        return _build_arch(arch, value), where
    raise UsageError(
        f"{path} holds a {type(value).__name__}, not a model Garrison can assess",
        hint="save a fitted scikit-learn classifier (joblib.dump) or a torch.nn.Module (torch.save)",
    )


def _endpoint(url: str, endpoint: Endpoint, arch: str | None) -> tuple[Any, LoadedModel]:
    from garrison.assess.adapters_http import HttpModel
    from garrison.core.errors import UsageError

    if not url.lower().startswith(("http://", "https://")):
        raise UsageError(f"--model {url}: only http:// and https:// endpoints can be assessed")
    if arch is not None:
        raise UsageError("--arch applies to PyTorch state dicts, not to an endpoint")
    model = HttpModel(
        url, protocol=endpoint.protocol, api_key_env=endpoint.api_key_env,  # type: ignore[arg-type]
        n_classes=endpoint.n_classes,
    )  # fmt: skip
    return model, LoadedModel(locator=model.url, digest=None, format=None, endpoint=True)


def _torch() -> Any:
    from garrison.assess.adapters import require_torch

    return require_torch("PyTorch models")


def _build_arch(spec: str, state: dict[str, Any]) -> Any:
    """Call the user's ``module:function`` (their code, never the file's) and load ``state`` into it."""
    import importlib
    import os
    import re

    from garrison.core.errors import UsageError

    match = re.fullmatch(r"([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*):([A-Za-z_]\w*)", spec.strip())
    if not match:
        raise UsageError(f"--arch {spec!r}: expected module:function, e.g. mypkg.models:make_net")
    module_name, func_name = match.groups()
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UsageError(f"--arch {spec}: cannot import {module_name}: {exc}") from None
    finally:
        if added:
            sys.path.remove(cwd)
    build = getattr(module, func_name, None)
    if not callable(build):
        raise UsageError(f"--arch {spec}: {module_name} has no function {func_name}")
    model = build()
    torch = _torch()
    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"--arch {spec}: returned a {type(model).__name__}, not a torch.nn.Module")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UsageError(f"--arch {spec}: the state dict does not fit the network: {first}") from None
    return model.eval()


def load_data(path: Path, label: str | None, max_rows: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Inputs (float32), raw labels (numbers, or label texts from a table) and notes."""
    import numpy as np

    from garrison.core.errors import InputError, UsageError

    if path.suffix.lower() == ".npz":
        if label is not None:
            raise UsageError("--label applies to tables (CSV, TSV, JSON Lines, Parquet), not to .npz files")
        try:
            with np.load(path, allow_pickle=False) as archive:
                names = set(archive.files)
                if not {"x", "y"} <= names:
                    raise UsageError(
                        f"{path}: expected arrays 'x' and 'y', found {', '.join(sorted(names)) or 'none'}"
                    )
                x, y = archive["x"], archive["y"]
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a readable .npz file ({exc})") from None
        if len(x) != len(y):
            raise UsageError(f"{path}: {len(x)} inputs in 'x' but {len(y)} labels in 'y'")
        if not np.issubdtype(x.dtype, np.number):
            raise UsageError(f"{path}: 'x' must be numeric, not {x.dtype}")
        labels = y.reshape(-1)
        if labels.dtype.kind in "US":  # text labels stored as a NumPy string array
            labels = labels.astype(str).astype(object)
        return _finite(path, x.astype(np.float32)), labels, []
    if label is None:
        raise UsageError(f"{path}: name the label column with --label COLUMN (or pass an .npz with x and y)")
    from garrison.data.table_matrix import load_labelled_matrix

    table = load_labelled_matrix(path, label=label, max_rows=max_rows)
    texts = np.array(table.classes, dtype=object)[table.y]
    return _finite(path, table.matrix.astype(np.float32)), texts, list(table.notes)


def _finite(path: Path, x: np.ndarray) -> np.ndarray:
    """``x``, or an :class:`InputError` naming the first row with NaN or an infinity (or a value
    float32 cannot hold): attacks on such inputs would report numbers that mean nothing."""
    import numpy as np

    from garrison.core.errors import InputError

    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1) if len(x) else np.zeros(0, dtype=bool)
    if bad.any():
        raise InputError(
            f"{path}: {int(bad.sum())} input row(s) hold NaN or infinite values "
            f"(first: row {int(bad.argmax())}, counted from 0)",
            hint="impute or drop them before the assessment",
        )
    return x


def labels_for(model: Any, y: np.ndarray) -> np.ndarray:
    """Labels in the model's own terms: ``classes_`` values for scikit-learn, indices for torch."""
    import numpy as np

    from garrison.core.errors import UsageError

    if y.dtype != object:
        return y
    classes = getattr(model, "classes_", None)
    if classes is not None:
        by_text = {str(c): c for c in classes}
        unknown = sorted({t for t in y if t not in by_text})
        if unknown:
            raise UsageError(
                f"labels {', '.join(map(repr, unknown[:5]))} are not among the model's classes "
                f"({', '.join(map(str, list(by_text)[:10]))})"
            )
        return np.array([by_text[t] for t in y])
    try:
        return np.array([int(t) for t in y], dtype=np.int64)
    except ValueError:
        raise UsageError(
            "a PyTorch model's labels are class indices: the label column must hold integers 0..C-1"
        ) from None
