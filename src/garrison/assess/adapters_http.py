"""HTTP(S) model servers as black-box models: KServe v2, plain JSON, and Garrison gateway ML routes.

:class:`HttpModel` queries a model server in batches: the KServe v2 inference protocol, or any JSON
server with configurable request and response fields — which covers the Garrison gateway's ``kserve``,
``json`` and ``local`` routes, including their output controls (labels only, top-k, rounding). Top-k
answers are read as ``[[class, p], ...]`` rows, or KServe v2 ``<name>`` scores with a
``<name>_indices`` output. Standard library only (``http.client``), keep-alive, TLS verified.
"""

from __future__ import annotations

import email.utils
import http.client
import ipaddress
import json
import math
import os
import ssl
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from garrison.assess.adapters import OutputKind
from garrison.assess.adapters_blackbox import Answer, BlackBoxModel
from garrison.core.errors import ConfigError, GarrisonError, InputError, ResourceLimitError

__all__ = ["EndpointError", "HttpModel", "QueryBudgetExceededError"]


class QueryBudgetExceededError(ResourceLimitError):
    """Answering would take more queries (input rows) than the model's ``max_queries`` allows."""


class EndpointError(GarrisonError):
    """An HTTP endpoint could not be reached, refused the request, or answered something unreadable."""

    exit_code = 3


# --- HTTP endpoints -------------------------------------------------------------------------------------

Protocol = Literal["kserve-v2", "json"]
_RETRY_STATUSES = frozenset({429, 503})
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def _public_url(parts: urllib.parse.SplitResult) -> str:
    """The URL as errors show it: no credentials, no query string."""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path or '/'}"


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HttpModel(BlackBoxModel):
    """A classifier behind an HTTP(S) endpoint, queried in batches of ``batch_size`` rows.

    ``protocol`` is ``"kserve-v2"`` (``{"inputs": [{"name", "shape", "datatype", "data"}]}`` →
    ``{"outputs": [...]}``, reading ``output_name`` or the first output) or ``"json"``
    (``{request_field: rows}`` → ``{response_field: rows}``; a bare list answer is accepted too). The
    API key is read, at each request, from the environment variable ``api_key_env`` and sent as
    ``Authorization: Bearer <key>``; it is never stored, logged or put in a message, and it is sent
    over plain HTTP only to a loopback address unless ``allow_insecure=True``. TLS certificates are
    verified (``ca_file`` adds a trust anchor). 429 and 503 answers, timeouts and dropped connections
    are retried ``retries`` times with exponential backoff from ``backoff`` seconds, waiting what a
    ``Retry-After`` asks for (an ask above ``max_wait`` is an error). :attr:`queries` counts the rows
    answered; past ``max_queries`` a request is not sent and :class:`QueryBudgetExceededError` is raised.
    """

    framework = "http"

    def __init__(
        self,
        url: str,
        *,
        protocol: Protocol = "json",
        input_name: str = "input-0",
        output_name: str | None = None,
        datatype: Literal["FP32", "FP64"] = "FP32",
        request_field: str = "instances",
        response_field: str = "predictions",
        api_key_env: str | None = None,
        headers: Mapping[str, str] | None = None,
        batch_size: int = 64,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 0.5,
        max_wait: float = 60.0,
        max_queries: int | None = None,
        max_response_bytes: int = 64 * 2**20,
        n_classes: int | None = None,
        classes: Sequence[Any] | None = None,
        output_kind: OutputKind | None = None,
        ca_file: str | os.PathLike[str] | None = None,
        verify_tls: bool = True,
        allow_insecure: bool = False,
        name: str | None = None,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"not an http(s) URL (scheme {parts.scheme!r})")
        if parts.username is not None or parts.password is not None:
            raise ConfigError(
                "the endpoint URL holds credentials",
                hint="put the key in an environment variable: api_key_env=",
            )
        if protocol not in ("kserve-v2", "json"):
            raise ConfigError(f"unknown protocol {protocol!r}", hint="use 'kserve-v2' or 'json'")
        self.url = _public_url(parts)
        if (
            api_key_env is not None
            and parts.scheme == "http"
            and not allow_insecure
            and not _is_loopback(parts.hostname)
        ):
            raise ConfigError(
                f"{self.url}: an API key would travel unencrypted",
                hint="use https, or allow_insecure=True if the network is trusted",
            )
        if max_queries is not None and max_queries < 0:
            raise ConfigError(f"max_queries must be at least 0, got {max_queries}")
        self._parts = parts
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.protocol = protocol
        self.input_name = input_name
        self.output_name = output_name
        self.datatype = datatype
        self.request_field = request_field
        self.response_field = response_field
        self.api_key_env = api_key_env
        self._headers = dict(headers or {})
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.max_queries = max_queries
        self.max_response_bytes = max_response_bytes
        self.queries = 0
        """Rows the endpoint answered."""
        self.requests = 0
        """HTTP requests sent, retries included."""
        self.retried = 0
        """Requests sent again after a 429, 503, timeout or dropped connection."""
        self._ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._ssl = ssl.create_default_context(cafile=os.fspath(ca_file) if ca_file is not None else None)
            if not verify_tls:
                self._ssl.check_hostname = False
                self._ssl.verify_mode = ssl.CERT_NONE
        self._conn: http.client.HTTPConnection | None = None
        super().__init__(
            name=name or self.url,
            batch_size=batch_size,
            output_kind=output_kind,
            n_classes=n_classes,
            classes=classes,
        )

    def __repr__(self) -> str:
        return f"HttpModel({self.url!r}, protocol={self.protocol!r}, queries={self.queries})"

    def close(self) -> None:
        """Close the kept-alive connection (a later query opens a new one)."""
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.close()
            self._conn = None

    def __enter__(self) -> HttpModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    # -- one batch --

    def _answer(self, rows: np.ndarray) -> Answer:
        n = len(rows)
        if self.max_queries is not None and self.queries + n > self.max_queries:
            raise QueryBudgetExceededError(
                f"{self.url}: {n} more queries would pass the budget of {self.max_queries} "
                f"({self.queries} used)",
                limit="max_queries",
                value=self.max_queries,
                hint="raise max_queries, or ask about fewer inputs",
            )
        values = np.asarray(rows, dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise InputError(f"{self.url}: inputs hold NaN or infinity, which JSON cannot carry")
        body = json.dumps(self._request(values), separators=(",", ":"), allow_nan=False).encode()
        answer = self._read(self._post(body), n)
        self.queries += n
        return answer

    def _request(self, values: np.ndarray) -> dict[str, Any]:
        if self.protocol == "kserve-v2":
            data = values.astype(np.float32 if self.datatype == "FP32" else np.float64).reshape(-1).tolist()
            tensor = {
                "name": self.input_name,
                "shape": list(values.shape),
                "datatype": self.datatype,
                "data": data,
            }
            return {"inputs": [tensor]}
        return {self.request_field: values.tolist()}

    def _read(self, payload: Any, n: int) -> Answer:
        if self.protocol == "kserve-v2":
            if not isinstance(payload, dict) or not isinstance(payload.get("outputs"), list):
                raise self._bad(f"has no KServe v2 outputs list (keys: {_keys(payload)})")
            return self._kserve(payload["outputs"], n)
        rows = payload
        if isinstance(payload, dict):
            if self.response_field not in payload:
                raise self._bad(f"has no {self.response_field!r} field (keys: {_keys(payload)})")
            rows = payload[self.response_field]
        return self._rows(rows, n)

    def _bad(self, what: str) -> EndpointError:
        return EndpointError(
            f"{self.url}: the answer {what}", hint=f"check protocol={self.protocol!r} and the field names"
        )

    def _rows(self, rows: Any, n: int) -> Answer:
        if not isinstance(rows, list) or len(rows) != n:
            count = len(rows) if isinstance(rows, list) else type(rows).__name__
            raise self._bad(f"has the wrong shape: {count} predictions for {n} inputs")
        if all(isinstance(r, list) and r and all(_is_pair(p) for p in r) for r in rows):
            k = len(rows[0])
            if any(len(r) != k for r in rows):
                raise self._bad("has top-k rows of different lengths")
            idx = np.asarray([[self._class_index(p[0]) for p in r] for r in rows], np.int64)
            vals = np.asarray([[p[1] for p in r] for r in rows], np.float64)
            return Answer(form="top-k", values=vals, indices=idx)
        if all(isinstance(r, str) or (isinstance(r, int) and not isinstance(r, bool)) for r in rows):
            return Answer(form="labels", values=np.asarray([self._class_index(r) for r in rows], np.int64))
        try:
            arr = np.asarray(rows, dtype=np.float64)
        except (ValueError, TypeError):
            raise self._bad("has the wrong shape: rows that are not numbers of one length") from None
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or not np.all(np.isfinite(arr)):
            raise self._bad(f"has the wrong shape: scores of shape {arr.shape}, expected ({n}, classes)")
        return Answer(form="scores", values=arr)

    def _kserve(self, outputs: list[Any], n: int) -> Answer:
        tensors = {t.get("name"): t for t in outputs if isinstance(t, dict)}
        if not tensors:
            raise self._bad("has an empty outputs list")
        name = self.output_name or next(iter(tensors))
        if name not in tensors:
            raise self._bad(f"has no output {name!r} (outputs: {sorted(map(str, tensors))[:10]})")
        main = _kserve_array(tensors[name], self._bad)
        indices = tensors.get(f"{name}_indices")
        if main.shape[:1] != (n,):
            raise self._bad(
                f"has the wrong shape: output {name!r} of shape {list(main.shape)} for {n} inputs"
            )
        if indices is not None:
            idx = _kserve_array(indices, self._bad)
            if idx.shape != main.shape or main.ndim != 2:
                raise self._bad(f"has top-k outputs of shapes {list(main.shape)} and {list(idx.shape)}")
            mapped = np.asarray(
                [[self._class_index(_plain(v)) for v in row] for row in idx.tolist()], np.int64
            )
            return Answer(form="top-k", values=main.astype(np.float64), indices=mapped)
        if main.dtype.kind in "iuUO" and main.ndim == 1:
            return Answer(
                form="labels", values=np.asarray([self._class_index(_plain(v)) for v in main.tolist()])
            )
        if main.dtype.kind != "f" or main.ndim > 2:
            raise self._bad(f"has the wrong shape: output {name!r} of shape {list(main.shape)}")
        return Answer(form="scores", values=main.reshape(n, -1).astype(np.float64))

    # -- transport --

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            host, port = self._parts.hostname or "", self._parts.port
            if self._ssl is not None:
                self._conn = http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self._ssl)
            else:
                self._conn = http.client.HTTPConnection(host, port, timeout=self.timeout)
        return self._conn

    def _send_headers(self, length: int) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json", **self._headers}
        headers["Content-Length"] = str(length)
        if self.api_key_env is not None:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise ConfigError(
                    f"{self.url}: the environment variable {self.api_key_env} (api_key_env) is not set"
                )
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _post(self, body: bytes) -> Any:
        headers = self._send_headers(len(body))
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            wait = min(self.backoff * 2**attempt, self.max_wait)
            self.requests += 1
            try:
                conn = self._connection()
                conn.request("POST", self._target, body=body, headers=headers)
                response = conn.getresponse()
                status = response.status
                data = response.read(self.max_response_bytes + 1)
                asked = _retry_after(response.getheader("Retry-After"))
            except ssl.SSLCertVerificationError as exc:
                self.close()
                raise EndpointError(
                    f"{self.url}: the TLS certificate did not verify: {exc.verify_message}"
                ) from None
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if last:
                    raise EndpointError(
                        f"{self.url}: no answer after {self.retries + 1} tries ({type(exc).__name__}: {exc})"
                    ) from None
                self.retried += 1
                time.sleep(wait)
                continue
            if response.will_close:
                self.close()
            if len(data) > self.max_response_bytes:
                self.close()
                raise EndpointError(f"{self.url}: the answer is over {self.max_response_bytes} bytes")
            if status in _RETRY_STATUSES and not last:
                if asked is not None and asked > self.max_wait:
                    raise EndpointError(
                        f"{self.url}: status {status} asks to retry after {asked:.0f} s, over max_wait "
                        f"({self.max_wait:g} s)",
                        hint="raise max_wait, or lower the request rate (smaller batch_size)",
                    )
                self.retried += 1
                time.sleep(wait if asked is None else asked)
                continue
            if not 200 <= status < 300:
                raise EndpointError(
                    f"{self.url}: status {status}: {_excerpt(data)}", hint=_status_hint(status)
                )
            try:
                return json.loads(data)
            except ValueError:
                raise EndpointError(f"{self.url}: the answer is not JSON: {_excerpt(data)}") from None
        raise AssertionError("unreachable")  # pragma: no cover


def _status_hint(status: int) -> str | None:
    return {
        401: "check the key in the environment variable named by api_key_env",
        403: "the key is not allowed on this route or model",
        404: "check the URL (KServe v2: /v2/models/<name>/infer)",
        413: "send fewer rows per request: lower batch_size",
        415: "the endpoint wants another content type",
        422: "the inputs do not have the shape, type or range the endpoint checks",
        429: "the endpoint is rate limiting: lower batch_size or raise retries",
        503: "the endpoint is overloaded or starting; raise retries",
    }.get(status)


def _excerpt(data: bytes) -> str:
    text = data[:200].decode("utf-8", "replace")
    return repr(text) + ("…" if len(data) > 200 else "")


def _keys(payload: Any) -> str:
    return ", ".join(sorted(map(str, payload))[:10]) if isinstance(payload, dict) else type(payload).__name__


def _is_pair(p: Any) -> bool:
    return (
        isinstance(p, list)
        and len(p) == 2
        and isinstance(p[0], int | str)
        and not isinstance(p[0], bool)
        and isinstance(p[1], int | float)
        and not isinstance(p[1], bool)
    )


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _kserve_array(tensor: dict[str, Any], bad: Any) -> np.ndarray:
    shape, data, datatype = tensor.get("shape"), tensor.get("data"), tensor.get("datatype")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise bad(f"has an output with shape {shape!r}")
    if not isinstance(data, list):
        raise bad(f"has an output whose data is a {type(data).__name__}")
    if datatype == "BYTES":
        flat = np.asarray(data, dtype=object).reshape(-1)
    elif isinstance(datatype, str) and datatype[:2] in ("FP", "IN", "UI", "BO"):
        try:
            flat = np.asarray(data, dtype=np.float64 if datatype.startswith("FP") else np.int64).reshape(-1)
        except (ValueError, TypeError, OverflowError):
            raise bad(f"has {datatype} data that is not numbers") from None
    else:
        raise bad(f"has an output of datatype {datatype!r}")
    if flat.size != math.prod(shape):
        raise bad(f"has the wrong shape: {flat.size} values for shape {shape}")
    return flat.reshape(shape)


# --- building one ----------------------------------------------------------------------------------------
