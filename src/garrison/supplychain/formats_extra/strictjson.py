"""Strict, bounded JSON: what two different parsers of the same document would both accept.

Model formats keep their metadata in JSON (safetensors headers, Keras configs, tokenizer configs).
Python's :func:`json.loads` is lenient where other parsers are not: it keeps the last of duplicate
keys (others keep the first or fail), accepts ``NaN`` and ``Infinity``, and recurses as deep as the
interpreter allows. Those gaps are parser differentials: a file that one tool checks and another
loads differently. This module parses with every such leniency turned into a reported problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

MAX_DEPTH = 64
"""Deepest nesting accepted."""

MAX_NODES = 2_000_000
"""Most values (objects, arrays, scalars) walked after parsing."""


class JsonProblemError(ValueError):
    """The document is not strict JSON within limits."""


class JsonLimitError(JsonProblemError):
    """The document passes a limit on size, nesting or number of values."""


@dataclass(slots=True)
class StrictJson:
    """A parsed document and what was lenient about it."""

    value: Any
    """The parsed value (for duplicate keys, the last value, as Python and most loaders keep)."""
    duplicates: list[str] = field(default_factory=list)
    """Keys that appeared more than once in one object (first 20)."""
    depth: int = 0
    """Deepest nesting seen."""


def _reject_constant(name: str) -> float:
    raise JsonProblemError(f"non-standard JSON constant {name}")


def loads_strict(data: bytes | str, *, max_bytes: int, max_depth: int = MAX_DEPTH) -> StrictJson:
    """Parse ``data`` strictly; raise :class:`JsonProblemError` saying why it is not acceptable.

    Duplicate keys are not an error here (callers grade them): they are listed in the result.
    """
    if len(data) > max_bytes:
        raise JsonLimitError(f"JSON document is {len(data)} bytes, over the {max_bytes}-byte limit")
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonProblemError(f"JSON is not valid UTF-8 (byte {exc.start})") from None
    else:
        text = data
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in items:
            if key in result and len(duplicates) < 20:
                duplicates.append(key)
            result[key] = value
        return result

    try:
        value = json.loads(text, object_pairs_hook=pairs, parse_constant=_reject_constant)
    except RecursionError:
        raise JsonLimitError("JSON nesting is deeper than the parser's recursion limit") from None
    except JsonProblemError:
        raise
    except ValueError as exc:
        raise JsonProblemError(f"not valid JSON: {str(exc)[:120]}") from None
    depth = _depth(value, max_depth)
    return StrictJson(value=value, duplicates=duplicates, depth=depth)


def _depth(value: Any, max_depth: int) -> int:
    """Deepest nesting of ``value``; raise when it passes ``max_depth`` or too many nodes exist."""
    deepest = 0
    nodes = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise JsonLimitError(f"JSON has more than {MAX_NODES} values")
        if level > max_depth:
            raise JsonLimitError(f"JSON is nested more than {max_depth} levels deep")
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, level + 1) for child in item)
    return deepest
