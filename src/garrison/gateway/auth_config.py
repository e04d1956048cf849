"""The ``auth:`` and ``roles:`` sections of the gateway's YAML configuration (pydantic v2 models).

The gateway's full configuration composes :class:`AuthConfig` and :data:`RolesConfig`; unknown keys
are errors everywhere.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator, model_validator

#: Algorithms the gateway can verify; symmetric (HS*) and ``none`` are never accepted.
ASYMMETRIC_ALGORITHMS: frozenset[str] = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JwtConfig(_Strict):
    """Bearer JWTs verified against a JWKS."""

    jwks_file: str | None = None
    """Path of a JWKS JSON file."""
    jwks_url: str | None = None
    """``https://`` URL of a JWKS, fetched at start and again (bounded) when a token names an unknown key."""
    jwks_ca_file: str | None = None
    """CA bundle to trust for ``jwks_url`` instead of the system's."""
    jwks_refresh_min_seconds: float = Field(default=60.0, ge=0)
    """Fewest seconds between two JWKS reloads caused by unknown key ids."""
    jwks_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    """Time limit for fetching ``jwks_url``."""
    issuer: str = Field(min_length=1)
    """Required ``iss``."""
    audience: list[str] = Field(min_length=1)
    """Accepted ``aud`` values (one must match)."""
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256", "EdDSA"], min_length=1)
    """Signature algorithms accepted; each must also suit the type of the key that verifies it."""
    leeway_seconds: float = Field(default=30.0, ge=0, le=300)
    """Clock skew tolerated on ``exp``, ``nbf`` and ``iat``."""
    required_claims: list[str] = Field(default_factory=lambda: ["exp", "iss", "aud", "sub"])
    """Claims a token must carry; ``nbf`` and ``iat`` are checked whenever present."""
    roles_claim: str = "roles"
    """Claim holding the caller's groups or roles (a list or a space-separated string); dots reach inside
    objects, e.g. ``realm_access.roles``."""
    role_map: dict[str, str | list[str]] = Field(default_factory=dict)
    """Claim value → gateway role(s). Values not in the map grant nothing."""
    scopes_claim: str | None = None
    """Claim holding scopes that further restrict the token (``scope`` or ``scp``), or none."""
    cache_size: int = Field(default=10_000, ge=0, le=1_000_000)
    """Verified tokens remembered (by SHA-256), never past their ``exp``; 0 turns the cache off."""

    @model_validator(mode="after")
    def _one_source(self) -> JwtConfig:
        if (self.jwks_file is None) == (self.jwks_url is None):
            raise ValueError("set exactly one of jwks_file and jwks_url")
        if self.jwks_url is not None and not self.jwks_url.startswith("https://"):
            raise ValueError("jwks_url must be an https:// URL")
        return self

    @field_validator("audience", mode="before")
    @classmethod
    def _one_audience(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        bad = [a for a in value if a not in ASYMMETRIC_ALGORITHMS]
        if bad:
            raise ValueError(
                f"algorithms {bad} are not accepted; choose from {sorted(ASYMMETRIC_ALGORITHMS)}"
            )
        return value


class MtlsConfig(_Strict):
    """Client TLS certificates, verified by the gateway's own TLS (``server.tls``); their subjects map
    to roles. The subject comes only from the verified certificate, never from a header."""

    required: bool = False
    """Deny every request that did not present a verified client certificate."""
    subject_roles: dict[str, list[str]] = Field(default_factory=dict)
    """Certificate subject as an RFC 4514 string, most specific part first (``CN=batch,O=acme``) →
    roles, for callers authenticated by certificate."""


class AuthConfig(_Strict):
    """The ``auth:`` section."""

    api_keys: bool = True
    """Accept ``gar_`` API keys."""
    key_refresh_seconds: float = Field(default=1.0, ge=0, le=3600)
    """Most seconds a revocation or a new key takes to be seen; 0 asks the store on every request."""
    key_max_stale_seconds: float = Field(default=60.0, gt=0)
    """When the store cannot be read for this long, API keys are refused (fail closed)."""
    jwt: JwtConfig | None = None
    """Bearer JWTs; off when absent."""
    mtls: MtlsConfig | None = None
    """Client certificates; off when absent."""


class Grant(_Strict):
    """Actions allowed on routes and models (simple ``*``/``?`` globs; every list must match)."""

    routes: list[str] = Field(default_factory=lambda: ["*"])
    """Route names."""
    models: list[str] = Field(default_factory=lambda: ["*"])
    """Model names."""
    actions: list[str] = Field(min_length=1)
    """Actions, e.g. ``invoke``, ``admin``, ``keys:write``. Admin actions must be named literally."""


class RoleConfig(_Strict):
    """One role."""

    allow: list[Grant] = Field(default_factory=list)
    """What the role grants."""
    inherits: list[str] = Field(default_factory=list)
    """Roles whose grants this role also has (no cycles)."""


class RolesConfig(RootModel[dict[str, RoleConfig]]):
    """The ``roles:`` section: role name → role. Inheritance must name known roles and never loop."""

    model_config = ConfigDict(frozen=True)

    @field_validator("root")
    @classmethod
    def _names(cls, value: dict[str, RoleConfig]) -> dict[str, RoleConfig]:
        for name, role in value.items():
            if not _NAME_RE.match(name):
                raise ValueError(f"role name {name!r} must be letters, digits and _.:- (at most 64)")
            unknown = [parent for parent in role.inherits if parent not in value]
            if unknown:
                raise ValueError(f"role {name!r} inherits unknown roles {unknown}")
        _check_cycles(value)
        return value


def _check_cycles(roles: dict[str, RoleConfig]) -> None:
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = " -> ".join([*path[path.index(name) :], name])
            raise ValueError(f"roles inherit in a cycle: {cycle}")
        if name in done:
            return
        for parent in roles[name].inherits:
            visit(parent, [*path, name])
        done.add(name)

    for name in roles:
        visit(name, [])
