"""A fast path for the JSON Schemas gateway routes use, compiled to nested Python closures.

:mod:`jsonschema` stays the authority: a body this fast path accepts is valid, and one it refuses is
checked again by :mod:`jsonschema`, which finds the violation the caller is told about. The fast path
handles a subset of Draft 2020-12 (types, properties, required, additionalProperties, items, enum,
const, numeric and length bounds, pattern, allOf/anyOf/oneOf, local ``$ref`` into ``$defs``); a schema
using any other keyword gets no fast path, so it can never accept what :mod:`jsonschema` would refuse.

It exists because :mod:`jsonschema` spends about 100-300 µs on a chat-completion body, and the gateway
has tens of microseconds per request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], bool]

_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "$defs",
        "title",
        "description",
        "default",
        "examples",
        "format",  # an annotation in 2020-12 unless a format assertion vocabulary is on (it is not)
        "deprecated",
        "readOnly",
        "writeOnly",
        "contentMediaType",
        "contentEncoding",
        "contentSchema",
    }
)
_SUPPORTED = _ANNOTATIONS | {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "const",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "allOf",
    "anyOf",
    "oneOf",
    "$ref",
}


class _Unsupported(Exception):  # noqa: N818 - control flow inside this module only
    pass


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _is_integer(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    return isinstance(x, int) or (isinstance(x, float) and x.is_integer())


_TYPE_TESTS: dict[str, Check] = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
    "number": _is_number,
    "integer": _is_integer,
}


def json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON Schema defines it: ``1 == 1.0``, but ``true != 1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def compile_fast(schema: Any) -> Check | None:
    """A predicate equivalent to ``Draft202012Validator(schema).is_valid``, or ``None`` if unsupported."""
    defs = schema.get("$defs", {}) if isinstance(schema, dict) else {}
    compiled: dict[str, Check] = {}

    def ref_check(ref: str) -> Check:
        prefix = "#/$defs/"
        name = ref[len(prefix) :]
        if not ref.startswith(prefix) or "/" in name or "~" in name or name not in defs:
            raise _Unsupported
        if name not in compiled:
            compiled[name] = lambda x: False  # placeholder while compiling a recursive definition
            target = build(defs[name], nested=True)
            compiled[name] = target
        return lambda x: compiled[name](x)  # noqa: PLW0108 - looked up late: definitions may recurse

    def build(node: Any, *, nested: bool) -> Check:
        if node is True:
            return lambda x: True
        if node is False:
            return lambda x: False
        if not isinstance(node, dict) or not set(node) <= _SUPPORTED:
            raise _Unsupported
        if nested and ("$id" in node or "$defs" in node):
            raise _Unsupported  # a nested resource changes how refs resolve
        checks: list[Check] = []
        if "$ref" in node:
            checks.append(ref_check(node["$ref"]))
        if "type" in node:
            names = [node["type"]] if isinstance(node["type"], str) else list(node["type"])
            tests = [_TYPE_TESTS[n] for n in names]
            checks.append(tests[0] if len(tests) == 1 else (lambda x: any(t(x) for t in tests)))
        if "enum" in node:
            options = list(node["enum"])
            checks.append(lambda x: any(json_equal(x, o) for o in options))
        if "const" in node:
            const = node["const"]
            checks.append(lambda x: json_equal(x, const))
        checks.extend(_numeric(node))
        checks.extend(_string(node))
        checks.extend(_array(node, build))
        checks.extend(_object(node, build))
        if "allOf" in node:
            every = [build(s, nested=True) for s in node["allOf"]]
            checks.append(lambda x: all(p(x) for p in every))
        if "anyOf" in node:
            some = [build(s, nested=True) for s in node["anyOf"]]
            checks.append(lambda x: any(p(x) for p in some))
        if "oneOf" in node:
            one = [build(s, nested=True) for s in node["oneOf"]]
            checks.append(lambda x: sum(1 for p in one if p(x)) == 1)
        if not checks:
            return lambda x: True
        if len(checks) == 1:
            return checks[0]
        return lambda x: all(c(x) for c in checks)

    try:
        return build(schema, nested=False)
    except (_Unsupported, KeyError, TypeError, re.error):
        return None


def _numeric(node: dict[str, Any]) -> list[Check]:
    out: list[Check] = []
    if "minimum" in node:
        lo = node["minimum"]
        out.append(lambda x: not _is_number(x) or x >= lo)
    if "maximum" in node:
        hi = node["maximum"]
        out.append(lambda x: not _is_number(x) or x <= hi)
    if "exclusiveMinimum" in node:
        elo = node["exclusiveMinimum"]
        out.append(lambda x: not _is_number(x) or x > elo)
    if "exclusiveMaximum" in node:
        ehi = node["exclusiveMaximum"]
        out.append(lambda x: not _is_number(x) or x < ehi)
    return out


def _string(node: dict[str, Any]) -> list[Check]:
    out: list[Check] = []
    if "minLength" in node:
        lo = node["minLength"]
        out.append(lambda x: not isinstance(x, str) or len(x) >= lo)
    if "maxLength" in node:
        hi = node["maxLength"]
        out.append(lambda x: not isinstance(x, str) or len(x) <= hi)
    if "pattern" in node:
        search = re.compile(node["pattern"]).search
        out.append(lambda x: not isinstance(x, str) or search(x) is not None)
    return out


def _array(node: dict[str, Any], build: Callable[..., Check]) -> list[Check]:
    out: list[Check] = []
    if "minItems" in node:
        lo = node["minItems"]
        out.append(lambda x: not isinstance(x, list) or len(x) >= lo)
    if "maxItems" in node:
        hi = node["maxItems"]
        out.append(lambda x: not isinstance(x, list) or len(x) <= hi)
    if "items" in node:
        item = build(node["items"], nested=True)
        out.append(lambda x: not isinstance(x, list) or all(item(v) for v in x))
    return out


def _object(node: dict[str, Any], build: Callable[..., Check]) -> list[Check]:
    out: list[Check] = []
    if "minProperties" in node:
        lo = node["minProperties"]
        out.append(lambda x: not isinstance(x, dict) or len(x) >= lo)
    if "maxProperties" in node:
        hi = node["maxProperties"]
        out.append(lambda x: not isinstance(x, dict) or len(x) <= hi)
    if "required" in node:
        required = tuple(node["required"])
        out.append(lambda x: not isinstance(x, dict) or all(k in x for k in required))
    props = {k: build(s, nested=True) for k, s in node.get("properties", {}).items()}
    if props:
        out.append(lambda x: not isinstance(x, dict) or all(p(x[k]) for k, p in props.items() if k in x))
    if "additionalProperties" in node:
        extra = node["additionalProperties"]
        if extra is False:
            known = frozenset(props)
            out.append(lambda x: not isinstance(x, dict) or x.keys() <= known)
        else:
            extra_check = build(extra, nested=True)
            out.append(
                lambda x: (
                    not isinstance(x, dict) or all(extra_check(v) for k, v in x.items() if k not in props)
                )
            )
    return out
