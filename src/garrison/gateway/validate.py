"""Request validation: body size, content type, JSON parsing with bounded depth, a JSON Schema per route,
and shape, range and finiteness checks of the features sent to classic ML routes.

Every check raises :class:`~garrison.gateway.types.Denied`; the caller sees only the status and a short
public text (for a schema violation: the JSON pointer and keyword of the first violation, never a value).

Policies worth knowing:

- ``Content-Type`` must name one of the route's media types (``application/json`` by default). A
  ``charset`` parameter is accepted only when it is ``utf-8`` (any case, quoted or not): JSON is UTF-8
  (RFC 8259 §8.1), and accepting ``charset=latin-1`` would let the gateway and the upstream read the
  same bytes differently. Two ``Content-Type`` headers are refused.
- The body must be strict UTF-8 without a byte-order mark (a UTF-16 or UTF-32 body fails as
  ``invalid_utf8``; a UTF-8 BOM fails as ``invalid_json``). ``\\ud800``-style escapes of lone
  surrogates, which no UTF-8 encoder can write back, fail as ``invalid_utf8``.
- ``NaN``, ``Infinity`` and numbers that overflow a double (``1e999``) are refused as ``invalid_json``;
  duplicate object keys as ``duplicate_keys`` (parsers disagree on which value wins).
- Nesting depth is measured by a scan of the raw bytes before the recursive parser runs, so a body of
  10,000 nested arrays costs a few microseconds and never reaches :mod:`json`'s recursion.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from garrison.core.errors import ConfigError
from garrison.gateway.ml_features import (
    DetectorVerdict,
    FeatureSpec,
    FeatureValidator,
    InputDetector,
    run_detector,
)
from garrison.gateway.schema_fast import compile_fast
from garrison.gateway.types import Denied

__all__ = [
    "MIB",
    "DetectorVerdict",
    "FeatureSpec",
    "FeatureValidator",
    "Headers",
    "InputDetector",
    "RouteValidator",
    "ValidatedRequest",
    "ValidationConfig",
    "check_body_size",
    "check_content_length",
    "check_content_type",
    "json_depth",
    "load_schema",
    "parse_json_body",
    "run_detector",
]

if TYPE_CHECKING:
    from collections.abc import Callable

    from jsonschema.protocols import Validator  # type: ignore[import-untyped]

MIB = 1024 * 1024

Headers = Mapping[str, str] | Iterable[tuple[bytes, bytes]]
"""A Starlette-style mapping with lower-case names, or ASGI's raw ``(name, value)`` byte pairs."""


class ValidationConfig(BaseModel):
    """How one route validates its requests."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    max_body_bytes: int = Field(default=MIB, ge=0, description="Largest request body, in bytes.")
    max_json_depth: int = Field(
        default=32, ge=1, le=512, description="Deepest nesting of arrays and objects."
    )
    max_json_items: int = Field(
        default=262_144, ge=1, description="Most values (numbers, strings, arrays, objects) in one body."
    )
    content_types: tuple[str, ...] = Field(
        default=("application/json",), min_length=1, description="Media types the route accepts."
    )
    json_schema: dict[str, Any] | Path | None = Field(
        default=None,
        validation_alias=AliasChoices("schema", "json_schema"),
        description="JSON Schema (Draft 2020-12) the body must match: inline, or the path of a JSON file.",
    )
    features: FeatureSpec | None = Field(default=None, description="Feature checks of an ML route.")
    detector: str | None = Field(
        default=None, description="Name of the input detector (out-of-distribution, adversarial) to run."
    )
    detector_action: Literal["deny", "flag"] = Field(
        default="deny", description="What a detector score above its threshold does."
    )


# --- body size and content type -------------------------------------------------------------------


def _header_values(headers: Headers, name: str) -> list[str]:
    if isinstance(headers, Mapping):
        value = headers.get(name)
        return [] if value is None else [value]
    raw = name.encode("latin-1")
    return [v.decode("latin-1") for k, v in headers if k.lower() == raw]


_MEDIA_PARAM_RE = re.compile(r'\s*;\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("[^"]*"|[^;\s]*)\s*')


def check_content_type(headers: Headers, allowed: Sequence[str] = ("application/json",)) -> None:
    """Refuse (415 ``unsupported_media_type``) a body whose media type is not allowed.

    Accepts ``application/json`` and ``application/json; charset=utf-8``; refuses any other charset,
    unparsable parameters, a missing header and a repeated one.
    """
    values = _header_values(headers, "content-type")
    if len(values) != 1:
        raise Denied(415, "unsupported_media_type")
    media, _, params = values[0].partition(";")
    if media.strip().lower() not in allowed:
        raise Denied(415, "unsupported_media_type")
    rest = ";" + params if params else ""
    pos = 0
    while pos < len(rest):
        match = _MEDIA_PARAM_RE.match(rest, pos)
        if match is None or match.end() == pos:
            raise Denied(415, "unsupported_media_type")
        key, value = match.group(1).lower(), match.group(2).strip('"').lower()
        if key == "charset" and value not in ("utf-8", "utf8"):
            raise Denied(415, "unsupported_media_type")
        pos = match.end()


def check_content_length(headers: Headers, max_body_bytes: int) -> int | None:
    """The declared ``Content-Length``, refused early (413) when it is over the limit; ``None`` if absent."""
    values = _header_values(headers, "content-length")
    if not values:
        return None
    if len(values) != 1 or not values[0].strip().isdigit() or len(values[0].strip()) > 19:
        raise Denied(400, "bad_content_length")
    declared = int(values[0])
    check_body_size(declared, max_body_bytes)
    return declared


def check_body_size(size: int, max_body_bytes: int) -> None:
    """Refuse (413 ``body_too_large``) a body, or the part of it read so far, over the limit."""
    if size > max_body_bytes:
        raise Denied(413, "body_too_large")


# --- JSON parsing -----------------------------------------------------------------------------------

_STRING_RE = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_NOT_ITEM_MARKS = bytes(b for b in range(256) if b not in b"[{,")
_BRACKET_STEP = np.zeros(256, dtype=np.int8)
_BRACKET_STEP[list(b"[{")] = 1
_BRACKET_STEP[list(b"]}")] = -1
_SURROGATE_ESCAPE_RE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE_RE = re.compile("[\ud800-\udfff]")
# Only a number with a three-digit exponent or hundreds of digits can overflow a double. Bodies without
# one (seen through a mask: digits become 0, e and E become e) parse with the C float parser and skip
# the Python check per number. The mask over-approximates (``e000`` in a text matches): that costs
# time, never correctness.
_NUMBER_MASK = bytes(
    0x30 if 0x30 <= b <= 0x39 else 0x65 if b in (0x45, 0x65) else 0x2B if b == 0x2B else 0x20
    for b in range(256)
)
_LONG_DIGIT_RUN = b"0" * 300


def _maybe_huge_number(body: bytes) -> bool:
    masked = body.translate(_NUMBER_MASK)
    return b"e000" in masked or b"e+000" in masked or _LONG_DIGIT_RUN in masked


class _DuplicateKeyError(ValueError):
    pass


class _NonFiniteError(ValueError):
    pass


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _DuplicateKeyError
    return obj


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _NonFiniteError
    return value


def _refuse_constant(_name: str) -> Any:
    raise _NonFiniteError


def json_depth(body: bytes) -> int:
    """Deepest nesting of ``[``/``{`` in ``body``, not counting brackets inside strings.

    A scan of the raw bytes, without recursion; on a body that is not valid JSON the result is still
    at least the depth a recursive parser would reach before it failed.
    """
    brackets = _STRING_RE.sub(b"", body).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    steps = _BRACKET_STEP[np.frombuffer(brackets, dtype=np.uint8)]
    return int(np.cumsum(steps, dtype=np.int64).max())


def _item_count(body: bytes) -> int:
    """How many values ``body`` holds at most (separators plus openers, strings removed)."""
    return len(_STRING_RE.sub(b"", body).translate(None, _NOT_ITEM_MARKS))


def parse_json_body(body: bytes, *, max_depth: int = 32, max_items: int = 262_144) -> Any:
    """Parse a JSON request body strictly, refusing with 400 (or 413 for too many values).

    Reasons: ``invalid_utf8``, ``invalid_json``, ``json_too_deep``, ``duplicate_keys``,
    ``json_too_many_items`` (413).
    """
    # Cheap upper bounds first: a body with few brackets and separators cannot be deep or large.
    openers = body.count(b"[") + body.count(b"{")
    if openers > max_depth and json_depth(body) > max_depth:
        raise Denied(400, "json_too_deep")
    if openers + body.count(b",") >= max_items and _item_count(body) >= max_items:
        raise Denied(413, "json_too_many_items")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Denied(400, "invalid_utf8") from None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_object,
            parse_float=_finite_float if _maybe_huge_number(body) else None,
            parse_constant=_refuse_constant,
        )
    except _DuplicateKeyError:
        raise Denied(400, "duplicate_keys") from None
    except RecursionError:  # the scan above makes this unreachable; kept as a second wall
        raise Denied(400, "json_too_deep") from None
    except (ValueError, OverflowError):  # JSONDecodeError, NaN, 1e999, ints over 4,300 digits
        raise Denied(400, "invalid_json") from None
    if _SURROGATE_ESCAPE_RE.search(text) and _has_lone_surrogate(value):
        raise Denied(400, "invalid_utf8")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _LONE_SURROGATE_RE.search(item):
                return True
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
    return False


# --- schema -----------------------------------------------------------------------------------------

_SAFE_SEGMENT_RE = re.compile(r"[A-Za-z0-9_.$@-]{1,64}")


def _pointer(path: Iterable[str | int]) -> str:
    """RFC 6901 pointer of a violation; keys a caller chose that look odd are shown as ``*``."""
    parts = []
    for seg in path:
        text = str(seg)
        parts.append(text.replace("~", "~0").replace("/", "~1") if _SAFE_SEGMENT_RE.fullmatch(text) else "*")
    return "/" + "/".join(parts) if parts else ""


def load_schema(source: Mapping[str, Any] | Path, *, base_dir: Path | None = None) -> dict[str, Any]:
    """An inline schema as given, or the JSON schema file at ``source`` (relative to ``base_dir``)."""
    if isinstance(source, Mapping):
        return dict(source)
    path = source if source.is_absolute() or base_dir is None else base_dir / source
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the JSON schema {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"the JSON schema {path} is not valid JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"the JSON schema {path} is not a JSON object")
    return loaded


def _compile_schema(schema: dict[str, Any], where: str) -> Validator:
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
    from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]
    from referencing import Registry

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ConfigError(
            f"{where}: invalid JSON Schema at {_pointer(exc.absolute_path)}: {exc.message}"
        ) from None
    _check_refs(schema, where)
    # An empty registry: a $ref to anything outside the schema is never fetched over the network.
    return Draft202012Validator(schema, registry=Registry())


def _check_refs(schema: dict[str, Any], where: str) -> None:
    ids: set[str] = set()
    refs: list[str] = []
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, item in node.items():
                if key in ("$ref", "$dynamicRef") and isinstance(item, str):
                    refs.append(item)
                elif key in ("$id", "$anchor", "$dynamicAnchor") and isinstance(item, str):
                    ids.add(item)
                else:
                    stack.append(item)
        elif isinstance(node, list):
            stack.extend(node)
    for ref in refs:
        if not ref.startswith("#") and ref.split("#", 1)[0] not in ids:
            raise ConfigError(f"{where}: $ref {ref!r} points outside the schema; inline it or give it an $id")


class RouteValidator:
    """Everything one route checks of a request, compiled once when the gateway starts."""

    def __init__(
        self,
        config: ValidationConfig,
        *,
        detectors: Mapping[str, InputDetector] | None = None,
        base_dir: Path | None = None,
        where: str = "route",
    ) -> None:
        """``detectors`` are the input detectors by name; ``where`` names the route in config errors."""
        self.config = config
        self._schema: Validator | None = None
        self._fast: Callable[[Any], bool] | None = None
        if config.json_schema is not None:
            schema = load_schema(config.json_schema, base_dir=base_dir)
            self._schema = _compile_schema(schema, where)
            self._fast = compile_fast(schema)
        self.features = FeatureValidator(config.features) if config.features is not None else None
        self.detector: InputDetector | None = None
        if config.detector is not None:
            found = (detectors or {}).get(config.detector)
            if found is None:
                raise ConfigError(f"{where}: unknown input detector {config.detector!r}")
            if config.features is None:
                raise ConfigError(f"{where}: an input detector needs the route's features to be declared")
            self.detector = found

    def check_headers(self, headers: Headers) -> None:
        """Content type, and a declared length over the limit (before any byte is read)."""
        check_content_type(headers, self.config.content_types)
        check_content_length(headers, self.config.max_body_bytes)

    def parse(self, body: bytes) -> Any:
        """Size limit, then :func:`parse_json_body` with this route's limits."""
        check_body_size(len(body), self.config.max_body_bytes)
        return parse_json_body(
            body, max_depth=self.config.max_json_depth, max_items=self.config.max_json_items
        )

    def validate(self, parsed: Any) -> None:
        """Refuse (422 ``schema_violation``) a body that does not match the route's schema."""
        if self._schema is None or (self._fast is not None and self._fast(parsed)):
            return
        error = next(self._schema.iter_errors(parsed), None)
        if error is None:
            return
        from referencing.exceptions import Unresolvable

        if isinstance(error, Unresolvable):  # pragma: no cover - refs are checked at compile time
            raise Denied(500, "schema_unresolvable")
        keyword = str(error.validator) if _SAFE_SEGMENT_RE.fullmatch(str(error.validator)) else "?"
        where = _pointer(error.absolute_path) or "/"
        raise Denied(
            422,
            "schema_violation",
            public=f"request does not match the route's schema at {where} ({keyword})",
        )

    def check(self, headers: Headers, body: bytes) -> ValidatedRequest:
        """All of the route's checks in order; the parsed body, features and any detector flag."""
        self.check_headers(headers)
        parsed = self.parse(body)
        self.validate(parsed)
        features = self.features.extract(parsed) if self.features is not None else None
        verdict = None
        if self.detector is not None and features is not None:
            verdict = run_detector(self.detector, features)
            if verdict is not None and self.config.detector_action == "deny":
                raise Denied(422, f"input_detector:{verdict.detector}")
        return ValidatedRequest(body=parsed, features=features, detector=verdict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidatedRequest:
    """What :meth:`RouteValidator.check` learned about a request it let through."""

    body: Any
    """The parsed JSON body."""
    features: np.ndarray | None
    """The feature array of an ML route (float64), else ``None``."""
    detector: DetectorVerdict | None
    """Rows the input detector scored above its threshold, when its action is ``flag``."""
