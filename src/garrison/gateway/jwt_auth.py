"""Bearer JWTs: verified against a JWKS with an algorithm allowlist per key type, claims mapped to roles.

The token's header only ever chooses *which* trusted key to try; the algorithm must be in the
configured allowlist *and* suit that key's type (RSA: RS*/PS*; EC: the ES* of its curve; OKP:
EdDSA), so ``alg: none`` and HMAC signed with a public key ("key confusion") never reach a verifier.
Keys embedded in or pointed to by the token (``jwk``, ``jku``, ``x5u``) are ignored.

Verified tokens are remembered in a bounded LRU keyed by their SHA-256, never past their ``exp``.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import threading
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from jwt import exceptions as jwt_errors

from garrison.core.errors import ConfigError
from garrison.gateway.auth_config import JwtConfig
from garrison.gateway.types import Denied, Principal

#: Largest JWKS document read, from a file or a URL.
MAX_JWKS_BYTES = 1 << 20
#: Longest token considered at all.
MAX_TOKEN_CHARS = 16 * 1024

_RSA_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_CURVE_ALGS = {"P-256": frozenset({"ES256"}), "P-384": frozenset({"ES384"}), "P-521": frozenset({"ES512"})}
_OKP_CURVES = frozenset({"Ed25519", "Ed448"})


@dataclass(frozen=True, slots=True)
class TrustedKey:
    """One verification key of the JWKS and the algorithms it may verify."""

    kid: str | None
    """Its ``kid``, if the JWKS gave one."""
    algorithms: frozenset[str]
    """Algorithms allowed with it: the configured list ∩ what its type supports ∩ its own ``alg``."""
    key: Any
    """The ``cryptography`` public key."""


def parse_jwks(document: bytes, *, allowed: frozenset[str], source: str) -> dict[str | None, TrustedKey]:
    """The signing keys of a JWKS document, by ``kid``. Symmetric or private keys are configuration errors."""
    try:
        data = json.loads(document)
        entries = data["keys"]
        if not isinstance(entries, list):
            raise TypeError("'keys' is not a list")
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"the JWKS from {source} is not a JSON object with a 'keys' list ({exc})") from None
    keys: dict[str | None, TrustedKey] = {}
    for index, entry in enumerate(entries):
        where = f"key {index} of the JWKS from {source}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} is not an object")
        if entry.get("use", "sig") != "sig":
            continue
        kty = entry.get("kty")
        if kty == "oct" or "d" in entry:
            raise ConfigError(
                f"{where} is a secret (symmetric or private) key",
                hint="a JWKS for the gateway must hold public keys only",
            )
        if kty == "RSA":
            supported = _RSA_ALGS
        elif kty == "EC":
            supported = _CURVE_ALGS.get(str(entry.get("crv")), frozenset())
        elif kty == "OKP" and entry.get("crv") in _OKP_CURVES:
            supported = frozenset({"EdDSA"})
        else:
            raise ConfigError(f"{where} has an unsupported type {kty!r} / curve {entry.get('crv')!r}")
        if "alg" in entry:
            supported = supported & {str(entry["alg"])}
        usable = supported & allowed
        if not usable:
            continue
        try:
            public = jwt.PyJWK(entry, algorithm=sorted(usable)[0]).key
        except jwt_errors.PyJWTError as exc:
            raise ConfigError(f"{where} cannot be read: {exc}") from None
        kid = entry.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise ConfigError(f"{where} has a kid that is not a string")
        if kid in keys:
            raise ConfigError(f"{where} repeats kid {kid!r}")
        keys[kid] = TrustedKey(kid, usable, public)
    return keys


def _read_jwks(config: JwtConfig) -> bytes:
    if config.jwks_file is not None:
        path = Path(config.jwks_file).expanduser()
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_JWKS_BYTES + 1)
        except OSError as exc:
            raise ConfigError(f"cannot read the JWKS file {path}: {exc.strerror or exc}") from None
    else:
        url = str(config.jwks_url)
        context = ssl.create_default_context(cafile=config.jwks_ca_file)
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _NoRedirects())
        try:
            with opener.open(url, timeout=config.jwks_timeout_seconds) as response:
                data = response.read(MAX_JWKS_BYTES + 1)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot fetch the JWKS from {url}: {exc}") from None
    if len(data) > MAX_JWKS_BYTES:
        raise ConfigError(f"the JWKS is larger than {MAX_JWKS_BYTES} bytes")
    return data


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _claim(claims: Mapping[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


_FAILURES: tuple[tuple[type[Exception], str], ...] = (
    (jwt_errors.InvalidSignatureError, "jwt_bad_signature"),
    (jwt_errors.ExpiredSignatureError, "jwt_expired"),
    (jwt_errors.ImmatureSignatureError, "jwt_not_yet_valid"),
    (jwt_errors.InvalidAudienceError, "jwt_wrong_audience"),
    (jwt_errors.InvalidIssuerError, "jwt_wrong_issuer"),
    (jwt_errors.MissingRequiredClaimError, "jwt_missing_claim"),
    (jwt_errors.InvalidAlgorithmError, "jwt_alg_not_allowed"),
    (jwt_errors.DecodeError, "jwt_malformed"),
)


class JwtVerifier:
    """Verifies bearer JWTs and maps their claims to a :class:`Principal`. Raises ``ConfigError`` at
    construction when the JWKS cannot be loaded (the gateway does not start without it)."""

    def __init__(self, config: JwtConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._allowed = frozenset(config.algorithms)
        self._audience = list(config.audience)
        self._required = list(config.required_claims)
        self._role_map = {k: [v] if isinstance(v, str) else list(v) for k, v in config.role_map.items()}
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._keys = parse_jwks(_read_jwks(config), allowed=self._allowed, source=self._source)
        self._loaded_at = clock()
        self.last_error: str | None = None
        """Why the last JWKS reload failed, or ``None``."""

    @property
    def _source(self) -> str:
        return str(self._config.jwks_file or self._config.jwks_url)

    def reload(self) -> bool:
        """Read the JWKS again now; ``False`` (keeping the old keys) when that failed. Clears the cache."""
        with self._lock:
            self._loaded_at = self._clock()
            try:
                keys = parse_jwks(_read_jwks(self._config), allowed=self._allowed, source=self._source)
            except ConfigError as exc:
                self.last_error = exc.message
                return False
            self._keys = keys
            self._cache.clear()
            self.last_error = None
            return True

    def authenticate(self, token: str) -> Principal:
        """The principal of a valid token, or ``Denied(401, reason)`` with a ``jwt_*`` reason."""
        digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()
        cached = self._cache.get(digest)
        if cached is not None:
            if time.time() < cached[1]:
                self._cache.move_to_end(digest)
                return cached[0]
            self._cache.pop(digest, None)
        principal, expires = self._verify(token)
        size = self._config.cache_size
        if size and expires is not None:
            self._cache[digest] = (principal, expires)
            while len(self._cache) > size:
                self._cache.popitem(last=False)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float | None]:
        if len(token) > MAX_TOKEN_CHARS:
            raise Denied(401, "jwt_malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt_errors.PyJWTError:
            raise Denied(401, "jwt_malformed") from None
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise Denied(401, "jwt_malformed")
        if alg.lower() == "none":
            raise Denied(401, "jwt_alg_none")
        if alg.upper().startswith("HS"):
            raise Denied(401, "jwt_key_confusion")
        if alg not in self._allowed:
            raise Denied(401, "jwt_alg_not_allowed")
        if "crit" in header:  # PyJWT refuses unknown extensions; we accept none, known or not
            raise Denied(401, "jwt_unsupported_header")
        trusted = self._key_for(header.get("kid"))
        if alg not in trusted.algorithms:
            raise Denied(401, "jwt_key_confusion")
        try:
            claims = jwt.decode(
                token,
                key=trusted.key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._config.issuer,
                leeway=self._config.leeway_seconds,
                options={"require": self._required, "verify_signature": True, "strict_aud": False},
            )
        except jwt_errors.PyJWTError as exc:
            for kind, reason in _FAILURES:
                if isinstance(exc, kind):
                    raise Denied(401, reason) from None
            raise Denied(401, "jwt_invalid") from None
        return self._principal(claims)

    def _key_for(self, kid: Any) -> TrustedKey:
        if kid is not None and not isinstance(kid, str):
            raise Denied(401, "jwt_malformed")
        keys = self._keys
        if kid is None:
            if len(keys) == 1:
                return next(iter(keys.values()))
            raise Denied(401, "jwt_missing_kid")
        found = keys.get(kid)
        if found is None and self._clock() - self._loaded_at >= self._config.jwks_refresh_min_seconds:
            self.reload()
            found = self._keys.get(kid)
        if found is None:
            raise Denied(401, "jwt_unknown_kid")
        return found

    def _principal(self, claims: Mapping[str, Any]) -> tuple[Principal, float | None]:
        roles = {
            role
            for value in _strings(_claim(claims, self._config.roles_claim))
            for role in self._role_map.get(value, ())
        }
        scopes: frozenset[str] = frozenset()
        if self._config.scopes_claim:
            scopes = frozenset(_strings(_claim(claims, self._config.scopes_claim)))
        subject = claims.get("sub")
        subject = subject if isinstance(subject, str) else ""
        exp = claims.get("exp")
        expires = float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None
        principal = Principal(
            id=f"jwt:{self._config.issuer}#{subject}",
            kind="jwt",
            roles=frozenset(roles),
            scopes=scopes,
            name=subject,
        )
        return principal, expires
