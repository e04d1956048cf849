"""``gateway.yaml``: the whole gateway configuration, read once at start and validated strictly.

Every section has its own model next to the code that uses it (auth, roles, limits, audit,
validation); this module composes them and resolves relative paths against the file's folder.
An unknown key anywhere is an error naming the file and the key's path. ``${NAME}`` in
``upstream_headers`` is replaced by the environment variable ``NAME`` (missing: an error), so
provider keys never have to be written into the file.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from garrison.core.errors import ConfigError
from garrison.gateway.audit import AuditConfig
from garrison.gateway.auth_config import AuthConfig, RolesConfig
from garrison.gateway.limits_config import LimitRule, LimitsBackendConfig, LimitsSection
from garrison.gateway.routes import RouteConfig
from garrison.gateway.tls import TlsConfig, check_mtls  # tls
from garrison.gateway.tracing import TracingConfig  # tracing

_MAX_CONFIG_BYTES = 4 * 1024 * 1024
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Strict):
    """How requests are received."""

    body_timeout_seconds: float = Field(
        default=10.0, gt=0, description="A body slower than this is refused (408)."
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=0,
        description="Default body limit; a route's validation may lower or raise it.",
    )
    tls: TlsConfig | None = Field(  # tls
        default=None, description="TLS terminated by the gateway, and client certificates it verifies."
    )


class AdminConfig(_Strict):
    """The admin API: a path prefix reachable only with the admin role."""

    prefix: str = Field(default="/admin", pattern=r"^/[a-z0-9][a-z0-9/_-]*$")
    role: str = "admin"


class MetricsConfig(_Strict):
    """Prometheus ``/metrics``."""

    enabled: bool = True
    public: bool = Field(default=True, description="Serve /metrics without authentication (scrapers).")
    multiproc_dir: Path | None = Field(
        default=None, description="Folder where worker processes share their counts (several workers)."
    )


class DetectorFile(_Strict):
    """An input detector saved by ``garrison assess detector`` (an ``.npz`` of arrays)."""

    path: Path


class GatewayConfig(_Strict):
    """The top level of gateway.yaml."""

    db: str | None = Field(default=None, description="Store for keys and the audit log (path or URL).")
    server: ServerConfig = ServerConfig()
    admin: AdminConfig = AdminConfig()
    metrics: MetricsConfig = MetricsConfig()
    auth: AuthConfig = AuthConfig()
    roles: RolesConfig = RolesConfig({})
    limits_backend: LimitsBackendConfig = LimitsBackendConfig()
    limits: tuple[LimitRule, ...] = ()
    audit: AuditConfig = AuditConfig()
    routes: tuple[RouteConfig, ...] = Field(default=(), description="What the gateway serves.")
    detectors: dict[str, DetectorFile] = Field(
        default_factory=dict, description="Input detectors by name, for routes' validation.detector."
    )
    tracing: TracingConfig = TracingConfig()  # tracing: OpenTelemetry, off by default

    @model_validator(mode="after")
    def _consistent(self) -> GatewayConfig:
        names = [route.name for route in self.routes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"route names must be unique; repeated: {duplicates}")
        paths = [route.path for route in self.routes]
        same = sorted({p for p in paths if paths.count(p) > 1})
        if same:
            raise ValueError(f"two routes share the path {same[0]!r}")
        prefix = self.admin.prefix.rstrip("/")
        clash = [p for p in paths if p == prefix or p.startswith(prefix + "/")]
        if clash:
            raise ValueError(f"route path {clash[0]!r} is under the admin prefix {prefix!r}")
        LimitsSection(limits_backend=self.limits_backend, limits=self.limits)  # unique limit names
        guarded = [r.name for r in self.routes if r.guardrails is not None and r.kind != "openai"]
        if guarded:
            raise ValueError(f"guardrails need an OpenAI-compatible route (kind: openai); not {guarded[0]!r}")
        check_mtls(self.server.tls, mtls_configured=self.auth.mtls is not None)  # tls
        return self

    def limits_section(self) -> LimitsSection:
        """The limits settings in the shape the limiter reads."""
        return LimitsSection(limits_backend=self.limits_backend, limits=self.limits)

    # -- admin: where this configuration was read from (garrison.gateway.config_store reloads it) --
    _source: tuple[Path, str] | None = PrivateAttr(default=None)

    @property
    def source(self) -> tuple[Path, str] | None:
        """The file :func:`load_gateway_config` read and the SHA-256 of its bytes; None when built in code."""
        return self._source


def load_gateway_config(path: Path) -> GatewayConfig:
    """Read, expand and validate ``path``; every problem is a :class:`ConfigError` naming it."""
    import yaml

    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read gateway config {path}: {exc.strerror or exc}") from None
    if len(raw) > _MAX_CONFIG_BYTES:
        raise ConfigError(f"gateway config {path} is larger than {_MAX_CONFIG_BYTES} bytes")
    try:
        document = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"gateway config {path} is not valid YAML: {exc}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(f"gateway config {path} must be a mapping at the top level")
    base = path.resolve().parent
    document = _resolve_paths(_expand_env(document, path), base)
    try:
        config = GatewayConfig.model_validate(document)
        config._source = (path.resolve(), hashlib.sha256(raw).hexdigest())  # admin: live reload
        return config
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(top)'}: {error['msg']}"
            for error in exc.errors()[:5]
        )
        raise ConfigError(f"gateway config {path}: {problems}") from None


def _expand_env(document: dict[str, Any], path: Path) -> dict[str, Any]:
    routes = document.get("routes")
    if not isinstance(routes, list):
        return document
    for index, route in enumerate(routes):
        headers = route.get("upstream_headers") if isinstance(route, dict) else None
        if not isinstance(headers, dict):
            continue
        for name, value in list(headers.items()):
            if not isinstance(value, str):
                continue

            def replace(match: re.Match[str], where: str = f"routes[{index}].upstream_headers.{name}") -> str:
                found = os.environ.get(match.group(1))
                if found is None:
                    raise ConfigError(
                        f"gateway config {path}: {where} needs the environment variable {match.group(1)}"
                    )
                return found

            headers[name] = _ENV_REF.sub(replace, value)
    return document


def _resolve_paths(document: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative file paths in the config are relative to the config file, not the working directory."""

    def fix(section: Any, key: str) -> None:
        if isinstance(section, dict) and isinstance(section.get(key), str) and section[key]:
            value = section[key]
            if "://" not in value and not Path(value).is_absolute():
                section[key] = str(base / value)

    fix(document, "db")
    fix(document.get("audit"), "journal_dir")
    fix(document.get("limits_backend"), "path")
    fix(document.get("metrics"), "multiproc_dir")
    server = document.get("server")  # tls: certificate files
    for key in ("cert_file", "key_file", "client_ca_file", "client_crl_file"):
        fix(server.get("tls") if isinstance(server, dict) else None, key)
    for detector in (document.get("detectors") or {}).values():
        fix(detector, "path")
    auth = document.get("auth")
    if isinstance(auth, dict):
        fix(auth.get("jwt"), "jwks_file")
    for route in document.get("routes") or ():
        if isinstance(route, dict):
            validation = route.get("validation")
            if isinstance(validation, dict) and isinstance(validation.get("schema"), str):
                fix(validation, "schema")
            fix(route.get("guardrails"), "policy")
            local = route.get("local")
            for key in ("path", "key", "signature"):
                fix(local, key)
            if isinstance(local, dict) and isinstance(local.get("certs"), list):
                local["certs"] = [c if Path(c).is_absolute() else str(base / c) for c in local["certs"]]
    return document
