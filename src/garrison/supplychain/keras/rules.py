"""Rules of the Keras family (``GAR-KRS``): code and gadgets in Keras model configs.

Ranges: 0xx code execution, 1xx tampering, 2xx resource exhaustion. Ids are never reused.
"""

from __future__ import annotations

from garrison.core.rules import Rule
from garrison.core.severity import Severity

_CONTROLS = ("NIST-AI-RMF:MEASURE-2.7", "ISO-42001:A.10.3", "EU-AI-Act:Art-15", "NIST-SSDF:PW.4.4")
_TAGS = ("supply-chain", "keras")

LAMBDA_BYTECODE = Rule(
    id="GAR-KRS-001",
    name="keras-lambda-bytecode",
    title="Keras Lambda layer carries marshalled Python bytecode",
    severity=Severity.HIGH,
    description=(
        "A Lambda layer stores its function as base64 of marshalled Python bytecode, which Keras "
        "turns back into a function and runs when the model is built or called. Keras 3 refuses it "
        "unless safe_mode=False, but Keras before 2.13 (CVE-2024-3660) and Keras 3 loading .h5 files "
        "before 3.11.3 (CVE-2025-9905) run it regardless. Graded critical when the code refers to "
        "names that run commands, import modules or touch files."
    ),
    remediation=(
        "Do not load the model. If the Lambda is yours, replace it with a registered custom layer "
        "whose code you ship and review; load models with safe_mode=True on Keras 3.11.3 or later."
    ),
    cwe=("CWE-94", "CWE-502"),
    owasp_ml=("ML06",),
    owasp_llm=("LLM03",),
    atlas=("AML.T0010.003", "AML.T0011.000"),
    controls=_CONTROLS,
    example="config.json: Lambda 'exec' with bytecode using __import__, system",
    tags=_TAGS,
)

EXTERNAL_REFERENCE = Rule(
    id="GAR-KRS-002",
    name="keras-external-module-reference",
    title="Keras config imports a module or function outside Keras",
    severity=Severity.HIGH,
    description=(
        "Keras 3 configs name the module and class or function of every object; the loader imports "
        "that module and calls what it finds. Before Keras 3.9 any module was accepted even with "
        "safe_mode=True (CVE-2025-1550), so a config naming builtins.exec, os.system or "
        "subprocess.Popen runs it at load time. Graded critical for modules that run commands or "
        "evaluate code."
    ),
    remediation=(
        "Do not load the model. Legitimate models reference keras.* (and registered custom objects "
        "you ship); upgrade Keras to a version that only resolves Keras objects in safe mode."
    ),
    cwe=("CWE-470", "CWE-502"),
    owasp_ml=("ML06",),
    owasp_llm=("LLM03",),
    atlas=("AML.T0010.003", "AML.T0011.000"),
    controls=_CONTROLS,
    example='config.json: {"module": "builtins", "class_name": "function", "config": "exec"}',
    tags=_TAGS,
)

DANGEROUS_KERAS_FUNCTION = Rule(
    id="GAR-KRS-003",
    name="keras-safe-mode-gadget",
    title="Keras config calls a Keras function that disables safe mode or touches files",
    severity=Severity.CRITICAL,
    description=(
        "The config references a function inside Keras or TensorFlow that is harmless in code but "
        "a gadget in a config: keras.config.enable_unsafe_deserialization turns safe mode off for "
        "the rest of the load (CVE-2025-9906), keras.utils.get_file downloads and writes files "
        "(CVE-2025-8747), keras.models.load_model with safe_mode=False loads a second model "
        "unsafely. Ordinary models reference activations, losses and initialisers, never these."
    ),
    remediation="Do not load the model; upgrade Keras to 3.11 or later and load with safe_mode=True.",
    cwe=("CWE-502", "CWE-693"),
    owasp_ml=("ML06",),
    owasp_llm=("LLM03",),
    atlas=("AML.T0010.003", "AML.T0011.000"),
    controls=_CONTROLS,
    example='Lambda function {"module": "keras.config", "config": "enable_unsafe_deserialization"}',
    tags=_TAGS,
)

CUSTOM_OBJECT = Rule(
    id="GAR-KRS-004",
    name="keras-custom-object",
    title="Keras config needs custom objects (code supplied outside the file)",
    severity=Severity.MEDIUM,
    description=(
        "A layer, loss or other object is registered outside Keras (a registered name such as "
        "'mypackage>MyLayer', or a module that is not keras.*). The model loads only with that code "
        "importable, and whatever that code does runs at load time."
    ),
    remediation=(
        "Make sure the custom objects come from a package you trust and pin; prefer models built "
        "from standard layers when the source of the file is not trusted."
    ),
    cwe=("CWE-829",),
    owasp_ml=("ML06",),
    atlas=("AML.T0010",),
    controls=_CONTROLS,
    example='config.json: "registered_name": "acme>FancyAttention"',
    tags=_TAGS,
)

EXTERNAL_RESOURCE_LAYER = Rule(
    id="GAR-KRS-005",
    name="keras-external-resource-layer",
    title="Keras layer reads a file or model from a path given in the config",
    severity=Severity.HIGH,
    description=(
        "Some layers open a path from their config while the model loads, even in safe mode: "
        "StringLookup, IntegerLookup and TextVectorization accept a vocabulary file path or URL "
        "(arbitrary file read and SSRF, CVE-2025-12058), and TFSMLayer loads an external "
        "TensorFlow SavedModel, which is a program (CVE-2026-1462). TFOpLambda layers that name "
        "TensorFlow I/O or Python-calling ops are reported here too."
    ),
    remediation=(
        "Do not load the model from an untrusted source. Vocabularies belong inside the model; "
        "replace TFSMLayer by a converted Keras model."
    ),
    cwe=("CWE-73", "CWE-918"),
    owasp_ml=("ML06",),
    owasp_llm=("LLM03",),
    atlas=("AML.T0010",),
    controls=_CONTROLS,
    example='StringLookup: "vocabulary": "/home/user/.ssh/id_rsa"',
    tags=_TAGS,
)

MALFORMED_CONFIG = Rule(
    id="GAR-KRS-101",
    name="keras-config-malformed",
    title="Keras model config is missing, duplicated or not strict JSON",
    severity=Severity.MEDIUM,
    description=(
        "The archive has no config.json, several members with that name (the loader reads the last, "
        "a reviewer the first), duplicate keys in one object, or JSON that a strict parser rejects. "
        "Each is a parser differential that can hide a payload from one tool and not another."
    ),
    remediation="Do not load the model; fetch a clean copy from its source and verify its digest.",
    cwe=("CWE-20", "CWE-436"),
    owasp_ml=("ML06",),
    atlas=("AML.T0010",),
    controls=_CONTROLS,
    example="model.keras: config.json appears twice",
    tags=_TAGS,
)

PATH_IN_NAME = Rule(
    id="GAR-KRS-102",
    name="keras-layer-name-path-traversal",
    title="Keras layer or object name contains a path",
    severity=Severity.HIGH,
    description=(
        "A layer or object name contains a path separator or '..'. Keras uses names to build paths "
        "of weight stores on disk when it loads large models, and a crafted name writes outside "
        "the temporary directory (CVE-2026-12479)."
    ),
    remediation="Do not load the model; names produced by Keras never contain path separators.",
    cwe=("CWE-22",),
    owasp_ml=("ML06",),
    atlas=("AML.T0010",),
    controls=_CONTROLS,
    example='"name": "../../../home/user/.bashrc"',
    tags=_TAGS,
)

CONFIG_LIMIT = Rule(
    id="GAR-KRS-201",
    name="keras-config-over-limit",
    title="Keras config could not be read within Garrison's limits",
    severity=Severity.MEDIUM,
    description=(
        "The model config is larger, deeper or further into the file than the scanner reads, or "
        "could not be found at all in a file that claims to be a Keras model. Whatever it holds "
        "was not checked, and oversized configs are themselves a denial-of-service vector."
    ),
    remediation="Review the model by other means before loading it, or raise the limit deliberately.",
    cwe=("CWE-400",),
    owasp_ml=("ML06",),
    owasp_llm=("LLM10",),
    atlas=("AML.T0010",),
    controls=_CONTROLS,
    example="model.h5: no model_config found in the first 256 MiB",
    tags=_TAGS,
)

RULES: tuple[Rule, ...] = (
    LAMBDA_BYTECODE,
    EXTERNAL_REFERENCE,
    DANGEROUS_KERAS_FUNCTION,
    CUSTOM_OBJECT,
    EXTERNAL_RESOURCE_LAYER,
    MALFORMED_CONFIG,
    PATH_IN_NAME,
    CONFIG_LIMIT,
)
"""Every rule the Keras scanners can emit."""
