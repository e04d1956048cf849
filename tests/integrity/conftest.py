"""Keys, certificates and small model trees for the signing tests."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path


def write_key(
    directory: Path, name: str, key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
) -> KeyPair:
    private = directory / f"{name}.pem"
    public = directory / f"{name}.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return KeyPair(private, public)


@pytest.fixture
def keys(tmp_path: Path) -> Callable[[str], KeyPair]:
    """``keys("p256" | "p384" | "ed25519")``: a fresh key pair as PEM files."""
    directory = tmp_path / "keys"
    directory.mkdir(exist_ok=True)

    def make(kind: str = "p256") -> KeyPair:
        key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
        if kind == "ed25519":
            key = ed25519.Ed25519PrivateKey.generate()
        else:
            key = ec.generate_private_key({"p256": ec.SECP256R1(), "p384": ec.SECP384R1()}[kind])
        return write_key(directory, f"{kind}-{os.urandom(3).hex()}", key)

    return make


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _usage(*, ca: bool, sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    can_sign: bool = True,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
        .add_extension(_usage(ca=ca, sign=not ca and can_sign), critical=True)
    )
    if not ca and can_sign:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class Pki:
    root: Path
    intermediate: Path
    leaf_cert: Path
    leaf_key: Path
    other_root: Path


def _pem(path: Path, *certs: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return path


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """Root CA → intermediate CA → code-signing leaf, plus an unrelated root."""
    d = tmp_path / "pki"
    d.mkdir()
    root_key = ec.generate_private_key(ec.SECP384R1())
    inter_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    other_key = ec.generate_private_key(ec.SECP256R1())
    root = make_cert("Test Root", root_key, "Test Root", root_key, ca=True)
    inter = make_cert("Test Intermediate", inter_key, "Test Root", root_key, ca=True)
    leaf = make_cert("Model Publisher", leaf_key, "Test Intermediate", inter_key, ca=False)
    other = make_cert("Other Root", other_key, "Other Root", other_key, ca=True)
    return Pki(
        root=_pem(d / "root.crt", root),
        intermediate=_pem(d / "intermediate.crt", inter),
        leaf_cert=_pem(d / "leaf.crt", leaf),
        leaf_key=write_key(d, "leaf", leaf_key).private,
        other_root=_pem(d / "other.crt", other),
    )


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """A small model directory: weights, config, tokenizer in a subdirectory, an empty file."""
    root = tmp_path / "model"
    (root / "tokenizer").mkdir(parents=True)
    (root / "weights.bin").write_bytes(os.urandom(200_000))
    (root / "config.json").write_text('{"layers": 2}\n')
    (root / "tokenizer" / "vocab.txt").write_text("a\nb\nc\n")
    (root / "empty").write_bytes(b"")
    return root
