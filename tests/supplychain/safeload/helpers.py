"""Comparing what safe loading returned with what the trusted loader returns."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from typing import Any


def same(a: Any, b: Any, path: str = "") -> list[str]:
    """Differences between ``a`` and ``b`` (empty when equal), walking containers and objects."""
    if type(a) is not type(b):
        return [f"{path}: {type(a).__name__} != {type(b).__name__}"]
    kind = f"{type(a).__module__}.{type(a).__qualname__}"
    if kind.startswith("torch.") and hasattr(a, "dtype") and hasattr(a, "shape"):
        import torch

        return [] if a.dtype == b.dtype and torch.equal(a, b) else [f"{path}: tensors differ"]
    if kind.startswith("torch.nn.modules"):
        return same(a.state_dict(), b.state_dict(), path + ".state_dict()")
    if kind == "numpy.ndarray" or kind == "numpy.ma.core.MaskedArray":
        import numpy as np

        if a.shape != b.shape or a.dtype != b.dtype:
            return [f"{path}: array shape or dtype differs"]
        if a.dtype.hasobject:
            return [
                d
                for i, (x, y) in enumerate(zip(a.ravel(), b.ravel(), strict=True))
                for d in same(x, y, f"{path}[{i}]")
            ]
        return [] if np.array_equal(a, b, equal_nan=a.dtype.kind in "fc") else [f"{path}: arrays differ"]
    if kind == "numpy.random.mtrand.RandomState":
        return same(a.get_state(legacy=False), b.get_state(legacy=False), path + ".state")
    if isinstance(a, Mapping):
        if list(a) != list(b):
            return [f"{path}: keys differ"]
        return [d for k in a for d in same(a[k], b[k], f"{path}[{k!r}]")]
    if isinstance(a, list | tuple):
        if len(a) != len(b):
            return [f"{path}: lengths differ"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in same(x, y, f"{path}[{i}]")]
    if hasattr(a, "__dict__") and not isinstance(a, type) and vars(a):
        return same(vars(a), vars(b), path + ".__dict__")
    try:
        equal = a == b
        if isinstance(equal, bool) and equal:
            return []
    except Exception:  # noqa: BLE001 - fall back to comparing the serialised form
        pass
    return [] if pickle.dumps(a, protocol=5) == pickle.dumps(b, protocol=5) else [f"{path}: {a!r} != {b!r}"]
