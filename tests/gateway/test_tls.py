"""TLS terminated by ``garrison gateway serve`` itself, with client certificates mapped to roles.

A throwaway CA, a server certificate and client certificates are made with ``cryptography`` at test
time; one real gateway (uvicorn, httptools, uvloop) serves the module over TLS with
``client_certs: optional`` and ``auth.mtls.required``, so the handshake admits a client without a
certificate and the authenticator refuses it, while a certificate that does not verify never gets
past the handshake.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tests.gateway.harness import UpstreamStub, _complete, _spawn, base_config, chat
from tests.http_server import free_port

from garrison.core.errors import ConfigError
from garrison.gateway.config import load_gateway_config
from garrison.gateway.tls import TlsConfig, server_context
from garrison.store import Store

_NOW = datetime.datetime.now(datetime.UTC)

SUBJECTS = {"CN=batch,O=acme": ["user"], "CN=revoked,O=acme": ["user"]}
"""Subjects the gateway maps to roles (``user`` may call the chat route, not the ML route)."""

SPOOFED = {
    "x-ssl-client-s-dn": "CN=batch,O=acme",
    "x-client-cert-subject": "CN=batch,O=acme",
    "x-forwarded-client-cert": 'Subject="CN=batch,O=acme"',
    "ssl-client-subject-dn": "CN=batch,O=acme",
}
"""Headers proxies use to pass a certificate subject on: a client sending them proves nothing."""


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    crl: Path
    clients: dict[str, tuple[Path, Path]]
    """name → (certificate, key): batch (mapped), stranger (valid, unmapped), revoked, rogue (other CA)."""


def _name(text: str) -> x509.Name:
    parts = dict(part.split("=", 1) for part in text.split(","))
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, parts["CN"])]
    if "O" in parts:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, parts["O"]))
    return x509.Name(attributes)


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
    serial: int | None = None,
) -> x509.Certificate:
    name = _name(subject)
    issuer_name, issuer_key = issuer if issuer is not None else (name, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(_NOW - datetime.timedelta(hours=1))
        .not_valid_after(_NOW + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(
    folder: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def _make_pki(folder: Path) -> Pki:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("CN=Test CA,O=acme", ca_key, None, ca=True)
    ca = (ca_cert.subject, ca_key)
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue_ca = _certificate("CN=Test CA,O=acme", rogue_key, None, ca=True)  # same name, other key
    ca_path, _ = _write(folder, "ca", ca_cert, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert, server_key_path = _write(
        folder, "server", _certificate("CN=localhost", server_key, ca, server=True), server_key
    )
    clients = {}
    for name, subject, issuer, serial in [
        ("batch", "CN=batch,O=acme", ca, None),
        ("stranger", "CN=stranger,O=acme", ca, None),
        ("revoked", "CN=revoked,O=acme", ca, 4242),
        ("rogue", "CN=batch,O=acme", (rogue_ca.subject, rogue_key), None),  # the mapped subject, forged
    ]:
        key = ec.generate_private_key(ec.SECP256R1())
        clients[name] = _write(folder, name, _certificate(subject, key, issuer, serial=serial), key)
    revoked = (
        x509.RevokedCertificateBuilder()
        .serial_number(4242)
        .revocation_date(_NOW - datetime.timedelta(minutes=5))
    ).build()
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(_NOW - datetime.timedelta(minutes=10))
        .next_update(_NOW + datetime.timedelta(days=1))
        .add_revoked_certificate(revoked)
        .sign(ca_key, hashes.SHA256())
    )
    crl_path = folder / "ca.crl"
    crl_path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return Pki(ca=ca_path, server_cert=server_cert, server_key=server_key_path, crl=crl_path, clients=clients)


def _client_context(
    pki: Pki, client: str | None, *, max_version: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if max_version is not None:
        context.maximum_version = max_version
    if client is not None:
        cert, key = pki.clients[client]
        context.load_cert_chain(cert, key)
    return context


def _exchange(port: int, context: ssl.SSLContext, data: bytes, timeout: float = 10) -> bytes:
    """Send ``data`` over TLS and return every byte of the answer."""
    chunks: list[bytes] = []
    with (
        socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as sock,
    ):
        sock.sendall(data)
        while not _complete(b"".join(chunks)):
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def _request(
    port: int,
    context: ssl.SSLContext,
    path: str,
    body: dict[str, Any] | None,
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else b""
    lines = [
        f"{'POST' if body is not None else 'GET'} {path} HTTP/1.1",
        "host: localhost",
        "connection: close",
        "content-type: application/json",
        f"content-length: {len(data)}",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    answer = _exchange(port, context, "\r\n".join(lines).encode() + b"\r\n\r\n" + data)
    head, _, rest = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), rest


def _refused_at_handshake(port: int, context: ssl.SSLContext) -> bool:
    """True when the connection ends without any HTTP answer (the request never reached the app)."""
    request = b"POST /v1/chat/completions HTTP/1.1\r\nhost: localhost\r\ncontent-length: 0\r\n\r\n"
    try:
        answer = _exchange(port, context, request, timeout=5)
    except (ssl.SSLError, ConnectionError):
        return True
    return b"HTTP/1.1" not in answer


@dataclass
class Served:
    port: int
    pki: Pki
    upstream: UpstreamStub
    db: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("tls")
    pki = _make_pki(tmp)
    upstream = UpstreamStub().start()
    config = base_config(upstream.port, tmp)
    config["server"] = {
        "tls": {
            "cert_file": "server.crt",  # relative to the config file
            "key_file": "server.key",
            "client_certs": "optional",
            "client_ca_file": "ca.crt",
            "client_crl_file": "ca.crl",
        }
    }
    config["auth"] = {"key_refresh_seconds": 0, "mtls": {"required": True, "subject_roles": SUBJECTS}}
    path = tmp / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    with open(tmp / "gateway.log", "ab") as log:
        process = _spawn(path, port, 1, log, None)
    try:
        _wait_ready(port, pki, process, tmp)
        yield Served(port=port, pki=pki, upstream=upstream, db=Path(config["db"]))
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        upstream.stop()


def _wait_ready(port: int, pki: Pki, process: Any, tmp: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited: {(tmp / 'gateway.log').read_text()[-2000:]}")
        with contextlib.suppress(OSError, IndexError, ValueError):
            if _request(port, _client_context(pki, None), "/readyz", None)[0] == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"gateway did not become ready: {(tmp / 'gateway.log').read_text()[-2000:]}")


def test_a_mapped_certificate_is_admitted_with_its_roles(served: Served) -> None:
    context = _client_context(served.pki, "batch")
    status, body = _request(served.port, context, "/v1/chat/completions", chat("hello over mtls"))
    assert status == 200, body
    assert json.loads(body)["echo"] == "hello over mtls"
    assert any(b"hello over mtls" in seen for _, seen in served.upstream.seen)
    # the role the subject maps to decides: `user` may not call the ML route
    status, _ = _request(served.port, context, "/predict", {"inputs": [[1, 2, 3, 4]]})
    assert status == 403


def test_a_verified_but_unmapped_certificate_gets_401(served: Served) -> None:
    status, body = _request(
        served.port, _client_context(served.pki, "stranger"), "/v1/chat/completions", chat()
    )
    assert status == 401
    assert json.loads(body)["error"]["message"] == "authentication required"


def test_no_certificate_gets_401_when_mtls_is_required(served: Served) -> None:
    status, _ = _request(served.port, _client_context(served.pki, None), "/v1/chat/completions", chat())
    assert status == 401


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
@pytest.mark.parametrize("client", ["rogue", "revoked"])
def test_a_certificate_that_does_not_verify_never_reaches_the_app(
    served: Served, client: str, version: ssl.TLSVersion
) -> None:
    # rogue: the mapped subject on a certificate from another CA of the same name; revoked: in the CRL
    before = len(served.upstream.seen)
    assert _refused_at_handshake(served.port, _client_context(served.pki, client, max_version=version))
    assert len(served.upstream.seen) == before
    # the same server still answers a good client afterwards
    status, _ = _request(served.port, _client_context(served.pki, "batch"), "/v1/chat/completions", chat())
    assert status == 200


def test_a_header_claiming_a_subject_is_ignored(served: Served) -> None:
    for client in (None, "stranger"):
        status, _ = _request(
            served.port, _client_context(served.pki, client), "/v1/chat/completions", chat(), SPOOFED
        )
        assert status == 401, client


def test_the_audit_event_names_the_certificate_subject(served: Served) -> None:
    _request(served.port, _client_context(served.pki, "batch"), "/v1/chat/completions", chat("audited"))
    deadline = time.monotonic() + 10
    actors: set[str] = set()
    while time.monotonic() < deadline and "mtls:CN=batch,O=acme" not in actors:
        time.sleep(0.1)
        with contextlib.closing(Store.open(f"sqlite:///{served.db}")) as store:
            actors = {r.event.actor for r in store.event_records() if r.event.type == "gateway.request"}
    assert "mtls:CN=batch,O=acme" in actors


def test_plain_http_gets_no_answer_on_the_tls_port(served: Served) -> None:
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        sock.sendall(b"GET /readyz HTTP/1.1\r\nhost: x\r\n\r\n")
        with contextlib.suppress(ConnectionError, TimeoutError):
            answer = sock.recv(65536)
            assert not answer.startswith(b"HTTP/1.1 200")


# -- configuration ----------------------------------------------------------------------------------


def test_mtls_without_client_certificate_verification_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({"auth": {"mtls": {"subject_roles": SUBJECTS}}}))
    with pytest.raises(ConfigError, match=r"auth\.mtls needs server\.tls"):
        load_gateway_config(path)
    path.write_text(
        yaml.safe_dump(
            {
                "server": {"tls": {"cert_file": "s.crt", "key_file": "s.key"}},
                "auth": {"mtls": {"subject_roles": SUBJECTS}},
            }
        )
    )
    with pytest.raises(ConfigError, match="client_certs: optional or required"):
        load_gateway_config(path)


def test_tls_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs client_ca_file"):
        TlsConfig.model_validate({"cert_file": "a", "key_file": "b", "client_certs": "required"})
    with pytest.raises(ValueError, match="need client_certs"):
        TlsConfig.model_validate({"cert_file": "a", "key_file": "b", "client_ca_file": "ca.pem"})
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump({"server": {"tls": {"cert_file": "s.crt", "key_file": "s.key"}}}))
    tls = load_gateway_config(path).server.tls
    assert tls is not None
    assert tls.cert_file == tmp_path / "s.crt"  # relative to the config file
    with pytest.raises(ConfigError, match=r"server\.tls\.cert_file/key_file: cannot load"):
        server_context(tls)


def test_the_context_verifies_clients_as_configured(tmp_path: Path) -> None:
    pki = _make_pki(tmp_path)
    cert, key = pki.server_cert, pki.server_key
    assert server_context(TlsConfig(cert_file=cert, key_file=key)).verify_mode == ssl.CERT_NONE
    required = server_context(
        TlsConfig(
            cert_file=cert, key_file=key, client_certs="required", client_ca_file=pki.ca, min_version="1.3"
        )
    )
    assert required.verify_mode == ssl.CERT_REQUIRED
    assert required.minimum_version == ssl.TLSVersion.TLSv1_3
    with pytest.raises(ConfigError, match="KEY_PASSWORD is not set"):
        server_context(TlsConfig(cert_file=cert, key_file=key, key_password_env="KEY_PASSWORD"))
