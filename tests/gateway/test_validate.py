"""Request validation: hostile bodies get an exact status and reason, good ones pass, fast paths agree."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from garrison.core.errors import ConfigError
from garrison.gateway.http import read_body
from garrison.gateway.schema_fast import compile_fast
from garrison.gateway.types import Denied
from garrison.gateway.validate import (
    FeatureSpec,
    FeatureValidator,
    RouteValidator,
    ValidationConfig,
    check_content_length,
    check_content_type,
    json_depth,
    parse_json_body,
    run_detector,
)

CHAT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["model", "messages"],
    "additionalProperties": False,
    "properties": {
        "model": {"type": "string", "maxLength": 128},
        "messages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["role", "content"],
                "additionalProperties": False,
                "properties": {
                    "role": {"enum": ["system", "user", "assistant"]},
                    "content": {
                        "anyOf": [{"type": "string"}, {"type": "array", "items": {"$ref": "#/$defs/part"}}]
                    },
                },
            },
        },
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "max_tokens": {"type": "integer", "minimum": 1},
        "stream": {"type": "boolean"},
    },
    "$defs": {"part": {"type": "object", "required": ["type"], "properties": {"type": {"const": "text"}}}},
}
CHAT = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France? Please answer briefly."},
    ],
    "temperature": 0.2,
    "max_tokens": 256,
}
JSON_HEADERS = [(b"content-type", b"application/json")]


def denied(call: Any, *args: Any, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(Denied) as info:
        call(*args, **kwargs)
    return info.value.status, info.value.reason


# --- hostile bodies -------------------------------------------------------------------------------

HOSTILE_BODIES = [
    ("2 MiB body", b'{"a": "' + b"x" * (2 * 1024 * 1024) + b'"}', 413, "body_too_large"),
    ("10,000 nested arrays", b"[" * 10_000 + b"]" * 10_000, 400, "json_too_deep"),
    ("10,000 nested objects", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, 400, "json_too_deep"),
    ("unclosed nesting", b"[" * 100_000, 400, "json_too_deep"),
    ("33 levels", b"[" * 33 + b"]" * 33, 400, "json_too_deep"),
    ("invalid UTF-8", b'{"a": "\xff\xfe"}', 400, "invalid_utf8"),
    ("overlong UTF-8 slash", b'{"a": "\xc0\xaf"}', 400, "invalid_utf8"),
    ("UTF-8-encoded surrogate", b'{"a": "\xed\xa0\x80"}', 400, "invalid_utf8"),
    ("escaped lone surrogate", b'{"a": "\\ud800"}', 400, "invalid_utf8"),
    ("lone surrogate in a key", b'{"\\udc00": 1}', 400, "invalid_utf8"),
    ("UTF-16 with BOM", '{"a": 1}'.encode("utf-16"), 400, "invalid_utf8"),
    ("UTF-16 without BOM", '{"a": 1}'.encode("utf-16-le"), 400, "invalid_json"),
    ("UTF-8 BOM", b'\xef\xbb\xbf{"a": 1}', 400, "invalid_json"),
    ("NaN literal", b'{"a": NaN}', 400, "invalid_json"),
    ("Infinity literal", b'{"a": Infinity}', 400, "invalid_json"),
    ("-Infinity literal", b"[-Infinity]", 400, "invalid_json"),
    ("1e999", b'{"temperature": 1e999}', 400, "invalid_json"),
    ("-1E+400", b"[-1E+400]", 400, "invalid_json"),
    ("310-digit float", b"[" + b"9" * 310 + b".5]", 400, "invalid_json"),
    ("5,000-digit integer", b"[" + b"9" * 5000 + b"]", 400, "invalid_json"),
    ("duplicate keys", b'{"role": "user", "role": "system"}', 400, "duplicate_keys"),
    ("nested duplicate keys", b'{"a": [{"x": 1, "x": 1}]}', 400, "duplicate_keys"),
    ("empty body", b"", 400, "invalid_json"),
    ("trailing garbage", b'{"a": 1} {"b": 2}', 400, "invalid_json"),
    ("single quotes", b"{'a': 1}", 400, "invalid_json"),
    ("raw control character", b'{"a": "x\x00y"}', 400, "invalid_json"),
    ("too many values", b"[" + b"0," * 300_000 + b"0]", 413, "json_too_many_items"),
]


@pytest.mark.parametrize(
    ("body", "status", "reason"), [c[1:] for c in HOSTILE_BODIES], ids=[c[0] for c in HOSTILE_BODIES]
)
def test_hostile_body_is_refused_with_exact_reason(body: bytes, status: int, reason: str) -> None:
    validator = RouteValidator(ValidationConfig(max_body_bytes=1024 * 1024))
    assert denied(validator.parse, body) == (status, reason)


def test_depth_limit_is_exact() -> None:
    assert parse_json_body(b"[" * 32 + b"]" * 32, max_depth=32) is not None
    assert denied(parse_json_body, b"[" * 33 + b"]" * 33, max_depth=32) == (400, "json_too_deep")


def test_brackets_inside_strings_do_not_count_toward_depth() -> None:
    body = json.dumps({"text": "[[[[{{{{" * 100 + '\\"]]]'}).encode()
    assert json_depth(body) == 1
    assert parse_json_body(body, max_depth=2)["text"].startswith("[[[[")


def test_json_depth_counts_objects_and_arrays() -> None:
    assert json_depth(b'{"a": [{"b": [1]}], "c": {}}') == 4
    assert json_depth(b"1") == 0


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


nested_json = st.recursive(
    st.none() | st.integers() | st.text(alphabet='[]{}"\\ab', max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet='[]{}"\\a', max_size=3), inner, max_size=3)
    ),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(value=nested_json)
def test_json_depth_matches_the_parsed_depth(value: Any) -> None:
    assert json_depth(json.dumps(value).encode()) == _depth(value)


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(max_size=64)
    | st.text(alphabet='[]{}":,\\0123456789eE.-+ntrufalsNIy\x00\xff', max_size=64).map(str.encode)
)
def test_arbitrary_bytes_parse_or_are_denied(body: bytes) -> None:
    status = 0
    try:
        value = parse_json_body(body, max_depth=4, max_items=16)
    except Denied as exc:
        status = exc.status
    else:
        assert _depth(value) <= 4
    assert status in (0, 400, 413)


def test_good_bodies_parse() -> None:
    assert parse_json_body(json.dumps(CHAT).encode()) == CHAT
    assert parse_json_body('{"emoji": "\\ud83d\\ude00 é"}'.encode()) == {"emoji": "\U0001f600 é"}
    assert parse_json_body(b'{"big": 1e300, "text": "code e000 and 1e999 in words"}')["big"] == 1e300
    assert parse_json_body(b"[" + b"9" * 400 + b"]") == [int("9" * 400)]


# --- content type and length ------------------------------------------------------------------------

CONTENT_TYPES = [
    ("application/json", True),
    ("Application/JSON", True),
    ("application/json; charset=utf-8", True),
    ("application/json;charset=UTF-8", True),
    ('application/json; charset="utf-8"', True),
    # JSON is UTF-8 (RFC 8259 §8.1): another declared charset would make the gateway and the upstream
    # read the same bytes differently, so it is refused rather than ignored.
    ("application/json; charset=latin-1", False),
    ("application/json; charset=utf-16", False),
    ("application/json; charset=utf-8; charset=latin-1", False),
    ("application/json; garbage", False),
    ("text/plain", False),
    ("application/x-www-form-urlencoded", False),
    ("multipart/form-data; boundary=x", False),
    ("application/jsonp", False),
    ("", False),
]


@pytest.mark.parametrize(("value", "ok"), CONTENT_TYPES)
def test_content_type_policy(value: str, ok: bool) -> None:
    headers = [(b"content-type", value.encode())]
    if ok:
        check_content_type(headers)
    else:
        assert denied(check_content_type, headers) == (415, "unsupported_media_type")


def test_content_type_missing_or_repeated_is_refused() -> None:
    assert denied(check_content_type, []) == (415, "unsupported_media_type")
    twice = [(b"content-type", b"application/json"), (b"Content-Type", b"text/plain")]
    assert denied(check_content_type, twice) == (415, "unsupported_media_type")
    check_content_type({"content-type": "application/json"})


def test_content_length_checked_before_reading() -> None:
    assert check_content_length([(b"content-length", b"10")], 100) == 10
    assert check_content_length([], 100) is None
    assert denied(check_content_length, [(b"content-length", b"101")], 100) == (413, "body_too_large")
    assert denied(check_content_length, [(b"content-length", b"-1")], 100) == (400, "bad_content_length")
    assert denied(check_content_length, [(b"content-length", b"9" * 40)], 100) == (400, "bad_content_length")


def test_read_body_stops_at_the_limit() -> None:
    sent: list[int] = []

    async def receive_forever() -> dict[str, Any]:
        sent.append(1)
        return {"type": "http.request", "body": b"x" * 1000, "more_body": True}

    with pytest.raises(Denied) as info:
        asyncio.run(read_body(receive_forever, {"headers": []}, limit=10_000, timeout=10))
    assert (info.value.status, info.value.reason) == (413, "body_too_large")
    assert len(sent) == 11  # the chunk that crossed the limit was never kept

    chunks = iter(
        [{"type": "http.request", "body": b"ab", "more_body": True}, {"type": "http.request", "body": b"c"}]
    )

    async def receive() -> dict[str, Any]:
        return next(chunks)

    assert asyncio.run(read_body(receive, {"headers": []}, limit=3, timeout=10)) == b"abc"


# --- schema -----------------------------------------------------------------------------------------


def chat_route(**extra: Any) -> RouteValidator:
    return RouteValidator(ValidationConfig(schema=CHAT_SCHEMA, **extra))


def test_schema_accepts_and_refuses_with_pointer_but_no_value() -> None:
    route = chat_route()
    route.validate(CHAT)
    bad = json.loads(json.dumps(CHAT))
    bad["messages"][1]["role"] = "root<script>"
    with pytest.raises(Denied) as info:
        route.validate(bad)
    assert (info.value.status, info.value.reason) == (422, "schema_violation")
    assert "/messages/1/role" in info.value.public
    assert "script" not in info.value.public


def test_schema_pointer_hides_odd_caller_keys() -> None:
    route = RouteValidator(
        ValidationConfig(schema={"type": "object", "additionalProperties": {"type": "integer"}})
    )
    with pytest.raises(Denied) as info:
        route.validate({"<img src=x>": "no"})
    assert info.value.public.endswith("at /* (type)")


def test_schema_from_file(tmp_path: Path) -> None:
    (tmp_path / "chat.json").write_text(json.dumps(CHAT_SCHEMA))
    route = RouteValidator(ValidationConfig(schema=Path("chat.json")), base_dir=tmp_path)
    route.validate(CHAT)
    assert denied(route.validate, {"model": "x"})[1] == "schema_violation"


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "no-such-type"}, "invalid JSON Schema"),
        ({"$ref": "https://example.com/schema.json"}, "points outside the schema"),
        ({"$ref": "other.json#/x"}, "points outside the schema"),
    ],
)
def test_bad_schemas_are_config_errors(schema: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RouteValidator(ValidationConfig(schema=schema))


def test_unreadable_schema_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        RouteValidator(ValidationConfig(schema=tmp_path / "missing.json"))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        RouteValidator(ValidationConfig(schema=tmp_path / "bad.json"))


def test_unknown_config_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="extra"):
        ValidationConfig.model_validate({"max_body_byte": 10})


def test_check_runs_everything_in_order() -> None:
    route = chat_route(max_body_bytes=4096)
    body = json.dumps(CHAT).encode()
    assert route.check(JSON_HEADERS, body).body == CHAT
    assert denied(route.check, [(b"content-type", b"text/plain")], body) == (415, "unsupported_media_type")
    assert denied(route.check, JSON_HEADERS, b"x" * 5000) == (413, "body_too_large")
    assert denied(route.check, JSON_HEADERS, b'{"model": 1, "messages": []}')[1] == "schema_violation"


# The fast path must never accept what jsonschema refuses. Random JSON against several schemas.

FAST_SCHEMAS = [
    CHAT_SCHEMA,
    {"type": ["integer", "null"], "minimum": -3, "exclusiveMaximum": 5},
    {"enum": [1, "a", True, None, [1, 2], {"k": 0}]},
    {"type": "array", "items": {"type": "number"}, "minItems": 1, "maxItems": 3},
    {"type": "object", "minProperties": 1, "maxProperties": 2, "additionalProperties": {"type": "string"}},
    {"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 0}]},
    {"allOf": [{"type": "string", "minLength": 2}, {"pattern": "^a"}], "maxLength": 4},
    {"const": 1.0},
    {
        "$defs": {"t": {"type": "array", "items": {"anyOf": [{"type": "integer"}, {"$ref": "#/$defs/t"}]}}},
        "$ref": "#/$defs/t",
    },
]
json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-10, 10)
    | st.floats(-10, 10, allow_nan=False)
    | st.text("ab", max_size=5)
)
json_values = st.one_of(
    json_leaves,
    st.lists(json_leaves, max_size=4),
    st.dictionaries(st.sampled_from(["a", "k"]), json_leaves, max_size=3),
    st.recursive(
        json_leaves,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["a", "k"]), inner, max_size=3)
        ),
        max_leaves=12,
    ),
)
BOUNDARY_VALUES: list[Any] = [
    None, True, False, 0, 1, 1.0, -3, -3.5, 4.999, 5, 5.0, -0.0, "a", "ab", "abcd", "abcde", "ba", [], [1],
    [1.5, 2, 3], [1, 2, 3, 4], [True], {}, {"a": "x"}, {"a": "x", "k": "y"}, {"a": 1},
    {"a": "x", "k": "y", "z": "w"},
    [1, 2], {"k": 0}, {"k": False}, [[1, [2]], 3], [[1, [2.5]]], [[True]], CHAT,
]  # fmt: skip


chat_like = st.fixed_dictionaries(
    {"model": st.one_of(st.text(max_size=3), st.integers())},
    optional={
        "messages": st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(["system", "user", "assistant", "root"])},
                optional={
                    "content": st.one_of(
                        st.text(max_size=3),
                        st.lists(st.fixed_dictionaries({"type": st.sampled_from(["text", "image"])})),
                        st.none(),
                    ),
                    "name": st.text(max_size=2),
                },
            ),
            max_size=3,
        ),
        "temperature": st.one_of(st.floats(-1, 3, allow_nan=False), st.integers(-1, 3), st.booleans()),
        "max_tokens": st.one_of(st.integers(-1, 5), st.floats(0, 5, allow_nan=False)),
        "stream": st.one_of(st.booleans(), st.integers(0, 1)),
    },
)
_VALIDATORS = {i: (compile_fast(s), Draft202012Validator(s)) for i, s in enumerate(FAST_SCHEMAS)}


@pytest.mark.parametrize("index", range(len(FAST_SCHEMAS)))
@settings(max_examples=100, deadline=None)
@given(value=json_values)
def test_fast_schema_agrees_with_jsonschema(index: int, value: Any) -> None:
    fast, slow = _VALIDATORS[index]
    assert fast is not None
    assert fast(value) == slow.is_valid(value)


@pytest.mark.parametrize("index", range(len(FAST_SCHEMAS)))
def test_fast_schema_agrees_on_boundary_values(index: int) -> None:
    fast, slow = _VALIDATORS[index]
    assert fast is not None
    verdicts = [(value, fast(value), slow.is_valid(value)) for value in BOUNDARY_VALUES]
    assert [v for v in verdicts if v[1] != v[2]] == []
    assert any(v[2] for v in verdicts) or index == 0


@settings(max_examples=200, deadline=None)
@given(value=chat_like)
def test_fast_chat_schema_agrees_with_jsonschema(value: Any) -> None:
    fast, slow = _VALIDATORS[0]
    assert fast is not None
    assert fast(value) == slow.is_valid(value)


def test_fast_path_declines_unsupported_keywords() -> None:
    assert compile_fast({"type": "object", "patternProperties": {"^x": {"type": "string"}}}) is None
    assert compile_fast({"uniqueItems": True}) is None
    assert compile_fast({"$ref": "#"}) is None
    route = RouteValidator(ValidationConfig(schema={"type": "array", "uniqueItems": True}))
    route.validate([1, 2])
    assert denied(route.validate, [1, 1])[1] == "schema_violation"


# --- features ---------------------------------------------------------------------------------------

ROW = [0.5] * 64


def ml_route(**features: Any) -> FeatureValidator:
    return FeatureValidator(FeatureSpec(**{"shape": (None, 64), **features}))


@pytest.mark.parametrize(
    "payload",
    [
        {"inputs": [ROW, ROW]},
        {"instances": [ROW, ROW]},
        {"inputs": {"x": [ROW, ROW]}},
        {"inputs": [{"name": "x", "shape": [2, 64], "datatype": "FP32", "data": ROW + ROW}]},
        {"inputs": [{"name": "x", "shape": [2, 64], "datatype": "FP64", "data": [ROW, ROW]}]},
    ],
    ids=["inputs", "instances", "named inputs", "kserve flat", "kserve nested"],
)
def test_payload_shapes_give_the_same_array(payload: Any) -> None:
    x = ml_route().extract(payload)
    assert x.dtype == np.float64
    assert x.shape == (2, 64)
    assert np.all(x == 0.5)


FEATURE_CASES = [
    ("one-dimensional", {"inputs": ROW}, {}, "feature_shape"),
    ("63 features", {"inputs": [ROW[:63]]}, {}, "feature_shape"),
    ("ragged", {"inputs": [ROW, ROW[:10]]}, {}, "feature_shape"),
    ("empty batch", {"inputs": []}, {}, "feature_shape"),
    ("strings", {"inputs": [["1"] * 64]}, {}, "feature_shape"),
    ("booleans", {"inputs": [[True] * 64]}, {}, "feature_shape"),
    ("null", {"inputs": [[*ROW[:63], None]]}, {}, "feature_shape"),
    ("huge integer", {"inputs": [[*ROW[:63], 10**30]]}, {}, "feature_shape"),
    ("not an object", [ROW], {}, "feature_shape"),
    ("no known key", {"data": [ROW]}, {}, "feature_shape"),
    ("two named inputs", {"inputs": {"a": [ROW], "b": [ROW]}}, {}, "feature_shape"),
    (
        "kserve bytes",
        {"inputs": [{"name": "x", "shape": [1, 64], "datatype": "BYTES", "data": ROW}]},
        {},
        "feature_shape",
    ),
    (
        "kserve shape lies",
        {"inputs": [{"name": "x", "shape": [2, 64], "datatype": "FP32", "data": ROW}]},
        {},
        "feature_shape",
    ),
    (
        "kserve bool dims",
        {"inputs": [{"name": "x", "shape": [True, 64], "datatype": "FP32", "data": ROW}]},
        {},
        "feature_shape",
    ),
    ("below min", {"inputs": [[*ROW[:63], -1.0]]}, {"min": 0.0}, "feature_range"),
    ("above max", {"inputs": [[*ROW[:63], 2.0]]}, {"max": 1.0}, "feature_range"),
    ("per-feature max", {"inputs": [[*ROW[:63], 0.6]]}, {"max": tuple([1.0] * 63 + [0.55])}, "feature_range"),
    ("float32 overflow", {"inputs": [[*ROW[:63], 1e39]]}, {"dtype": "float32"}, "feature_range"),
    ("int fraction", {"inputs": [[*([1] * 63), 1.5]]}, {"dtype": "int32"}, "feature_range"),
    ("NaN", {"inputs": [[*ROW[:63], float("nan")]]}, {}, "feature_not_finite"),
    ("infinity", {"inputs": [[*ROW[:63], float("inf")]]}, {}, "feature_not_finite"),
]


@pytest.mark.parametrize(
    ("payload", "spec", "reason"), [c[1:] for c in FEATURE_CASES], ids=[c[0] for c in FEATURE_CASES]
)
def test_bad_features_are_refused(payload: Any, spec: dict[str, Any], reason: str) -> None:
    assert denied(ml_route(**spec).extract, payload) == (422, reason)


def test_allow_nan_lets_nan_through_but_still_checks_range() -> None:
    route = ml_route(allow_nan=True, max=1.0)
    assert np.isnan(route.extract({"inputs": [[*ROW[:63], float("nan")]]})).sum() == 1
    assert denied(route.extract, {"inputs": [[*ROW[:63], 3.0]]})[1] == "feature_range"


def test_per_feature_bounds_need_matching_width() -> None:
    with pytest.raises(ValueError, match="per-feature"):
        FeatureSpec(shape=(None, 64), max=(1.0, 2.0))


# --- detector hook ----------------------------------------------------------------------------------


class NormDetector:
    """A real, tiny detector: the L2 norm of each row."""

    name = "norm"
    threshold = 10.0

    def score(self, x: np.ndarray) -> np.ndarray:
        return np.linalg.norm(x, axis=1)


class BrokenDetector:
    name = "broken"
    threshold = 1.0

    def score(self, x: np.ndarray) -> np.ndarray:
        return np.zeros(x.shape[0] + 1)


def test_detector_denies_or_flags() -> None:
    config = {"features": {"shape": [None, 64]}, "detector": "norm"}
    deny = RouteValidator(ValidationConfig(**config), detectors={"norm": NormDetector()})
    far = json.dumps({"inputs": [ROW, [5.0] * 64]}).encode()
    near = json.dumps({"inputs": [ROW]}).encode()
    assert deny.check(JSON_HEADERS, near).detector is None
    assert denied(deny.check, JSON_HEADERS, far) == (422, "input_detector:norm")
    flag = RouteValidator(
        ValidationConfig(**config, detector_action="flag"), detectors={"norm": NormDetector()}
    )
    verdict = flag.check(JSON_HEADERS, far).detector
    assert verdict is not None
    assert verdict.rows == (1,)
    assert verdict.max_score == pytest.approx(40.0)


def test_detector_failure_fails_closed() -> None:
    assert denied(run_detector, BrokenDetector(), np.zeros((2, 3))) == (500, "input_detector_failed")


def test_unknown_detector_is_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown input detector"):
        RouteValidator(ValidationConfig(features={"shape": [None, 64]}, detector="nope"))
