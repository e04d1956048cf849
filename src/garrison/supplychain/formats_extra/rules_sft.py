"""Rules of the safetensors family (``GAR-SFT``): header abuse and inconsistent tensor tables.

Ranges: 1xx tampering and parser differentials, 2xx resource exhaustion. Ids are never reused.
"""

from __future__ import annotations

from garrison.core.rules import Rule
from garrison.core.severity import Severity

_CONTROLS = ("NIST-AI-RMF:MEASURE-2.7", "ISO-42001:A.7.5", "EU-AI-Act:Art-15")
_TAGS = ("supply-chain", "safetensors")
_REMEDIATION = (
    "Do not load the file. Re-save the weights with the safetensors library (which writes a strict, "
    "contiguous header) from a trusted copy, and verify the digest of what you download."
)


def _rule(
    id_: str, name: str, title: str, severity: Severity, description: str, example: str, cwe: str
) -> Rule:
    return Rule(
        id=id_,
        name=name,
        title=title,
        severity=severity,
        description=description,
        remediation=_REMEDIATION,
        cwe=(cwe,),
        owasp_ml=("ML06",),
        atlas=("AML.T0010",),
        controls=_CONTROLS,
        example=example,
        tags=_TAGS,
    )


MALFORMED_HEADER = _rule(
    "GAR-SFT-101",
    "safetensors-malformed-header",
    "safetensors header is not a strict JSON object of the declared length",
    Severity.MEDIUM,
    "The 8-byte header length runs past the file, or the header is not UTF-8, does not start "
    "with '{', is not strict JSON (NaN, trailing bytes other than space padding) or is not an "
    "object. The reference loader rejects such files; other parsers may not, which makes the file "
    "a parser differential.",
    "header length 4294967296 in a 1 KiB file",
    "CWE-20",
)
DUPLICATE_KEYS = _rule(
    "GAR-SFT-102",
    "safetensors-duplicate-header-key",
    "safetensors header repeats a key",
    Severity.HIGH,
    "The same tensor name (or field) appears twice in one JSON object. JSON parsers disagree on "
    "which copy wins, so a reviewer and a loader can see different tensors: a classic parser "
    "differential for smuggling weights past a check.",
    '{"w": {...}, "w": {...}}',
    "CWE-436",
)
BAD_TENSOR = _rule(
    "GAR-SFT-103",
    "safetensors-inconsistent-tensor-entry",
    "safetensors tensor entry has an unknown dtype or a size that does not match its shape",
    Severity.MEDIUM,
    "A tensor's dtype is not one safetensors defines, its shape is not a list of non-negative "
    "integers, or the byte length given by its data_offsets differs from shape x dtype size. "
    "Readers that trust one and not the other read out of bounds or misinterpret the data.",
    'dtype "F32", shape [1000, 1000], data_offsets [0, 16]',
    "CWE-130",
)
OFFSETS_OUT_OF_RANGE = _rule(
    "GAR-SFT-104",
    "safetensors-offsets-out-of-range",
    "safetensors tensor offsets are reversed or lie outside the data region",
    Severity.HIGH,
    "A tensor's data_offsets are not two integers with begin <= end <= size of the data region. "
    "Parsers without the reference implementation's checks read past the buffer.",
    "data_offsets [0, 1099511627776] in a 1 MiB file",
    "CWE-125",
)
OVERLAPPING_TENSORS = _rule(
    "GAR-SFT-105",
    "safetensors-overlapping-tensors",
    "safetensors tensors share bytes",
    Severity.HIGH,
    "Two tensors' byte ranges overlap. The reference loader rejects this; a loader that accepts it "
    "aliases one tensor's weights into another, which a review of either tensor alone misses.",
    "w1 [0, 64] and w2 [32, 96]",
    "CWE-436",
)
DATA_GAPS = _rule(
    "GAR-SFT-106",
    "safetensors-unaccounted-bytes",
    "safetensors data region has bytes no tensor covers",
    Severity.MEDIUM,
    "Tensor ranges leave gaps, or bytes follow the last tensor. The reference loader requires the "
    "tensors to cover the data region exactly; hidden bytes are room for a smuggled payload (a "
    "pickle or archive appended to an innocent-looking file).",
    "4096 bytes after the last tensor",
    "CWE-912",
)
BAD_METADATA = _rule(
    "GAR-SFT-107",
    "safetensors-invalid-metadata",
    "safetensors __metadata__ is not a map of strings to strings",
    Severity.MEDIUM,
    "The specification allows only string values in __metadata__. Nested objects or numbers are "
    "rejected by the reference loader and are a place to hide data other tools will process.",
    '"__metadata__": {"format": {"nested": 1}}',
    "CWE-20",
)
HEADER_LIMIT = Rule(
    id="GAR-SFT-201",
    name="safetensors-header-over-limit",
    title="safetensors header is larger or deeper than allowed",
    severity=Severity.MEDIUM,
    description=(
        "The header declares more than 100 MB (the specification's limit), nests JSON deeper than "
        "any real header, or lists more tensors than Garrison checks. Oversized headers are a "
        "denial-of-service vector against loaders that allocate what the header asks for."
    ),
    remediation=_REMEDIATION,
    cwe=("CWE-400", "CWE-770"),
    owasp_ml=("ML06",),
    owasp_llm=("LLM10",),
    atlas=("AML.T0010",),
    controls=_CONTROLS,
    example="header length 2 GiB",
    tags=_TAGS,
)

RULES: tuple[Rule, ...] = (
    MALFORMED_HEADER,
    DUPLICATE_KEYS,
    BAD_TENSOR,
    OFFSETS_OUT_OF_RANGE,
    OVERLAPPING_TENSORS,
    DATA_GAPS,
    BAD_METADATA,
    HEADER_LIMIT,
)
"""Every rule the safetensors scanner can emit."""
