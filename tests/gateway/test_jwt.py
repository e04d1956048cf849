"""Bearer JWTs: valid tokens per algorithm, claim → role mapping, and forged hostile tokens."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.server
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from garrison.core.errors import ConfigError
from garrison.gateway.auth_config import AuthConfig, JwtConfig
from garrison.gateway.authn import PUBLIC_401, Authenticator
from garrison.gateway.jwt_auth import JwtVerifier
from garrison.gateway.types import Denied

ISSUER = "https://idp.example"
AUDIENCE = "garrison-gateway"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwk_of(public: Any, kid: str) -> dict[str, Any]:
    if isinstance(public, rsa.RSAPublicKey):
        data = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
    elif isinstance(public, ec.EllipticCurvePublicKey):
        data = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))
    else:
        data = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(public))
    return data | {"kid": kid, "use": "sig"}


class Keys:
    """Signing keys generated per test session, with the JWKS that trusts their public halves."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.ed = ed25519.Ed25519PrivateKey.generate()
        self.attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self, *, with_ed: bool = True) -> dict[str, Any]:
        keys = [jwk_of(self.rsa.public_key(), "rsa1"), jwk_of(self.ec.public_key(), "ec1")]
        if with_ed:
            keys.append(jwk_of(self.ed.public_key(), "ed1"))
        return {"keys": keys}

    def rsa_public_pem(self) -> bytes:
        return self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "exp": now + 600,
        "iat": now,
        "nbf": now - 5,
        "groups": ["ml-admins", "staff", "unmapped"],
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sign(
    keys: Keys, payload: dict[str, Any], *, alg: str = "RS256", kid: str = "rsa1", **headers: Any
) -> str:
    key = {"RS256": keys.rsa, "RS512": keys.rsa, "ES256": keys.ec, "EdDSA": keys.ed}[alg]
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid, **headers})


def forge(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> tuple[str, str]:
    """An unsigned token body and its full text with ``signature``."""
    body = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return body, f"{body}.{b64(signature)}"


@pytest.fixture
def jwks_file(tmp_path: Path, keys: Keys) -> Path:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(keys.jwks()))
    return path


def config(jwks_file: Path, **changes: Any) -> JwtConfig:
    base: dict[str, Any] = {
        "jwks_file": str(jwks_file),
        "issuer": ISSUER,
        "audience": [AUDIENCE],
        "roles_claim": "groups",
        "role_map": {"ml-admins": "admin", "staff": ["user", "reader"]},
        "leeway_seconds": 30,
    }
    return JwtConfig.model_validate(base | changes)


@pytest.fixture
def verifier(jwks_file: Path) -> JwtVerifier:
    return JwtVerifier(config(jwks_file))


@pytest.mark.parametrize(("alg", "kid"), [("RS256", "rsa1"), ("ES256", "ec1"), ("EdDSA", "ed1")])
def test_valid_tokens_map_groups_to_roles(keys: Keys, verifier: JwtVerifier, alg: str, kid: str) -> None:
    principal = verifier.authenticate(sign(keys, claims(), alg=alg, kid=kid))
    assert principal.id == f"jwt:{ISSUER}#alice"
    assert principal.kind == "jwt"
    assert principal.roles == {"admin", "user", "reader"}
    assert principal.name == "alice"


def test_nested_roles_claim_scopes_and_string_values(keys: Keys, jwks_file: Path) -> None:
    nested = JwtVerifier(
        config(
            jwks_file, roles_claim="realm_access.roles", role_map={"ops": "operator"}, scopes_claim="scope"
        )
    )
    token = sign(keys, claims(realm_access={"roles": "ops other"}, scope="invoke read"))
    principal = nested.authenticate(token)
    assert principal.roles == {"operator"}
    assert principal.scopes == {"invoke", "read"}
    assert nested.authenticate(sign(keys, claims(realm_access="not-an-object"))).roles == frozenset()


def test_expiry_within_leeway_is_accepted(keys: Keys, verifier: JwtVerifier) -> None:
    now = int(time.time())
    assert verifier.authenticate(sign(keys, claims(exp=now - 10, nbf=now + 10))).name == "alice"


def hostile_tokens(keys: Keys) -> list[tuple[str, str, str]]:
    """``(case, token, expected reason)`` for every forged or invalid token."""
    now = int(time.time())
    good = sign(keys, claims())
    head, payload, signature = good.split(".")
    tampered_payload = b64(json.dumps(claims(sub="root", groups=["ml-admins"])).encode())
    confusion_body, _ = forge({"alg": "HS256", "kid": "rsa1", "typ": "JWT"}, claims())
    confusion_sig = hmac.new(keys.rsa_public_pem(), confusion_body.encode(), hashlib.sha256).digest()
    ec_as_rsa_body, _ = forge({"alg": "ES256", "kid": "rsa1"}, claims())
    attacker_jwk = jwk_of(keys.attacker.public_key(), "evil")
    flipped = bytearray(base64.urlsafe_b64decode(signature + "=="))
    flipped[10] ^= 0x01
    return [
        ("alg-none", forge({"alg": "none", "kid": "rsa1"}, claims())[1], "jwt_alg_none"),
        ("alg-None", forge({"alg": "None"}, claims())[1], "jwt_alg_none"),
        ("alg-NONE-with-sig", forge({"alg": "NONE"}, claims(), b"x" * 32)[1], "jwt_alg_none"),
        ("hs256-with-rsa-public-key", f"{confusion_body}.{b64(confusion_sig)}", "jwt_key_confusion"),
        ("es256-header-on-rsa-key", f"{ec_as_rsa_body}.{b64(b'0' * 64)}", "jwt_key_confusion"),
        ("ed-key-for-rs256", sign(keys, claims(), alg="RS256", kid="ed1"), "jwt_key_confusion"),
        ("tampered-payload", f"{head}.{tampered_payload}.{signature}", "jwt_bad_signature"),
        ("tampered-signature", f"{head}.{payload}.{b64(bytes(flipped))}", "jwt_bad_signature"),
        ("stripped-signature", f"{head}.{payload}.", "jwt_bad_signature"),
        (
            "attacker-key-claims-trusted-kid",
            jwt.encode(claims(), keys.attacker, "RS256", {"kid": "rsa1"}),
            "jwt_bad_signature",
        ),
        (
            "embedded-jwk",
            jwt.encode(claims(), keys.attacker, "RS256", {"kid": "evil", "jwk": attacker_jwk}),
            "jwt_unknown_kid",
        ),
        (
            "jku-pointer",
            jwt.encode(claims(), keys.attacker, "RS256", {"kid": "x", "jku": "https://evil/jwks"}),
            "jwt_unknown_kid",
        ),
        ("wrong-audience", sign(keys, claims(aud="other-service")), "jwt_wrong_audience"),
        ("wrong-issuer", sign(keys, claims(iss="https://evil.example")), "jwt_wrong_issuer"),
        ("expired", sign(keys, claims(exp=now - 3600)), "jwt_expired"),
        ("not-yet-valid", sign(keys, claims(nbf=now + 3600)), "jwt_not_yet_valid"),
        ("issued-in-future", sign(keys, claims(iat=now + 3600, nbf=None)), "jwt_not_yet_valid"),
        ("missing-exp", sign(keys, claims(exp=None)), "jwt_missing_claim"),
        ("missing-aud", sign(keys, claims(aud=None)), "jwt_missing_claim"),
        ("missing-sub", sign(keys, claims(sub=None)), "jwt_missing_claim"),
        ("unknown-kid", sign(keys, claims(), kid="rotated-away"), "jwt_unknown_kid"),
        ("no-kid-many-keys", jwt.encode(claims(), keys.rsa, "RS256"), "jwt_missing_kid"),
        ("alg-not-allowed", sign(keys, claims(), alg="RS512"), "jwt_alg_not_allowed"),
        ("crit-unknown", sign(keys, claims(), crit=["exp"]), "jwt_malformed"),
        ("garbage", "not.a.jwt", "jwt_malformed"),
        ("bad-header-json", f"{b64(b'{')}.{payload}.{signature}", "jwt_malformed"),
        ("alg-not-a-string", forge({"alg": 1}, claims())[1], "jwt_malformed"),
        ("huge", "a" * 20000 + ".b.c", "malformed_credentials"),
    ]


def test_hostile_tokens_get_the_exact_reason_and_a_generic_401(keys: Keys, jwks_file: Path) -> None:
    authn = Authenticator(AuthConfig(api_keys=False, jwt=config(jwks_file)))
    for case, token, reason in hostile_tokens(keys):
        with pytest.raises(Denied) as caught:
            authn.authenticate([(b"authorization", f"Bearer {token}".encode())])
        failure = caught.value
        assert (failure.status, failure.reason) == (401, reason), case
        assert failure.public == PUBLIC_401
        secrets = [p for p in (token, *token.split(".")) if len(p) >= 8]
        for part in (*secrets, "rsa1", str(jwks_file)):
            assert part not in failure.public
            assert part not in str(failure)


def test_hs256_key_confusion_is_refused_even_if_hs256_were_in_the_header_allowlist(jwks_file: Path) -> None:
    with pytest.raises(ValidationError):
        config(jwks_file, algorithms=["RS256", "HS256"])
    with pytest.raises(ValidationError):
        config(jwks_file, algorithms=["none"])


def test_cached_tokens_are_not_accepted_after_exp(keys: Keys, jwks_file: Path) -> None:
    verifier = JwtVerifier(config(jwks_file, leeway_seconds=0))
    token = sign(keys, claims(exp=int(time.time()) + 2))
    first = verifier.authenticate(token)
    assert verifier.authenticate(token) is first  # served from the cache
    time.sleep(
        max(0.0, json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["exp"] - time.time()) + 0.2
    )
    with pytest.raises(Denied) as caught:
        verifier.authenticate(token)
    assert caught.value.reason == "jwt_expired"


def test_cache_is_bounded(keys: Keys, jwks_file: Path) -> None:
    verifier = JwtVerifier(config(jwks_file, cache_size=2))
    tokens = [sign(keys, claims(sub=f"user{i}")) for i in range(4)]
    for token in tokens:
        verifier.authenticate(token)
    assert len(verifier._cache) == 2
    assert [p.name for p, _ in verifier._cache.values()] == ["user2", "user3"]


def test_unknown_kid_reloads_the_jwks_at_most_once_per_interval(keys: Keys, tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(keys.jwks(with_ed=False)))
    token = sign(keys, claims(), alg="EdDSA", kid="ed1")
    slow = JwtVerifier(config(path, jwks_refresh_min_seconds=3600))
    eager = JwtVerifier(config(path, jwks_refresh_min_seconds=0))
    path.write_text(json.dumps(keys.jwks()))
    with pytest.raises(Denied) as caught:
        slow.authenticate(token)
    assert caught.value.reason == "jwt_unknown_kid"
    assert eager.authenticate(token).name == "alice"
    path.write_text("{broken")
    with pytest.raises(Denied):
        eager.authenticate(sign(keys, claims(), kid="gone"))
    assert eager.last_error is not None
    assert eager.authenticate(token).name == "alice"  # the old keys still serve


@pytest.mark.parametrize(
    ("jwks", "message"),
    [
        ({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}, "secret"),
        ({"nokeys": []}, "'keys' list"),
        ({"keys": [{"kty": "XYZ"}]}, "unsupported type"),
    ],
)
def test_bad_jwks_documents_are_configuration_errors(
    tmp_path: Path, jwks: dict[str, Any], message: str
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks))
    with pytest.raises(ConfigError, match=message):
        JwtVerifier(config(path))


def test_private_keys_in_the_jwks_are_refused(tmp_path: Path, keys: Keys) -> None:
    private = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(keys.rsa)) | {"kid": "rsa1"}
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [private]}))
    with pytest.raises(ConfigError, match="secret"):
        JwtVerifier(config(path))


def test_config_needs_exactly_one_https_source(jwks_file: Path) -> None:
    with pytest.raises(ValidationError):
        JwtConfig(issuer=ISSUER, audience=[AUDIENCE])
    with pytest.raises(ValidationError):
        JwtConfig(jwks_url="http://idp.example/jwks", issuer=ISSUER, audience=[AUDIENCE])
    with pytest.raises(ValidationError):
        config(jwks_file, jwks_url="https://idp.example/jwks")
    with pytest.raises(ValidationError):
        config(jwks_file, surprise=True)


# -- JWKS over HTTPS from a real local server ---------------------------------------------------


@pytest.fixture
def https_jwks(tmp_path: Path, keys: Keys) -> Iterator[tuple[str, Path]]:
    """A real HTTPS server on 127.0.0.1 with a self-signed certificate, serving the JWKS."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    body = json.dumps(keys.jwks()).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/jwks.json":
                self.send_response(302)
                self.send_header("Location", "http://127.0.0.1:1/jwks.json")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", cert_path
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_jwks_from_https_url_with_a_private_ca(keys: Keys, https_jwks: tuple[str, Path]) -> None:
    base, ca = https_jwks
    url_config = JwtConfig(
        jwks_url=f"{base}/jwks.json",
        jwks_ca_file=str(ca),
        issuer=ISSUER,
        audience=[AUDIENCE],
        roles_claim="groups",
        role_map={"staff": "user"},
    )
    verifier = JwtVerifier(url_config)
    assert verifier.authenticate(sign(keys, claims(), alg="ES256", kid="ec1")).roles == {"user"}
    with pytest.raises(ConfigError, match="cannot fetch"):
        JwtVerifier(url_config.model_copy(update={"jwks_ca_file": None}))  # not trusted by the system
    with pytest.raises(ConfigError, match="cannot fetch"):
        JwtVerifier(url_config.model_copy(update={"jwks_url": f"{base}/redirect"}))
