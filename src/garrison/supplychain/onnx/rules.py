"""Rules of the ONNX family (``GAR-ONNX``): custom operators and external-data paths.

Ranges: 0xx code execution, 1xx tampering, 2xx resource exhaustion. Ids are never reused.
"""

from __future__ import annotations

from garrison.core.rules import Rule
from garrison.core.severity import Severity

_CONTROLS = ("NIST-AI-RMF:MEASURE-2.7", "ISO-42001:A.10.3", "EU-AI-Act:Art-15", "NIST-SSDF:PW.4.4")
_TAGS = ("supply-chain", "onnx")
_PATH_REMEDIATION = (
    "Do not load the model. External data must be a relative path to a regular file inside the "
    "model's directory; re-export the model or fetch a clean copy, and upgrade onnx to 1.21 or later."
)

CUSTOM_OPERATOR = Rule(
    id="GAR-ONNX-001",
    name="onnx-custom-operator-domain",
    title="ONNX model uses operators from a custom domain",
    severity=Severity.HIGH,
    description=(
        "Nodes use operators from a domain that neither the ONNX standard nor ONNX Runtime's "
        "built-in contrib operators (com.microsoft) define, and that no function in the model "
        "defines. Such operators run only when the loader registers a native custom-op library, "
        "which is arbitrary machine code; a model that asks for one asks you to run that code."
    ),
    remediation=(
        "Find out which library implements the domain and whether you trust it; prefer a model "
        "that uses standard operators only. Never register a custom-op library that came with "
        "an untrusted model."
    ),
    cwe=("CWE-829", "CWE-94"),
    owasp_ml=("ML06",),
    owasp_llm=("LLM03",),
    atlas=("AML.T0010.003",),
    controls=_CONTROLS,
    example="node 'Exploit' in domain 'evil.ops' (opset_import evil.ops v1)",
    tags=_TAGS,
)

ABSOLUTE_EXTERNAL_PATH = Rule(
    id="GAR-ONNX-101",
    name="onnx-external-data-absolute-path",
    title="ONNX external data points to an absolute path",
    severity=Severity.HIGH,
    description=(
        "A tensor's external_data location is an absolute path (/etc/passwd, C:\\..., \\\\host\\share). "
        "Loaders before onnx 1.13 read it as weights (CVE-2022-25882), leaking the file into the "
        "model's outputs or to whoever can read the tensor back."
    ),
    remediation=_PATH_REMEDIATION,
    cwe=("CWE-22", "CWE-36"),
    owasp_ml=("ML06",),
    owasp_llm=("LLM03",),
    atlas=("AML.T0010",),
    controls=_CONTROLS,
    example='external_data location "/home/user/.ssh/id_rsa"',
    tags=_TAGS,
)

TRAVERSAL_EXTERNAL_PATH = Rule(
    id="GAR-ONNX-102",
    name="onnx-external-data-path-traversal",
    title="ONNX external data path climbs out of the model directory",
    severity=Severity.HIGH,
    description=(
        "A tensor's external_data location uses '..' to leave the model's directory, either at "
        "the start (CVE-2022-25882) or after a harmless-looking prefix such as 'a/../../x', which "
        "bypassed the first fix (CVE-2024-27318). Loading reads an arbitrary file as weights."
    ),
    remediation=_PATH_REMEDIATION,
    cwe=("CWE-22", "CWE-23"),
    owasp_ml=("ML06",),
    owasp_llm=("LLM03",),
    atlas=("AML.T0010",),
    controls=_CONTROLS,
    example='external_data location "weights/../../../etc/shadow"',
    tags=_TAGS,
)

SYMLINK_EXTERNAL_PATH = Rule(
    id="GAR-ONNX-103",
    name="onnx-external-data-symlink-escape",
    title="ONNX external data path goes through a symlink that leaves the model directory",
    severity=Severity.HIGH,
    description=(
        "The external_data location looks relative and harmless, but on disk the file or one of "
        "its parent directories is a symbolic link resolving outside the model's directory "
        "(CVE-2026-34447 for the file, CVE-2026-27489 for a parent directory). Models are shipped "
        "as directories and archives, so the link travels with them."
    ),
    remediation=_PATH_REMEDIATION,
    cwe=("CWE-59", "CWE-22"),
    owasp_ml=("ML06",),
    owasp_llm=("LLM03",),
    atlas=("AML.T0010",),
    controls=_CONTROLS,
    example="weights.bin -> /etc/passwd",
    tags=_TAGS,
)

HARDLINK_EXTERNAL_DATA = Rule(
    id="GAR-ONNX-104",
    name="onnx-external-data-hardlink",
    title="ONNX external data file has other hard links",
    severity=Severity.MEDIUM,
    description=(
        "The external data file is a regular file with more than one hard link. A hard link to a "
        "sensitive file looks like an ordinary file and passed onnx's symlink checks before 1.21 "
        "(CVE-2026-34446); weights files written by exporters have one link."
    ),
    remediation=(
        "Check what else the file is linked to; copy the model into a fresh directory before loading."
    ),
    cwe=("CWE-62",),
    owasp_ml=("ML06",),
    atlas=("AML.T0010",),
    controls=_CONTROLS,
    example="model.onnx.data has 2 links",
    tags=_TAGS,
)

MALFORMED_MODEL = Rule(
    id="GAR-ONNX-105",
    name="onnx-malformed-model",
    title="ONNX model or its external-data entries are malformed",
    severity=Severity.MEDIUM,
    description=(
        "The ModelProto does not parse as protobuf, or an external-data entry has no location, a "
        "NUL byte, a negative or non-numeric offset or length, repeated keys, or a range past the "
        "end of its file, or points at something that is not a regular file. Loaders disagree on "
        "such input, which is how payloads slip past checks."
    ),
    remediation="Do not load the model; re-export it or fetch a clean copy and verify its digest.",
    cwe=("CWE-20",),
    owasp_ml=("ML06",),
    atlas=("AML.T0010",),
    controls=_CONTROLS,
    example='external_data of tensor "w" has no "location" key',
    tags=_TAGS,
)

SCAN_LIMIT = Rule(
    id="GAR-ONNX-201",
    name="onnx-scan-over-limit",
    title="ONNX model is larger or more deeply nested than Garrison scans",
    severity=Severity.MEDIUM,
    description=(
        "The model passed a limit on file size, protobuf fields or subgraph nesting; what lies "
        "beyond was not checked. Protobuf files over 2 GiB are not valid ONNX, and extreme "
        "nesting is a denial-of-service pattern."
    ),
    remediation="Review the model by other means, or raise the limit deliberately.",
    cwe=("CWE-400",),
    owasp_ml=("ML06",),
    owasp_llm=("LLM10",),
    atlas=("AML.T0010",),
    controls=_CONTROLS,
    example="subgraphs nested 40 levels deep",
    tags=_TAGS,
)

RULES: tuple[Rule, ...] = (
    CUSTOM_OPERATOR,
    ABSOLUTE_EXTERNAL_PATH,
    TRAVERSAL_EXTERNAL_PATH,
    SYMLINK_EXTERNAL_PATH,
    HARDLINK_EXTERNAL_DATA,
    MALFORMED_MODEL,
    SCAN_LIMIT,
)
"""Every rule the ONNX scanner can emit."""
