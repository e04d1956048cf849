"""Authentication: who is asking, from an API key, a bearer JWT or a client certificate.

Credentials come from ``Authorization: Bearer <key or JWT>`` or ``x-api-key: <key>``. A request that
presents two different credentials, or an ``Authorization`` scheme other than Bearer, is refused.
A client certificate's subject is passed in by the caller of :meth:`Authenticator.authenticate`, from
the certificate the gateway's own TLS verified (:func:`garrison.gateway.tls.client_subject`); no
header is ever read for it.
Every refusal is ``Denied(401, reason)`` whose public text is the same generic message; the reason
(for the audit log only) never contains the credential.
"""

from __future__ import annotations

from collections.abc import Sequence

from garrison.gateway.auth_config import AuthConfig
from garrison.gateway.jwt_auth import JwtVerifier
from garrison.gateway.keys import KEY_PREFIX, KeyCache
from garrison.gateway.types import Denied, Principal
from garrison.store import Store

#: The one message every 401 shows the caller.
PUBLIC_401 = "authentication required"
#: ``WWW-Authenticate`` sent with every 401.
CHALLENGE: tuple[tuple[str, str], ...] = (("www-authenticate", 'Bearer realm="garrison"'),)
#: Longest credential header value considered.
MAX_CREDENTIAL_CHARS = 16 * 1024


def deny(reason: str, status: int = 401) -> Denied:
    """A refusal with the generic public text (and the Bearer challenge for a 401)."""
    if status == 401:
        return Denied(401, reason, public=PUBLIC_401, headers=CHALLENGE)
    return Denied(status, reason)


class Authenticator:
    """Turns a request's headers (and verified client certificate) into a :class:`Principal`."""

    def __init__(
        self,
        config: AuthConfig,
        *,
        keys: KeyCache | None = None,
        jwt: JwtVerifier | None = None,
        store: Store | None = None,
    ) -> None:
        """``keys`` and ``jwt`` are built from ``config`` (and ``store``) unless given."""
        self._config = config
        if keys is None and config.api_keys:
            if store is None:
                from garrison.core.errors import ConfigError

                raise ConfigError("auth.api_keys is on but the gateway has no store to read keys from")
            keys = KeyCache(
                store,
                refresh_seconds=config.key_refresh_seconds,
                max_stale_seconds=config.key_max_stale_seconds,
            )
        if jwt is None and config.jwt is not None:
            jwt = JwtVerifier(config.jwt)
        self.keys = keys if config.api_keys else None
        """The API key cache (``None`` when keys are off)."""
        self.jwt = jwt
        """The JWT verifier (``None`` when JWTs are off)."""
        mtls = config.mtls
        self._mtls_required = bool(mtls and mtls.required)
        self._subject_roles = {s: frozenset(r) for s, r in (mtls.subject_roles.items() if mtls else ())}

    def authenticate(
        self, headers: Sequence[tuple[bytes, bytes]], *, client_cert_subject: str | None = None
    ) -> Principal:
        """The caller of a request with these ASGI headers (lower-case names), or ``Denied``."""
        try:
            return self._authenticate(headers, client_cert_subject)
        except Denied as denied:
            if denied.status == 401:
                raise deny(denied.reason) from None
            raise

    def _authenticate(self, headers: Sequence[tuple[bytes, bytes]], subject: str | None) -> Principal:
        if self._mtls_required and not subject:
            raise Denied(401, "mtls_required")
        credential: str | None = None
        for name, value in headers:
            if name == b"authorization":
                text = _text(value)
                scheme, _, rest = text.strip().partition(" ")
                if scheme.lower() != "bearer":
                    raise Denied(401, "unsupported_scheme")
                found = rest.strip()
            elif name == b"x-api-key":
                found = _text(value).strip()
            else:
                continue
            if not found:
                raise Denied(401, "malformed_credentials")
            if credential is not None and credential != found:
                raise Denied(401, "conflicting_credentials")
            credential = found
        if credential is None:
            if subject:
                roles = self._subject_roles.get(subject)
                if roles is not None:
                    return Principal(id=f"mtls:{subject}", kind="mtls", roles=roles, name=subject)
                raise Denied(401, "unknown_certificate")
            raise Denied(401, "missing_credentials")
        if credential.startswith(KEY_PREFIX):
            if self.keys is None:
                raise Denied(401, "api_keys_disabled")
            return self.keys.authenticate(credential)
        if credential.count(".") == 2:
            if self.jwt is None:
                raise Denied(401, "jwt_disabled")
            return self.jwt.authenticate(credential)
        raise Denied(401, "malformed_credentials")


def _text(value: bytes) -> str:
    if len(value) > MAX_CREDENTIAL_CHARS:
        raise Denied(401, "malformed_credentials")
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        raise Denied(401, "malformed_credentials") from None
