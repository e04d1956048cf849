"""Rules for chat templates: ``GAR-GGUF`` (templates and structure of GGUF files) and ``GAR-TPL``
(templates in tokenizer configs and ``.jinja`` files).

Ranges: 0xx code execution, 1xx tampering, 2xx resource exhaustion. Ids are never reused.
"""

from __future__ import annotations

from garrison.core.rules import Rule
from garrison.core.severity import Severity

_CONTROLS = ("NIST-AI-RMF:MEASURE-2.7", "ISO-42001:A.10.3", "EU-AI-Act:Art-15", "NIST-SSDF:PW.4.4")
_INJECTION = (
    "The chat template reaches Python internals through Jinja: attribute or item access to dunder "
    "names (__class__, __globals__, __subclasses__, __builtins__...) or private attributes, the attr "
    "filter, strings assembled to spell such names, or a format string that reads attributes. "
    "Runtimes that render templates outside Jinja's sandbox run what this reaches: llama-cpp-python "
    "before 0.2.72 rendered GGUF chat templates unsandboxed and ran commands from them "
    "(CVE-2024-34359), and the sandbox itself had format-string escapes (CVE-2024-56326, "
    "CVE-2025-27516). Ordinary chat templates only loop over messages and print fields; none of "
    "them touch these names. Critical when a dunder or private attribute is accessed."
)
_SUSPICIOUS = (
    "The chat template uses a construct that ordinary chat templates do not and that template "
    "injection payloads start from: Jinja globals such as cycler, joiner, lipsum or self, "
    "Flask-style globals (config, request, url_for), string constants naming dunders, "
    "include/import/extends of other templates, or a template that does not parse (so other "
    "tools may read it differently). namespace() is not reported: mainstream templates use it "
    "for loop state; access to its internals is an injection finding."
)
_REMEDIATION = (
    "Do not render the template. Replace it with the template published by the model's authors, "
    "render templates only in jinja2's ImmutableSandboxedEnvironment on a patched jinja2, and "
    "upgrade runtimes (llama-cpp-python 0.2.72 or later)."
)
_LIMIT = (
    "The metadata or template is larger, longer or more deeply nested than Garrison checks, so what "
    "lies beyond was not analysed. Oversized strings and arrays are also how malformed model files "
    "exhaust the memory of the loaders that trust their lengths."
)


def _rule(
    id_: str, name: str, title: str, severity: Severity, description: str, **refs: tuple[str, ...]
) -> Rule:
    return Rule(
        id=id_,
        name=name,
        title=title,
        severity=severity,
        description=description,
        remediation=_REMEDIATION
        if id_[-3] == "0"
        else "Do not load the file; fetch a clean copy and verify it.",
        cwe=refs.get("cwe", ("CWE-1336",)),
        owasp_llm=("LLM03",),
        owasp_ml=("ML06",),
        atlas=("AML.T0010",),
        controls=_CONTROLS,
        tags=("supply-chain", "chat-template"),
    )


GGUF_TEMPLATE_INJECTION = _rule(
    "GAR-GGUF-001", "gguf-chat-template-injection", "GGUF chat template reaches Python internals",
    Severity.CRITICAL, _INJECTION, cwe=("CWE-1336", "CWE-94"),
)  # fmt: skip
GGUF_TEMPLATE_SUSPICIOUS = _rule(
    "GAR-GGUF-002", "gguf-chat-template-suspicious", "GGUF chat template uses injection building blocks",
    Severity.MEDIUM, _SUSPICIOUS,
)  # fmt: skip
GGUF_MALFORMED = _rule(
    "GAR-GGUF-101", "gguf-malformed-metadata", "GGUF header or metadata is malformed",
    Severity.MEDIUM,
    "The GGUF header or a metadata entry is broken: an unknown value type, a string that is not "
    "UTF-8 or runs past the file, a key given twice (loaders disagree on which copy wins) or a file "
    "that ends inside the metadata.",
    cwe=("CWE-20",),
)  # fmt: skip
GGUF_TENSOR_TABLE = _rule(
    "GAR-GGUF-102", "gguf-invalid-tensor-table", "GGUF tensor table has impossible dimensions or offsets",
    Severity.HIGH,
    "A tensor has more dimensions than ggml supports, an unknown type, an element count that "
    "overflows 64 bits (the logical size then dwarfs the allocation: CVE-2026-33298 in llama.cpp) "
    "or data placed past the end of the file or off the declared alignment.",
    cwe=("CWE-190", "CWE-122"),
)  # fmt: skip
GGUF_LIMIT = _rule(
    "GAR-GGUF-201", "gguf-metadata-over-limit", "GGUF metadata is larger than Garrison checks",
    Severity.MEDIUM, _LIMIT, cwe=("CWE-400", "CWE-770"),
)  # fmt: skip
TOKENIZER_TEMPLATE_INJECTION = _rule(
    "GAR-TPL-001", "tokenizer-chat-template-injection", "Tokenizer chat template reaches Python internals",
    Severity.CRITICAL, _INJECTION, cwe=("CWE-1336", "CWE-94"),
)  # fmt: skip
TOKENIZER_TEMPLATE_SUSPICIOUS = _rule(
    "GAR-TPL-002", "tokenizer-chat-template-suspicious",
    "Tokenizer chat template uses injection building blocks",
    Severity.MEDIUM, _SUSPICIOUS,
)  # fmt: skip
TOKENIZER_LIMIT = _rule(
    "GAR-TPL-201", "tokenizer-config-over-limit",
    "Tokenizer config or chat template is larger than Garrison checks",
    Severity.MEDIUM, _LIMIT, cwe=("CWE-400",),
)  # fmt: skip

GGUF_RULES: tuple[Rule, ...] = (
    GGUF_TEMPLATE_INJECTION,
    GGUF_TEMPLATE_SUSPICIOUS,
    GGUF_MALFORMED,
    GGUF_TENSOR_TABLE,
    GGUF_LIMIT,
)
"""Every rule the GGUF scanner can emit."""

TEMPLATE_RULES: tuple[Rule, ...] = (
    TOKENIZER_TEMPLATE_INJECTION,
    TOKENIZER_TEMPLATE_SUSPICIOUS,
    TOKENIZER_LIMIT,
)
"""Every rule the tokenizer-config scanner can emit."""
