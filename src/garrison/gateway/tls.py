"""TLS terminated by the gateway itself, and the verified client certificate's subject.

``server.tls`` in gateway.yaml gives the server certificate and key and, for client certificates, a
CA bundle and whether a certificate is ``optional`` or ``required``. The TLS layer verifies a
presented certificate during the handshake: a certificate that does not chain to the CA bundle (or
is expired, or revoked in ``client_crl_file``) ends the connection before any request is read, so it
never reaches the application.

The subject of a verified certificate reaches the authenticator through the ASGI TLS extension,
``scope["extensions"]["tls"]["client_cert_name"]`` (an RFC 4514 string such as
``CN=batch,O=acme``), which :class:`TlsHttpToolsProtocol` (uvicorn's httptools protocol plus the
extension) puts into every request's scope. Only the server writes the scope: no header can claim
a subject.

Importing this module imports neither uvicorn nor ``ssl`` contexts; the protocol class is built the
first time uvicorn asks for it (module ``__getattr__``).
"""

from __future__ import annotations

import functools
import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from garrison.core.errors import ConfigError

#: ``ssl`` protocol names → the integer versions the ASGI TLS extension reports.
_TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}

#: What ``server.tls.client_certs`` means for the TLS layer.
_VERIFY_MODES = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}

#: The dotted name uvicorn imports the protocol from (a string, so worker processes can import it).
PROTOCOL = "garrison.gateway.tls:TlsHttpToolsProtocol"


class TlsConfig(BaseModel):
    """``server.tls``: TLS terminated by the gateway, and client certificates verified by it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cert_file: Path
    """The server's certificate chain (PEM, leaf first)."""
    key_file: Path
    """The server's private key (PEM)."""
    key_password_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    """Name of the environment variable holding the key's password, when the key is encrypted."""
    client_certs: Literal["none", "optional", "required"] = "none"
    """Client certificates: not asked for; verified when presented; or required by the handshake."""
    client_ca_file: Path | None = None
    """CA bundle (PEM) that client certificates must chain to; needed unless ``client_certs`` is none."""
    client_crl_file: Path | None = None
    """Certificate revocation list (PEM) of that CA; a revoked client certificate fails the handshake."""
    min_version: Literal["1.2", "1.3"] = "1.2"
    """Oldest TLS version accepted."""

    @model_validator(mode="after")
    def _consistent(self) -> TlsConfig:
        if self.client_certs != "none" and self.client_ca_file is None:
            raise ValueError(f"client_certs: {self.client_certs} needs client_ca_file (the CA bundle)")
        if self.client_certs == "none" and (self.client_ca_file or self.client_crl_file):
            raise ValueError("client_ca_file and client_crl_file need client_certs: optional or required")
        return self


def check_mtls(tls: TlsConfig | None, *, mtls_configured: bool) -> None:
    """``auth.mtls`` needs client certificates verified by the gateway's own TLS (``ValueError``).

    Without ``server.tls.client_certs`` no subject can ever reach the authenticator: no header is
    trusted to carry one.
    """
    if mtls_configured and (tls is None or tls.client_certs == "none"):
        raise ValueError(
            "auth.mtls needs server.tls with client_certs: optional or required (the gateway verifies "
            "client certificates itself; no header can carry a certificate subject)"
        )


def server_context(config: TlsConfig) -> ssl.SSLContext:
    """The server's ``SSLContext``; a file that cannot be read or used is a :class:`ConfigError`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if config.min_version == "1.3" else ssl.TLSVersion.TLSv1_2
    )
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    password: str | None = None
    if config.key_password_env is not None:
        password = os.environ.get(config.key_password_env)
        if password is None:
            raise ConfigError(f"server.tls.key_password_env: {config.key_password_env} is not set")
    where = "server.tls.cert_file/key_file"
    try:
        context.load_cert_chain(config.cert_file, config.key_file, password)
        if config.client_ca_file is not None:
            where = "server.tls.client_ca_file"
            context.load_verify_locations(cafile=config.client_ca_file)
        if config.client_crl_file is not None:
            where = "server.tls.client_crl_file"
            context.load_verify_locations(cafile=config.client_crl_file)
            context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{where}: cannot load {_reason(exc)}") from None
    context.verify_mode = _VERIFY_MODES[config.client_certs]
    context.set_alpn_protocols(["http/1.1"])
    return context


def uvicorn_context_factory(config: TlsConfig, _uvicorn_config: Any, _default: Any) -> ssl.SSLContext:
    """uvicorn's ``ssl_context_factory`` (bound to ``config`` with :func:`functools.partial`)."""
    return server_context(config)


def client_subject(scope: Mapping[str, Any]) -> str | None:
    """The verified client certificate's subject from the scope's ASGI TLS extension, or None."""
    extensions = scope.get("extensions")
    if not extensions:
        return None
    tls = extensions.get("tls")
    if not isinstance(tls, dict) or tls.get("client_cert_error") is not None:
        return None
    name = tls.get("client_cert_name")
    return name if isinstance(name, str) and name else None


def tls_extension(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> dict[str, object] | None:
    """The ASGI TLS extension for a connection (None when it is not TLS).

    A client certificate is reported only when the context verifies client certificates: then a
    certificate that is present was verified by the handshake. With verification off, whatever a
    client sent is ignored.
    """
    if ssl_object is None:
        return None
    name: str | None = None
    chain: list[str] = []
    der = ssl_object.getpeercert(binary_form=True)
    if der and ssl_object.context.verify_mode != ssl.CERT_NONE:
        from cryptography import x509

        name = x509.load_der_x509_certificate(der).subject.rfc4514_string()
        chain = [ssl.DER_cert_to_PEM_cert(der)]
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": None,
    }


def _reason(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return f"{exc.filename or ''} ({exc.strerror or exc})"


@functools.cache
def _build_protocol() -> type:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class TlsHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol that adds the ASGI TLS extension to every request's scope."""

        _garrison_tls: dict[Any, Any] | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            # on a TLS transport this runs after the handshake, so the peer certificate is known
            self._garrison_tls = tls_extension(transport.get_extra_info("ssl_object"))

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._garrison_tls is not None:
                self.scope["extensions"] = {"tls": self._garrison_tls}

    TlsHttpToolsProtocol.__module__ = __name__
    return TlsHttpToolsProtocol


def __getattr__(name: str) -> type:
    if name == "TlsHttpToolsProtocol":
        return _build_protocol()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
