"""Signing keys and certificates for model-signing bundles: loading, signing, checking.

ECDSA signatures use the hash that matches the curve (P-256 → SHA-256, P-384 → SHA-384, P-521 →
SHA-512), DER-encoded; Ed25519 signs the message itself. A bare public key is identified in a
bundle by :func:`key_hint`, the hex SHA-256 of its PEM SubjectPublicKeyInfo encoding, as
model-signing does. Every file read here is bounded in size, and a bad key is a
:class:`UsageError` naming the file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from garrison.core.errors import InputError, UsageError
from garrison.integrity.statement import PAYLOAD_TYPE

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes


def pae(payload: bytes, payload_type: str = PAYLOAD_TYPE) -> bytes:
    """DSSE v1 pre-authentication encoding: what the signature actually covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def key_hint(public_key: PublicKeyTypes) -> str:
    """model-signing's key identifier: hex SHA-256 of the PEM SubjectPublicKeyInfo encoding."""
    from cryptography.hazmat.primitives import serialization

    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def check_key(key: PublicKeyTypes, where: str) -> str:
    """The key's description, or :class:`UsageError` for a key type the format cannot carry."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
            raise UsageError(
                f"{where}: elliptic curve {key.curve.name} is not supported", hint="use P-256 or P-384"
            )
        return {"secp256r1": "ECDSA P-256", "secp384r1": "ECDSA P-384", "secp521r1": "ECDSA P-521"}[
            key.curve.name
        ]
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    raise UsageError(
        f"{where}: {type(key).__name__.removeprefix('_')} keys are not supported",
        hint="sign with an ECDSA P-256/P-384 key (what model-signing verifies) or Ed25519",
    )


def sign_raw(key: PrivateKeyTypes, message: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(message, ec.ECDSA(_curve_hash(key.curve.key_size)))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    raise UsageError(f"{type(key).__name__} keys are not supported")  # caught earlier by _check_key


def verify_raw(key: PublicKeyTypes, signature: bytes, message: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, message, ec.ECDSA(_curve_hash(key.curve.key_size)))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _curve_hash(bits: int) -> Any:
    from cryptography.hazmat.primitives import hashes

    return {256: hashes.SHA256(), 384: hashes.SHA384()}.get(bits, hashes.SHA512())


def _read_limited(path: Path, what: str, limit: int = 1 << 20) -> bytes:
    try:
        with path.expanduser().open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise InputError(f"{path}: a {what} larger than {limit} bytes is not plausible")
    return data


def load_private_key(path: Path, password: bytes | None = None) -> PrivateKeyTypes:
    """A PEM private key (ECDSA P-256/P-384/P-521 or Ed25519), decrypted with ``password``."""
    from cryptography.hazmat.primitives import serialization

    data = _read_limited(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password)
    except TypeError:
        raise UsageError(
            f"{path}: the private key is encrypted",
            hint="give its password in an environment variable with --password-env NAME",
        ) from None
    except ValueError as exc:
        raise UsageError(f"{path}: not a PEM private key, or a wrong password ({exc})") from None
    check_key(key.public_key(), str(path))
    return key


def load_public_key(path: Path) -> PublicKeyTypes:
    """A PEM public key, or the key of a PEM certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    data = _read_limited(path, "public key")
    try:
        key = (
            x509.load_pem_x509_certificate(data).public_key()
            if b"-----BEGIN CERTIFICATE-----" in data
            else serialization.load_pem_public_key(data)
        )
    except ValueError as exc:
        raise UsageError(f"{path}: not a PEM public key or certificate ({exc})") from None
    check_key(key, str(path))
    return key


def load_certificates(paths: Sequence[Path]) -> list[x509.Certificate]:
    """Every PEM certificate in ``paths``, in order."""
    from cryptography import x509

    certs: list[x509.Certificate] = []
    for path in paths:
        data = _read_limited(path, "certificate file", 16 << 20)
        try:
            found = x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise UsageError(f"{path}: no PEM certificate could be read ({exc})") from None
        certs.extend(found)
    return certs


__all__: Sequence[str] = [
    "check_key",
    "key_hint",
    "load_certificates",
    "load_private_key",
    "load_public_key",
    "pae",
    "sign_raw",
    "verify_raw",
]
