"""What was loaded, in a few numbers: type, entries, tensors and arrays, their sizes.

Reads only attributes (``shape``, ``dtype``, ``nbytes``) and walks mappings and sequences; the one
method it calls is ``state_dict()`` on a ``torch.nn.Module`` whose class the loader already allowed.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

_MAX_DEPTH = 6
_MAX_VISITED = 200_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One entry of a loaded mapping or sequence."""

    key: str
    """The key (or index) as text."""
    kind: str
    """Type name of the value, for example ``Tensor`` or ``ndarray``."""
    shape: tuple[int, ...] | None
    """Shape, for a tensor or array."""
    dtype: str | None
    """Element type, for a tensor or array."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    """A description of a loaded object."""

    kind: str
    """Qualified type name of the object."""
    entries: int | None
    """Number of entries of a mapping or sequence (of a module's state dict); ``None`` otherwise."""
    shown: tuple[Entry, ...]
    """The first entries."""
    arrays: int
    """Tensors and arrays found inside (mappings and sequences are walked)."""
    elements: int
    """Their total number of elements (parameters, for a state dict)."""
    nbytes: int
    """Their total size in bytes."""


def _type_name(value: object) -> str:
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _is_array(value: object) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype") and hasattr(value, "nbytes")


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(int(n) for n in value.shape)


def _module_state(value: object) -> Mapping[str, Any] | None:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.nn.Module):
        state: Mapping[str, Any] = value.state_dict()
        return state
    return None


def _children(value: object) -> Iterator[tuple[str, object]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key), item
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield str(index), item


def _arrays(value: object) -> Iterator[object]:
    todo: list[tuple[object, int]] = [(value, 0)]
    visited = 0
    seen: set[int] = set()
    while todo and visited < _MAX_VISITED:
        item, depth = todo.pop()
        visited += 1
        if id(item) in seen:
            continue
        seen.add(id(item))
        if _is_array(item):
            yield item
        elif depth < _MAX_DEPTH:
            todo.extend((child, depth + 1) for _, child in _children(item))


def summarize(value: object, *, limit: int = 20) -> Summary:
    """Describe ``value``: its type, its first ``limit`` entries, and the tensors and arrays in it."""
    state = _module_state(value)
    body: object = value if state is None else state
    entries = len(body) if isinstance(body, Mapping | list | tuple) else None
    shown: list[Entry] = []
    for key, item in _children(body):
        if len(shown) >= limit:
            break
        array = _is_array(item)
        shown.append(
            Entry(
                key=key,
                kind=type(item).__qualname__,
                shape=_shape(item) if array else None,
                dtype=str(getattr(item, "dtype", "")) if array else None,
            )
        )
    found = list(_arrays(body))
    return Summary(
        kind=_type_name(value),
        entries=entries,
        shown=tuple(shown),
        arrays=len(found),
        elements=sum(math.prod(_shape(a)) for a in found),
        nbytes=sum(int(getattr(a, "nbytes", 0)) for a in found),
    )
