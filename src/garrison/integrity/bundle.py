"""The OpenSSF model-signing signature format: Sigstore bundle → DSSE envelope → in-toto statement.

A signature file is a Sigstore bundle (media type ``application/vnd.dev.sigstore.bundle.v0.3+json``)
in its JSON form. Its ``dsseEnvelope`` carries the base64 payload, the payload type
``application/vnd.in-toto+json`` and one signature over the DSSE pre-authentication encoding (PAE)
of the payload. The payload is an in-toto v1 statement whose predicate
(``https://model_signing/signature/v1.0``) lists a digest per file or shard (*resources*) and the
*serialization* settings that produced them; its one subject carries the SHA-256 over every
resource digest, in order.

Key material, as model-signing 1.x writes it:

- a bare public key: ``verificationMaterial.publicKey.hint`` is the hex SHA-256 of the key's PEM
  (SubjectPublicKeyInfo) encoding, so a verifier can tell "wrong key" from "bad signature";
- a certificate: ``verificationMaterial.x509CertificateChain.certificates`` lists the DER of the
  signing certificate first, then the rest of its chain.

ECDSA signatures use the hash that matches the curve (P-256 → SHA-256, P-384 → SHA-384,
P-521 → SHA-512), DER-encoded. Ed25519 is allowed by the bundle format and supported here, but
model-signing 1.1.1 itself only verifies ECDSA keys. Keyless Sigstore bundles (a Fulcio
certificate and a transparency-log entry) are recognised and refused with a clear error: checking
them needs the Sigstore trust root from the network (``docs/signing.md``).

The statement lives in :mod:`garrison.integrity.statement`, key loading and the raw signature
operations in :mod:`garrison.integrity.signing_keys`; this module is the bundle around them.
Everything read from a bundle is untrusted: its size is bounded, every field is type-checked and
a malformed one is an :class:`InputError` naming the field. Nothing here touches the model files;
``garrison.integrity.signing`` ties this to manifests.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from garrison.core.errors import GarrisonError, InputError, UsageError
from garrison.integrity.signing_keys import (
    check_key,
    key_hint,
    load_certificates,
    load_private_key,
    load_public_key,
    pae,
    sign_raw,
    verify_raw,
)
from garrison.integrity.statement import (
    CHUNKS_FIELD,
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    Resource,
    Statement,
    json_field,
    parse_statement,
    statement_payload,
)

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
#: Largest signature file read (a manifest of a million files is about 150 MB of JSON; a model's is
#: a few kilobytes).
MAX_BUNDLE_BYTES = 256 << 20


class SignatureError(GarrisonError):
    """The signature does not verify: wrong key, untrusted certificate, altered payload."""

    exit_code = 1


# ---------------------------------------------------------------- signing


@dataclass(frozen=True, slots=True)
class Signer:
    """A private key, and optionally its certificate and the chain above it."""

    key: PrivateKeyTypes
    certificate: x509.Certificate | None = None
    chain: tuple[x509.Certificate, ...] = ()

    @classmethod
    def from_files(
        cls,
        key: Path,
        *,
        certificate: Path | None = None,
        chain: Sequence[Path] = (),
        password: bytes | None = None,
    ) -> Signer:
        """Load the key (and certificate chain) from PEM files; a mismatched pair is refused."""
        private = load_private_key(key, password)
        if certificate is None:
            if chain:
                raise UsageError("--chain needs --signing-cert: a chain without a certificate has no use")
            return cls(private)
        certs = load_certificates([certificate])
        if key_hint(certs[0].public_key()) != key_hint(private.public_key()):
            raise UsageError(f"{certificate}: the certificate's public key is not the public half of {key}")
        return cls(private, certs[0], tuple(load_certificates(chain)))

    def describe(self) -> str:
        """How the signer is identified in a bundle."""
        kind = check_key(self.key.public_key(), "key")
        if self.certificate is not None:
            return f"{kind} certificate {self.certificate.subject.rfc4514_string()}"
        return f"{kind} key sha256:{key_hint(self.key.public_key())[:16]}"

    def sign(self, payload: bytes) -> bytes:
        """A bundle (JSON bytes) carrying ``payload`` and this signer's signature over it."""
        from cryptography.hazmat.primitives import serialization

        signature = sign_raw(self.key, pae(payload))
        material: dict[str, Any]
        if self.certificate is None:
            material = {"publicKey": {"hint": key_hint(self.key.public_key())}, "tlogEntries": []}
        else:
            ders = [c.public_bytes(serialization.Encoding.DER) for c in (self.certificate, *self.chain)]
            material = {
                "x509CertificateChain": {"certificates": [{"rawBytes": _b64(d)} for d in ders]},
                "tlogEntries": [],
            }
        bundle = {
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": material,
            "dsseEnvelope": {
                "payload": _b64(payload),
                "payloadType": PAYLOAD_TYPE,
                "signatures": [{"sig": _b64(signature), "keyid": ""}],
            },
        }
        return (json.dumps(bundle, indent=2) + "\n").encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise InputError(f"{where} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(f"{where} is not valid base64") from None


# ---------------------------------------------------------------- verifying


@dataclass(frozen=True, slots=True, kw_only=True)
class Bundle:
    """A parsed, not yet verified, signature file."""

    payload: bytes
    """The statement bytes the signature covers."""
    signature: bytes
    """The raw signature."""
    hint: str | None
    """The public-key hint (key-signed bundles)."""
    certificates: tuple[bytes, ...]
    """DER certificates, signing certificate first (certificate-signed bundles)."""


def read_bundle(data: bytes, *, source: str = "signature") -> Bundle:
    """Parse a model-signing bundle; :class:`InputError` names the first malformed field."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise InputError(f"{source}: larger than {MAX_BUNDLE_BYTES >> 20} MiB, not a signature file")
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{source}: not a JSON Sigstore bundle ({exc})") from None
    if not isinstance(doc, Mapping):
        raise InputError(f"{source}: not a JSON object")
    media = doc.get("mediaType")
    if media != BUNDLE_MEDIA_TYPE:
        raise InputError(f"{source}: bundle media type {media!r} is not {BUNDLE_MEDIA_TYPE!r}")
    envelope = json_field(doc, "dsseEnvelope", Mapping, source)
    if envelope.get("payloadType") != PAYLOAD_TYPE:
        raise InputError(
            f"{source}: DSSE payload type {envelope.get('payloadType')!r} is not {PAYLOAD_TYPE!r}"
        )
    signatures = json_field(envelope, "signatures", list, f"{source}.dsseEnvelope")
    if len(signatures) != 1:
        raise InputError(f"{source}: expected one DSSE signature, found {len(signatures)}")
    material = json_field(doc, "verificationMaterial", Mapping, source)
    hint: str | None = None
    certs: tuple[bytes, ...] = ()
    if "x509CertificateChain" in material:
        chain = json_field(material["x509CertificateChain"], "certificates", list, "x509CertificateChain")
        if not chain:
            raise InputError(f"{source}: the certificate chain is empty")
        certs = tuple(
            _unb64(json_field(c, "rawBytes", str, f"certificates[{i}]"), f"certificates[{i}].rawBytes")
            for i, c in enumerate(chain)
        )
    elif "certificate" in material or material.get("tlogEntries"):
        raise InputError(
            f"{source}: a keyless Sigstore signature (Fulcio certificate and transparency log)",
            hint="verify it where the Sigstore services are reachable: `model_signing verify sigstore` "
            "(see docs/signing.md)",
        )
    elif "publicKey" in material:
        public = material["publicKey"]
        raw_hint = public.get("hint") if isinstance(public, Mapping) else None
        hint = raw_hint if isinstance(raw_hint, str) and raw_hint else None
    else:
        raise InputError(f"{source}: verificationMaterial names neither a public key nor certificates")
    return Bundle(
        payload=_unb64(envelope.get("payload"), f"{source}.dsseEnvelope.payload"),
        signature=_unb64(signatures[0].get("sig") if isinstance(signatures[0], Mapping) else None, "sig"),
        hint=hint,
        certificates=certs,
    )


@dataclass(frozen=True, slots=True)
class KeyTrust:
    """Trust one public key."""

    key: PublicKeyTypes

    def check(self, bundle: Bundle) -> str:
        """The signer's description, or :class:`SignatureError`."""
        kind = check_key(self.key, "public key")
        hint = key_hint(self.key)
        if bundle.certificates:
            cert = _load_der(bundle.certificates[0])
            if key_hint(cert.public_key()) != hint:
                raise SignatureError("the signing certificate's key is not the key given with --key")
            subject = cert.subject.rfc4514_string()
        else:
            subject = ""
            if bundle.hint is not None and bundle.hint != hint:
                raise SignatureError(
                    "the signature was made with a different key "
                    f"(key hint {bundle.hint[:16]}…, given key {hint[:16]}…)"
                )
        if not verify_raw(self.key, bundle.signature, pae(bundle.payload)):
            raise SignatureError("the signature does not match the signed content: it was altered or forged")
        return f"{kind} key sha256:{hint[:16]}" + (f" ({subject})" if subject else "")


@dataclass(frozen=True, slots=True)
class CertificateTrust:
    """Trust signing certificates that chain to one of ``anchors``.

    The chain is checked as RFC 5280 path validation (``cryptography``'s verifier): names chain,
    signatures verify, issuers are CAs within their path-length limits, every certificate is valid
    at the signing time. With no transparency-log timestamp, the signing time is taken to be the
    signing certificate's ``notBefore``, as model-signing does; so an expired certificate still
    verifies old signatures, and a revoked one is not detected (no CRL or OCSP offline). The
    signing certificate must allow digital signatures (key usage) or code signing (extended key
    usage).
    """

    anchors: tuple[x509.Certificate, ...]

    def check(self, bundle: Bundle) -> str:
        """The signer's description, or :class:`SignatureError`."""
        from cryptography.x509.verification import ExtensionPolicy, PolicyBuilder, Store, VerificationError

        if not bundle.certificates:
            raise SignatureError("the signature carries a bare key, not a certificate: verify it with --key")
        leaf = _load_der(bundle.certificates[0])
        rest = [_load_der(d) for d in bundle.certificates[1:]]
        moment: datetime = leaf.not_valid_before_utc
        verifier = (
            PolicyBuilder()
            .store(Store(list(self.anchors)))
            .time(moment)
            .max_chain_depth(8)
            .extension_policies(
                ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ExtensionPolicy.permit_all()
            )
            .build_client_verifier()
        )
        try:
            verified = verifier.verify(leaf, rest)
        except VerificationError as exc:
            raise SignatureError(
                f"the signing certificate {leaf.subject.rfc4514_string()} does not chain to a trusted "
                f"certificate: {exc}"
            ) from None
        if not _can_sign(leaf):
            raise SignatureError(
                f"the certificate {leaf.subject.rfc4514_string()} is not allowed to sign "
                "(neither digitalSignature key usage nor codeSigning extended key usage)"
            )
        key = leaf.public_key()
        try:
            kind = check_key(key, "signing certificate")
        except UsageError as exc:
            raise SignatureError(str(exc)) from None
        if not verify_raw(key, bundle.signature, pae(bundle.payload)):
            raise SignatureError("the signature does not match the signed content: it was altered or forged")
        path = " → ".join(c.subject.rfc4514_string() for c in verified.chain)
        return f"{kind} certificate {path}"


def _can_sign(cert: x509.Certificate) -> bool:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    with contextlib.suppress(x509.ExtensionNotFound):
        if cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature:
            return True
    with contextlib.suppress(x509.ExtensionNotFound):
        return (
            ExtendedKeyUsageOID.CODE_SIGNING
            in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        )
    return False


def _load_der(data: bytes) -> x509.Certificate:
    from cryptography import x509

    try:
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise SignatureError(f"a certificate in the signature cannot be read: {exc}") from None


Trust = KeyTrust | CertificateTrust


def verify_bundle(bundle: Bundle, trust: Trust) -> tuple[Statement, str]:
    """Check the signature against ``trust`` and decode the statement.

    Returns the statement and a description of the signer. Raises :class:`SignatureError` when
    the signature does not verify and :class:`InputError` when the signed statement is malformed.
    """
    signer = trust.check(bundle)
    return parse_statement(bundle.payload), signer


__all__ = [
    "BUNDLE_MEDIA_TYPE",
    "CHUNKS_FIELD",
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "Bundle",
    "CertificateTrust",
    "KeyTrust",
    "Resource",
    "SignatureError",
    "Signer",
    "Statement",
    "Trust",
    "key_hint",
    "load_certificates",
    "load_private_key",
    "load_public_key",
    "pae",
    "parse_statement",
    "read_bundle",
    "statement_payload",
    "verify_bundle",
]
