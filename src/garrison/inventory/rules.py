"""Rules of the file-inventory family (``GAR-FMT``): what a file's format says about its risk.

Ranges: 0xx code execution, 1xx tampering and disguise. Ids are never reused.
"""

from __future__ import annotations

from garrison.core.rules import Rule
from garrison.core.severity import Severity

CODE_EXECUTING_FORMAT = Rule(
    id="GAR-FMT-001",
    name="code-executing-format",
    title="File is in a serialization format that runs code when it is loaded",
    severity=Severity.LOW,
    description=(
        "The file's content is a format whose usual loader can run code chosen by whoever wrote the "
        "file: a Python pickle or a format built on one (joblib, PyTorch checkpoints, TorchScript), a "
        "NumPy array of Python objects (stored as a pickle), a Keras model whose config can carry "
        "Lambda layers, or a TensorFlow SavedModel. Loading such a file from an untrusted source is "
        "running an untrusted program. This finding is an inventory fact, not proof of a payload; "
        "the format's own scanner looks for one."
    ),
    remediation=(
        "Prefer formats that hold only data: safetensors for weights, ONNX for whole models, "
        "Parquet or CSV for data. Where a pickle-based file must be used, load it only after its "
        "signature has been verified, and through a restricted loader (torch.load with "
        "weights_only=True, Keras safe_mode, Garrison's safe loader) rather than pickle.load."
    ),
    cwe=("CWE-502",),
    owasp_ml=("ML06",),
    owasp_llm=("LLM03",),
    atlas=("AML.T0010", "AML.T0011.000"),
    controls=(
        "NIST-AI-RMF:MANAGE-3.1",
        "NIST-AI-RMF:MEASURE-2.7",
        "ISO-42001:A.10.3",
        "EU-AI-Act:Art-15",
        "NIST-SSDF:PW.4.4",
    ),
    example="models/classifier.pkl: a Python pickle (protocol 4)",
    tags=("supply-chain", "inventory"),
)

DISGUISED_CODE_EXECUTING_FILE = Rule(
    id="GAR-FMT-101",
    name="disguised-code-executing-file",
    title="File that runs code on load is named as a format that cannot",
    severity=Severity.HIGH,
    description=(
        "The file's content is a code-executing format (for example a pickle), but its extension "
        "promises a format that holds only data, such as .safetensors, .onnx, .gguf, .json or "
        ".npy. Tools and people that trust the name will skip the checks they apply to pickles, "
        "and a loader that sniffs content (numpy with allow_pickle, torch.load) will still run it. "
        "Renaming a malicious pickle is a known way to slip it past model-hub and CI checks."
    ),
    remediation=(
        "Do not load the file. Find out where it came from and who changed it; replace it with a "
        "copy from a trusted source whose content matches its name, and verify its signature or "
        "digest. Treat the surrounding artifacts as possibly tampered with."
    ),
    cwe=("CWE-502", "CWE-646"),
    owasp_ml=("ML06",),
    owasp_llm=("LLM03",),
    atlas=("AML.T0010.003", "AML.T0011.000"),
    controls=(
        "NIST-AI-RMF:MANAGE-3.1",
        "NIST-AI-RMF:MEASURE-2.7",
        "ISO-42001:A.10.3",
        "EU-AI-Act:Art-15",
        "NIST-SSDF:PW.4.4",
    ),
    example="models/embeddings.safetensors: content is a Python pickle",
    tags=("supply-chain", "tampering", "inventory"),
)

EXTENSION_CONTENT_MISMATCH = Rule(
    id="GAR-FMT-102",
    name="extension-content-mismatch",
    title="File content does not match the format its extension promises",
    severity=Severity.LOW,
    description=(
        "The file's content is a different format from the one its extension names, and the "
        "mismatch does not hide code execution behind a data-only name (that is GAR-FMT-101). It "
        "may be a harmless mix-up, a file saved with the wrong tool, or a sign of tampering; either "
        "way, tools that route files by name will handle it wrongly."
    ),
    remediation=(
        "Rename the file to match its content, or regenerate it in the format its name promises. "
        "If nobody expected the change, find out where the file came from."
    ),
    cwe=("CWE-646",),
    owasp_ml=("ML06",),
    atlas=("AML.T0010",),
    controls=("ISO-42001:A.7.5", "NIST-SSDF:PS.3.1"),
    example="weights.pt: content is a plain Python pickle, not a PyTorch checkpoint",
    tags=("supply-chain", "inventory"),
)

MALFORMED_MODEL_FILE = Rule(
    id="GAR-FMT-103",
    name="malformed-model-file",
    title="Model or data file is structurally broken or truncated",
    severity=Severity.MEDIUM,
    description=(
        "The file is recognisably a model, data or archive format, but its structure is broken: a "
        "pickle that ends before its STOP opcode, a safetensors header longer than the file, a NumPy "
        "header or array cut short, a zip whose central directory is missing. Broken files are how "
        "payloads slip past scanners that give up on what they cannot parse while the real loader, "
        "which is more lenient, still runs them; at best the file is corrupt and will fail in "
        "production."
    ),
    remediation=(
        "Do not load the file. Fetch it again from its source and compare its digest with the "
        "published one; if the source copy is also broken, report it to its publisher."
    ),
    cwe=("CWE-20",),
    owasp_ml=("ML06",),
    atlas=("AML.T0010",),
    controls=("NIST-AI-RMF:MEASURE-2.7", "ISO-42001:A.7.5", "EU-AI-Act:Art-15"),
    example="model.safetensors: header length 4294967296 runs past the end of the 1024-byte file",
    tags=("supply-chain", "integrity", "inventory"),
)

RULES: tuple[Rule, ...] = (
    CODE_EXECUTING_FORMAT,
    DISGUISED_CODE_EXECUTING_FILE,
    EXTENSION_CONTENT_MISMATCH,
    MALFORMED_MODEL_FILE,
)
"""Every rule the file inventory can emit."""
