"""The admin API fuzzed from its own OpenAPI document with schemathesis, against a real gateway.

The document is fetched from the running gateway (``GET /admin/openapi.json``) and every operation in
it is fuzzed with valid (positive) and schema-violating (negative) inputs, three times over:

- with an admin key: no response is a server error, every status is one the document lists for the
  operation, and every body matches the documented schema and media type for its status;
- with a key that lacks the admin role: every response is 403;
- with no key at all: every response is 401;
  in both, a path with percent-encoded dots, slashes and the like may get 400 instead: the
  request-line guard refuses it before anyone is authenticated.

Revoke and rotate are fuzzed once more on live keys (made per example), since fuzzed ids never name
one; undocumented methods get 405 with ``Allow``; out-of-range durations (which used to answer 500)
have explicit regression cases, because the fuzzer only rarely generates one.

Examples are derandomized (and no example database is kept), so a failure reproduces run after run.
The operations are listed from :func:`garrison.gateway.admin.openapi` so that each gets its own test
id; ``test_every_documented_operation_is_fuzzed`` keeps that list equal to the served document.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tests.gateway.harness import Gateway, UpstreamStub, base_config, running

from garrison.gateway.admin import openapi

pytestmark = pytest.mark.slow  # about 30 s: a gateway and some 1,000 fuzzed requests

CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
DOCUMENT = openapi("/admin")
OPERATIONS = sorted(op["operationId"] for item in DOCUMENT["paths"].values() for op in item.values())
# negative examples need something to make invalid: a path parameter or a request body
CASES = [
    pytest.param(op["operationId"], mode, id=f"{op['operationId']}-{mode.value}")
    for item in DOCUMENT["paths"].values()
    for op in item.values()
    for mode in GenerationMode
    if mode is GenerationMode.POSITIVE or "parameters" in op or "requestBody" in op
]


def fuzz(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    stub = UpstreamStub().start()
    tmp = tmp_path_factory.mktemp("admin-fuzz")
    keys = {"admin": ["admin"], "user": ["user"]}
    try:
        with running(base_config(stub.port, tmp), tmp, keys) as gateway:
            yield gateway
    finally:
        stub.stop()


@pytest.fixture(scope="module")
def operations(gw: Gateway) -> dict[str, APIOperation]:
    """The operations of the document the gateway serves, by operationId."""
    # fetched here and loaded with from_dict: from_url leaves out the operation that serves the document
    response = requests.get(f"{gw.url}/admin/openapi.json", headers=_bearer(gw.keys["admin"]), timeout=10)
    assert response.status_code == 200, response.text
    # an explicit config: no schemathesis.toml is discovered, so this test is self-contained
    schema = schemathesis.openapi.from_dict(response.json(), config=schemathesis.Config())
    schema.config.update(base_url=gw.url)
    # each pass sends its own Authorization header; schemathesis must not generate or remove it
    schema.config.generation.update(with_security_parameters=False)
    found = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        found[schema.get_operation_id(operation) or operation.label] = operation
    return found


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _refused_path(response: schemathesis.Response) -> bool:
    """A 400 for a path with percent-encoded dots, slashes, backslashes, NULs or percent signs: the
    request-line guard refuses those before anyone is authenticated."""
    url = str(response.request.url).lower()
    path = url.split("//", 1)[1].partition("/")[2]
    return response.status_code == 400 and any(t in path for t in ("%2e", "%2f", "%5c", "%00", "%25"))


def _run(operation: APIOperation, mode: GenerationMode, examples: int, body: Callable[[Case], None]) -> None:
    @fuzz(examples)
    @given(case=operation.as_strategy(mode))
    def check(case: Case) -> None:
        body(case)

    check()


def test_every_documented_operation_is_fuzzed(operations: dict[str, APIOperation]) -> None:
    assert sorted(operations) == OPERATIONS
    assert len(OPERATIONS) >= 8


@pytest.mark.parametrize(("operation_id", "mode"), CASES)
def test_admin_api_conforms_to_its_document_for_an_admin(
    operations: dict[str, APIOperation], gw: Gateway, operation_id: str, mode: GenerationMode
) -> None:
    def call(case: Case) -> None:
        case.call_and_validate(headers=_bearer(gw.keys["admin"]), checks=CONFORMANCE, timeout=10)

    _run(operations[operation_id], mode, 30, call)


@pytest.mark.parametrize(("operation_id", "mode"), CASES)
def test_admin_api_refuses_a_key_without_the_admin_role(
    operations: dict[str, APIOperation], gw: Gateway, operation_id: str, mode: GenerationMode
) -> None:
    def call(case: Case) -> None:
        response = case.call(headers=_bearer(gw.keys["user"]), timeout=10)
        assert response.status_code == 403 or _refused_path(response), (case.formatted_path, response.text)
        case.validate_response(response, checks=CONFORMANCE)

    _run(operations[operation_id], mode, 10, call)


@pytest.mark.parametrize(("operation_id", "mode"), CASES)
def test_admin_api_refuses_a_caller_without_a_key(
    operations: dict[str, APIOperation], gw: Gateway, operation_id: str, mode: GenerationMode
) -> None:
    def call(case: Case) -> None:
        response = case.call(timeout=10)
        assert response.status_code == 401 or _refused_path(response), (case.formatted_path, response.text)
        case.validate_response(response, checks=CONFORMANCE)

    _run(operations[operation_id], mode, 10, call)


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
@pytest.mark.parametrize("operation_id", ["revokeKey", "rotateKey"])
def test_revoking_and_rotating_a_live_key_conforms_for_any_body(
    operations: dict[str, APIOperation], gw: Gateway, operation_id: str, mode: GenerationMode
) -> None:
    # fuzzed ids almost never name a key: here every example acts on a key made for it
    def call(case: Case) -> None:
        made = requests.post(
            f"{gw.url}/admin/keys",
            json={"name": "fuzzed", "roles": ["user"]},
            headers=_bearer(gw.keys["admin"]),
            timeout=10,
        )
        assert made.status_code == 201, made.text
        case.path_parameters = {**(case.path_parameters or {}), "id": made.json()["id"]}
        case.call_and_validate(headers=_bearer(gw.keys["admin"]), checks=CONFORMANCE, timeout=10)

    _run(operations[operation_id], mode, 20, call)


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/admin/keys", "GET, POST"),
        ("/admin/keys/abc123/revoke", "POST"),
        ("/admin/keys/abc123/rotate", "POST"),
        ("/admin/roles", "GET"),
        ("/admin/routes", "GET"),
        ("/admin/limits", "GET"),
        ("/admin/openapi.json", "GET"),
    ],
)
def test_an_undocumented_method_gets_405_with_the_allowed_ones(gw: Gateway, path: str, allowed: str) -> None:
    documented = {m.upper() for m in DOCUMENT["paths"][path.replace("abc123", "{id}")]}
    assert ", ".join(sorted(documented)) == allowed
    for method in sorted({"GET", "POST", "PUT", "PATCH", "DELETE"} - documented):
        response = requests.request(method, gw.url + path, headers=_bearer(gw.keys["admin"]), timeout=10)
        assert response.status_code == 405, (method, path, response.text)
        assert response.headers["allow"] == allowed
        assert response.json() == {"error": {"code": 405, "message": "method not allowed"}}


@pytest.mark.parametrize("duration", ["999999w", "9999999s", "0d", "1y", "30 days"])
def test_a_lifetime_or_grace_out_of_range_is_refused_not_an_internal_error(
    gw: Gateway, duration: str
) -> None:
    # 999999w parses as a duration, but its end date overflows datetime: this used to answer 500
    admin = _bearer(gw.keys["admin"])
    created = requests.post(
        f"{gw.url}/admin/keys",
        json={"name": "long", "roles": ["user"], "expires": duration},
        headers=admin,
        timeout=10,
    )
    assert created.status_code == 422, created.text
    key_id = requests.post(
        f"{gw.url}/admin/keys", json={"name": "short", "roles": ["user"]}, headers=admin, timeout=10
    ).json()["id"]
    rotated = requests.post(
        f"{gw.url}/admin/keys/{key_id}/rotate", json={"grace": duration}, headers=admin, timeout=10
    )
    assert rotated.status_code == 422, rotated.text
