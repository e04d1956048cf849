"""``verify_before_load``: the check every Garrison component makes before it loads a model.

Safe loading (:mod:`garrison.loading`) and the gateway's local models call
:func:`verify_before_load` with a :class:`SignaturePolicy`. It fails closed: with a signature
required, a missing signature, a missing trust anchor, a signature that does not verify or content
that differs is an :class:`IntegrityError`, never a warning.

Where the signature is: the policy's ``signature`` if set; otherwise ``<path>.sig`` beside the
file or directory; otherwise ``<dir>.sig`` beside the nearest enclosing directory that has one (a
file loaded from a signed model directory), looking at most :data:`MAX_LEVELS` levels up.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from garrison.core.errors import GarrisonError, UsageError

if TYPE_CHECKING:
    from garrison.core.config import Settings
    from garrison.integrity.bundle import Statement, Trust
    from garrison.integrity.signing import Verification
    from garrison.loading import SignatureVerifier

#: How many enclosing directories are searched for ``<dir>.sig``.
MAX_LEVELS = 8


class IntegrityError(GarrisonError):
    """A model or dataset failed the signature check that policy requires before loading."""

    exit_code = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class SignaturePolicy:
    """What must hold before a model is loaded."""

    require: bool = True
    """Refuse when no signature is found (else an unsigned model passes; a signed one is still checked)."""
    key: Path | None = None
    """PEM public key that signatures must verify with."""
    certs: tuple[Path, ...] = ()
    """PEM CA or signing certificates that signing certificates must chain to."""
    signature: Path | None = None
    """The signature file; ``None`` to look for one beside the path."""

    @classmethod
    def from_settings(cls, settings: Settings, *, signature: Path | None = None) -> SignaturePolicy:
        """The policy in ``garrison.toml``: ``require-signature``, ``signature-key``, ``signature-certs``."""
        return cls(
            require=settings.require_signature,
            key=settings.signature_key,
            certs=tuple(settings.signature_certs),
            signature=signature,
        )

    def trust(self) -> Trust:
        """The trust anchor, or :class:`UsageError` when none or both are configured."""
        from garrison.integrity.bundle import CertificateTrust, KeyTrust, load_certificates, load_public_key

        if (self.key is None) == (not self.certs):
            raise UsageError(
                "signature checks need exactly one trust anchor: a public key or CA certificates",
                hint="set signature-key or signature-certs in garrison.toml, or pass --key or --cert",
            )
        if self.key is not None:
            return KeyTrust(load_public_key(self.key))
        return CertificateTrust(tuple(load_certificates(self.certs)))


def find_signature(path: Path) -> tuple[Path, Path] | None:
    """``(signature, signed root)`` for ``path``: its own ``.sig``, or an enclosing directory's."""
    target = path.expanduser().absolute()
    candidates = [target, *list(target.parents)[:MAX_LEVELS]]
    for root in candidates:
        if not root.name:
            break
        sig = root.with_name(root.name + ".sig")
        if sig.is_file():
            return sig, root
    return None


def _signed_root(signature: Path, target: Path) -> Path:
    """The tree an explicitly named signature covers: the target, or the enclosing directory it names."""
    stem = signature.name.removesuffix(".sig")
    for root in [target, *list(target.parents)[:MAX_LEVELS]]:
        if root.name == stem and root.parent == signature.expanduser().absolute().parent:
            return root
    return target


def verify_before_load(
    path: Path, policy: SignaturePolicy, *, digest: str | None = None
) -> Verification | None:
    """Check ``path`` against its signature under ``policy``; raise :class:`IntegrityError` to refuse.

    ``digest`` (``sha256:<hex>`` of exactly the bytes about to be loaded, as safe loading passes
    it) binds the check to those bytes rather than to whatever the path holds now, for files
    signed with whole-file SHA-256 digests. Returns ``None`` when no signature exists and none is
    required; otherwise the :class:`~garrison.integrity.signing.Verification` that passed.
    """
    from garrison.integrity.signing import verify_path
    from garrison.integrity.verify_report import describe

    target = path.expanduser().absolute()
    if not policy.require and policy.key is None and not policy.certs and policy.signature is None:
        return None  # nothing required and nothing to check against
    if policy.signature is not None:
        found: tuple[Path, Path] | None = (policy.signature, _signed_root(policy.signature, target))
    else:
        found = find_signature(target)
    if found is None:
        if policy.require:
            raise IntegrityError(
                f"{path}: a signature is required before loading, and none was found "
                f"(looked for {target.name}.sig and .sig files of enclosing directories)",
                hint="sign it with `garrison sign`, or name the signature explicitly",
            )
        return None
    signature, root = found
    trust = policy.trust()
    if root == target:
        result = verify_path(target, signature, trust)
        if not result.ok:
            raise IntegrityError(f"{path}: does not match its signature {signature}: " + describe(result))
        return result
    return _verify_member(target, root, signature, trust, digest)


def _verify_member(
    target: Path, root: Path, signature: Path, trust: Trust, digest: str | None
) -> Verification:
    """Check one file of a signed directory: the signature, then that file's digest only."""
    from garrison.integrity.bundle import SignatureError, read_bundle, verify_bundle
    from garrison.integrity.manifest import Algorithm, build_manifest
    from garrison.integrity.signing import Verification, read_signature

    rel = target.relative_to(root).as_posix()
    try:
        statement, signer = verify_bundle(
            read_bundle(read_signature(signature), source=str(signature)), trust
        )
    except (SignatureError, GarrisonError) as exc:
        raise IntegrityError(f"{target}: signature {signature} does not verify: {exc.message}") from None
    signed = _member_resources(statement, rel)
    if not signed:
        raise IntegrityError(f"{target}: not covered by the signature {signature} of {root}")
    if digest is not None and statement.method == "files" and statement.hash_type == "sha256":
        now = {rel: digest.removeprefix("sha256:")}
    else:
        built = build_manifest(
            target,
            algorithm=cast(Algorithm, statement.hash_type),
            shard_size=statement.shard_size if statement.method == "shards" else None,
            allow_symlinks=statement.allow_symlinks,
            default_ignores=False,
        )
        now = {
            rel + r["name"][1:]: r["digest"]  # "." or ".:start:end" -> rel[:start:end]
            for r in built.manifest.resources()
        }
    if now != signed:
        raise IntegrityError(f"{target}: differs from the digest signed in {signature}")
    return Verification(target=target, signature=signature, signer=signer, statement=statement)


def _member_resources(statement: Statement, rel: str) -> dict[str, str]:
    return {
        r.name: r.digest
        for r in statement.resources
        if r.name == rel or (r.name.startswith(rel + ":") and r.name[len(rel) + 1 :].count(":") == 1)
    }


def make_verifier(policy: SignaturePolicy) -> SignatureVerifier:
    """A :class:`garrison.loading.SignatureVerifier` that applies ``policy``."""

    def verifier(path: Path, digest: str) -> None:
        verify_before_load(path, policy, digest=digest)

    return verifier


__all__ = [
    "MAX_LEVELS",
    "IntegrityError",
    "SignaturePolicy",
    "find_signature",
    "make_verifier",
    "verify_before_load",
]
