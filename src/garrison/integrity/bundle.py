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

Everything read from a bundle is untrusted: its size is bounded, every field is type-checked and
a malformed one is an :class:`InputError` naming the field. Nothing here touches the model files;
``garrison.integrity.signing`` ties this to manifests.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from garrison.core.errors import GarrisonError, InputError, UsageError

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
#: The pre-1.0 predicate; recognised only to say that it must be re-signed.
OLD_PREDICATE_TYPE = "https://model_signing/Digests/v0.1"
#: Garrison's addition to the predicate: content-defined chunk digests of dataset files. Verifiers
#: of the v1.0 predicate ignore fields they do not know, so model-signing still verifies it.
CHUNKS_FIELD = "garrison_chunks"
#: Largest signature file read (a manifest of a million files is about 150 MB of JSON; a model's is
#: a few kilobytes).
MAX_BUNDLE_BYTES = 256 << 20
_DIGEST_LENGTHS = {"sha256": 64, "blake3": 64}
_HEX_RE = re.compile(r"^[0-9a-f]+$")
_SHARD_RE = re.compile(r"^(?P<path>.+):(?P<start>\d+):(?P<end>\d+)$")


class SignatureError(GarrisonError):
    """The signature does not verify: wrong key, untrusted certificate, altered payload."""

    exit_code = 1


# ---------------------------------------------------------------- statement


@dataclass(frozen=True, slots=True, kw_only=True)
class Resource:
    """One signed digest: a file (``files``) or a byte range of one (``shards``)."""

    name: str
    """The resource name as signed: a POSIX path, ``path:start:end``, or ``.`` for a single file."""
    algorithm: str
    """``sha256`` or ``blake3``."""
    digest: str
    """Lower-case hex digest."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Statement:
    """The signed content of a bundle, checked for shape and self-consistency."""

    name: str
    """The subject's name (the model directory's name when it was signed)."""
    root_digest: str
    """The subject's SHA-256 over all resource digests."""
    serialization: Mapping[str, Any]
    """The predicate's ``serialization`` block, as signed."""
    resources: tuple[Resource, ...]
    """Every signed digest, in signed order."""
    chunks: Mapping[str, Any]
    """Garrison's dataset chunk indexes by file path (empty when there are none)."""

    @property
    def method(self) -> str:
        """``files`` or ``shards``."""
        return str(self.serialization["method"])

    @property
    def hash_type(self) -> str:
        """The hash algorithm of every resource."""
        return str(self.serialization["hash_type"])

    @property
    def shard_size(self) -> int | None:
        """The shard size in bytes (shards only)."""
        value = self.serialization.get("shard_size")
        return None if value is None else int(value)

    @property
    def allow_symlinks(self) -> bool:
        """Whether links inside the tree were hashed under their own names."""
        return bool(self.serialization.get("allow_symlinks", False))

    @property
    def ignore_paths(self) -> tuple[str, ...]:
        """Paths that were left out when it was signed."""
        return tuple(str(p) for p in self.serialization.get("ignore_paths", ()))


def statement_payload(
    *,
    name: str,
    serialization: Mapping[str, Any],
    resources: Sequence[Mapping[str, str]],
    chunks: Mapping[str, Any] | None = None,
) -> bytes:
    """The in-toto statement for a manifest, as the exact bytes that get signed."""
    root = hashlib.sha256()
    for r in resources:
        root.update(bytes.fromhex(r["digest"]))
    predicate: dict[str, Any] = {"serialization": dict(serialization), "resources": list(resources)}
    if chunks:
        predicate[CHUNKS_FIELD] = dict(chunks)
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name, "digest": {"sha256": root.hexdigest()}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _field(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise InputError(f"{where} is not a JSON object")
    if key not in data:
        raise InputError(f"{where}.{key} is missing")
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        names = "/".join(k.__name__ for k in _as_tuple(kind))
        raise InputError(f"{where}.{key} must be {names}, got {type(value).__name__}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _check_name(name: str, where: str) -> None:
    path = name
    match = _SHARD_RE.match(name)
    if match:
        path = match["path"]
        if int(match["start"]) > int(match["end"]):
            raise InputError(f"{where}: shard {name!r} ends before it starts")
    parts = path.split("/")
    if path != "." and (
        path.startswith("/") or "\\" in path or "\x00" in path or any(p in ("", ".", "..") for p in parts)
    ):
        raise InputError(f"{where}: resource name {name!r} is not a relative path inside the model")


def _parse_serialization(serialization: Mapping[str, Any]) -> dict[str, Any]:
    method = _field(serialization, "method", str, "predicate.serialization")
    hash_type = _field(serialization, "hash_type", str, "predicate.serialization")
    if method not in ("files", "shards"):
        raise InputError(f"predicate.serialization.method {method!r} is not 'files' or 'shards'")
    if hash_type not in _DIGEST_LENGTHS:
        raise InputError(f"predicate.serialization.hash_type {hash_type!r} is not sha256 or blake3")
    if method == "shards":
        size = _field(serialization, "shard_size", int, "predicate.serialization")
        if size <= 0:
            raise InputError(f"predicate.serialization.shard_size must be positive, got {size}")
    if not isinstance(serialization.get("allow_symlinks", False), bool):
        raise InputError("predicate.serialization.allow_symlinks must be true or false")
    ignore = serialization.get("ignore_paths", [])
    if not isinstance(ignore, list) or not all(isinstance(p, str) for p in ignore):
        raise InputError("predicate.serialization.ignore_paths must be a list of strings")
    return dict(serialization)


def _parse_resources(raw_resources: list[Any], serialization: Mapping[str, Any]) -> list[Resource]:
    hash_type = serialization["hash_type"]
    expected = hash_type
    if serialization["method"] == "shards":
        expected = f"{hash_type}-sharded-{serialization['shard_size']}"
    resources: list[Resource] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_resources):
        where = f"predicate.resources[{i}]"
        name = _field(raw, "name", str, where)
        algorithm = _field(raw, "algorithm", str, where)
        value = _field(raw, "digest", str, where)
        if algorithm != expected:
            raise InputError(
                f"{where}: algorithm {algorithm!r} is not {expected!r}, as the serialization says"
            )
        if len(value) != _DIGEST_LENGTHS[hash_type] or not _HEX_RE.match(value):
            raise InputError(f"{where}: digest is not a lower-case hex {hash_type} digest")
        _check_name(name, where)
        if name in seen:
            raise InputError(f"{where}: resource {name!r} is listed twice")
        seen.add(name)
        resources.append(Resource(name=name, algorithm=algorithm, digest=value))
    return resources


def parse_statement(payload: bytes) -> Statement:
    """Check and decode an in-toto statement of the model-signing v1.0 predicate."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"signed payload is not JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise InputError("signed payload is not a JSON object")
    if data.get("_type") != STATEMENT_TYPE:
        raise InputError(f"signed payload is not an in-toto v1 statement (_type {data.get('_type')!r})")
    predicate_type = data.get("predicateType")
    if predicate_type == OLD_PREDICATE_TYPE:
        raise InputError(
            "the signature uses the pre-1.0 model-signing predicate, which does not record how the "
            "model was serialized",
            hint="re-sign the model with model-signing 1.x or `garrison sign`",
        )
    if predicate_type != PREDICATE_TYPE:
        raise InputError(f"unknown predicate type {predicate_type!r}", hint=f"expected {PREDICATE_TYPE}")
    subjects = _field(data, "subject", list, "statement")
    if len(subjects) != 1:
        raise InputError(f"statement.subject must hold one subject, found {len(subjects)}")
    subject = subjects[0]
    name = _field(subject, "name", str, "statement.subject[0]")
    digest = _field(
        _field(subject, "digest", Mapping, "statement.subject[0]"), "sha256", str, "subject.digest"
    )
    predicate = _field(data, "predicate", Mapping, "statement")
    serialization = _parse_serialization(_field(predicate, "serialization", Mapping, "predicate"))
    resources = _parse_resources(_field(predicate, "resources", list, "predicate"), serialization)
    root = hashlib.sha256()
    for r in resources:
        root.update(bytes.fromhex(r.digest))
    if root.hexdigest() != digest:
        raise InputError("statement is inconsistent: the subject digest does not match the listed resources")
    chunks = predicate.get(CHUNKS_FIELD, {})
    if not isinstance(chunks, Mapping):
        raise InputError(f"predicate.{CHUNKS_FIELD} must be a JSON object")
    return Statement(
        name=name,
        root_digest=digest,
        serialization=serialization,
        resources=tuple(resources),
        chunks=dict(chunks),
    )


# ---------------------------------------------------------------- keys


def pae(payload: bytes, payload_type: str = PAYLOAD_TYPE) -> bytes:
    """DSSE v1 pre-authentication encoding: what the signature actually covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def key_hint(public_key: PublicKeyTypes) -> str:
    """model-signing's key identifier: hex SHA-256 of the PEM SubjectPublicKeyInfo encoding."""
    from cryptography.hazmat.primitives import serialization

    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def _check_key(key: PublicKeyTypes, where: str) -> str:
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


def _sign_raw(key: PrivateKeyTypes, message: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(message, ec.ECDSA(_curve_hash(key.curve.key_size)))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    raise UsageError(f"{type(key).__name__} keys are not supported")  # caught earlier by _check_key


def _verify_raw(key: PublicKeyTypes, signature: bytes, message: bytes) -> bool:
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
    _check_key(key.public_key(), str(path))
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
    _check_key(key, str(path))
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
        kind = _check_key(self.key.public_key(), "key")
        if self.certificate is not None:
            return f"{kind} certificate {self.certificate.subject.rfc4514_string()}"
        return f"{kind} key sha256:{key_hint(self.key.public_key())[:16]}"

    def sign(self, payload: bytes) -> bytes:
        """A bundle (JSON bytes) carrying ``payload`` and this signer's signature over it."""
        from cryptography.hazmat.primitives import serialization

        signature = _sign_raw(self.key, pae(payload))
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
    envelope = _field(doc, "dsseEnvelope", Mapping, source)
    if envelope.get("payloadType") != PAYLOAD_TYPE:
        raise InputError(
            f"{source}: DSSE payload type {envelope.get('payloadType')!r} is not {PAYLOAD_TYPE!r}"
        )
    signatures = _field(envelope, "signatures", list, f"{source}.dsseEnvelope")
    if len(signatures) != 1:
        raise InputError(f"{source}: expected one DSSE signature, found {len(signatures)}")
    material = _field(doc, "verificationMaterial", Mapping, source)
    hint: str | None = None
    certs: tuple[bytes, ...] = ()
    if "x509CertificateChain" in material:
        chain = _field(material["x509CertificateChain"], "certificates", list, "x509CertificateChain")
        if not chain:
            raise InputError(f"{source}: the certificate chain is empty")
        certs = tuple(
            _unb64(_field(c, "rawBytes", str, f"certificates[{i}]"), f"certificates[{i}].rawBytes")
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
        kind = _check_key(self.key, "public key")
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
        if not _verify_raw(self.key, bundle.signature, pae(bundle.payload)):
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
            kind = _check_key(key, "signing certificate")
        except UsageError as exc:
            raise SignatureError(str(exc)) from None
        if not _verify_raw(key, bundle.signature, pae(bundle.payload)):
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
