"""Rules raised when a model or dataset does not match its signature."""

from __future__ import annotations

from garrison.core.rules import Rule
from garrison.core.severity import Severity

_CONTROLS = (
    "NIST-AI-RMF:MANAGE-3.1",
    "NIST-AI-RMF:MEASURE-2.7",
    "ISO-42001:A.7.5",
    "ISO-42001:A.10.3",
    "EU-AI-Act:Art-15",
    "NIST-SSDF:PS.2.1",
    "NIST-SSDF:PS.3.1",
)

SIGNATURE_INVALID = Rule(
    id="GAR-INT-001",
    name="signature-invalid",
    title="Signature does not verify",
    severity=Severity.CRITICAL,
    description=(
        "The signature file could not be verified with the trusted key or certificates: it was "
        "made with another key, by a certificate that does not chain to a trusted root, or its "
        "signed content was altered after signing; or the file is not a well-formed model-signing "
        "bundle. Nothing about the model or dataset can be trusted from it: the manifest it "
        "carries may be the attacker's."
    ),
    remediation=(
        "Do not load or deploy the artefact. Check that the right public key or CA certificate "
        "was given; if it was, obtain the artefact and its signature again from the publisher "
        "and find out who replaced the signature."
    ),
    cwe=("CWE-347", "CWE-345"),
    owasp_ml=("ML06", "ML10"),
    owasp_llm=("LLM03", "LLM04"),
    atlas=("AML.T0010",),
    controls=_CONTROLS,
    example="model.sig: the signature was made with a different key",
    tags=("integrity", "signature"),
)

FILE_MODIFIED = Rule(
    id="GAR-INT-101",
    name="file-modified-since-signing",
    title="File content differs from the signed digest",
    severity=Severity.HIGH,
    description=(
        "A file covered by a valid signature no longer has the content that was signed. A changed "
        "weight file can carry a backdoor or a payload, a changed tokenizer or config can change "
        "what the model does, and a changed dataset can poison what is trained on it. For "
        "sharded manifests the byte ranges that differ are listed; for datasets signed with chunk "
        "digests, the rows or row groups that differ."
    ),
    remediation=(
        "Treat the file as untrusted until the change is explained. Restore it from a trusted "
        "copy, or, if the change was intended, review it and sign the new version."
    ),
    cwe=("CWE-345", "CWE-494"),
    owasp_ml=("ML02", "ML06", "ML10"),
    owasp_llm=("LLM03", "LLM04"),
    atlas=("AML.T0010", "AML.T0020"),
    controls=_CONTROLS,
    example="model/weights.bin differs from the signed content; bytes 0–1048576",
    tags=("integrity", "tampering"),
)

FILE_ADDED = Rule(
    id="GAR-INT-102",
    name="file-added-since-signing",
    title="File present that was not signed",
    severity=Severity.HIGH,
    description=(
        "The directory holds a file that the signature does not cover. Loaders pick up extra "
        "files by name (a second checkpoint, a custom code module, an extra data partition), so "
        "an unsigned file is as dangerous as a modified one."
    ),
    remediation="Remove the file, or review it and sign the directory again with it included.",
    cwe=("CWE-345",),
    owasp_ml=("ML02", "ML06"),
    owasp_llm=("LLM03", "LLM04"),
    atlas=("AML.T0010", "AML.T0020"),
    controls=_CONTROLS,
    example="model/extra_code.py is not in the signed manifest",
    tags=("integrity", "tampering"),
)

FILE_REMOVED = Rule(
    id="GAR-INT-103",
    name="file-removed-since-signing",
    title="Signed file is missing",
    severity=Severity.HIGH,
    description=(
        "A file the signature covers is gone. A missing file makes the artefact incomplete (a "
        "missing shard, tokenizer or data partition) and is also how a rename shows: the old "
        "name disappears and the new one appears as an unsigned file."
    ),
    remediation=(
        "Restore the file from a trusted copy, or sign the directory again if it was removed on purpose."
    ),
    cwe=("CWE-345",),
    owasp_ml=("ML02", "ML06"),
    owasp_llm=("LLM03", "LLM04"),
    atlas=("AML.T0010",),
    controls=_CONTROLS,
    example="model/tokenizer.json was signed but is missing now",
    tags=("integrity", "tampering"),
)

UNSAFE_PATH = Rule(
    id="GAR-INT-104",
    name="unsafe-path-in-signed-tree",
    title="Path in the signed tree cannot be checked safely",
    severity=Severity.HIGH,
    description=(
        "A path under the signed root is a symbolic link that leaves the tree, dangles, names a "
        "directory, or replaces a signed file (links are only hashed when the signature allows "
        "them), or it is a special file or unreadable. Garrison does not follow such links: a "
        "loader that does would read content nobody signed, such as credentials or another "
        "model."
    ),
    remediation="Replace the link or special file with the regular file that was signed.",
    cwe=("CWE-59", "CWE-345"),
    owasp_ml=("ML06",),
    owasp_llm=("LLM03",),
    atlas=("AML.T0010",),
    controls=_CONTROLS,
    example="model/weights.bin: symbolic link to /etc/passwd, outside the tree",
    tags=("integrity", "tampering"),
)

SIGNATURE_MISSING = Rule(
    id="GAR-INT-201",
    name="signature-required-but-missing",
    title="Loading requires a signature and none was found",
    severity=Severity.HIGH,
    description=(
        "Policy requires a model to verify against a signature before it is loaded, and no "
        "signature file was found for it (``<path>.sig`` beside it, or the one configured). "
        "Loading it anyway would defeat the policy, so Garrison refuses."
    ),
    remediation=(
        "Obtain the publisher's signature, or sign the reviewed model with `garrison sign`, and "
        "configure the trusted key or certificate (integrity settings in garrison.toml)."
    ),
    cwe=("CWE-345", "CWE-494"),
    owasp_ml=("ML06",),
    owasp_llm=("LLM03",),
    atlas=("AML.T0010",),
    controls=_CONTROLS,
    example="models/classifier.pt: no signature at models/classifier.pt.sig",
    tags=("integrity", "signature"),
)

INTEGRITY_RULES: tuple[Rule, ...] = (
    SIGNATURE_INVALID,
    FILE_MODIFIED,
    FILE_ADDED,
    FILE_REMOVED,
    UNSAFE_PATH,
    SIGNATURE_MISSING,
)
"""Every rule of the integrity family, registered by :func:`garrison.detectors.default_registry`."""
