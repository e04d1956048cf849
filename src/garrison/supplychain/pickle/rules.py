"""Rules of the pickle family (``GAR-PKL``): 0xx code execution, 1xx tampering, 2xx resources.

Ids are never reused.
"""

from __future__ import annotations

from garrison.core.rules import Rule
from garrison.core.severity import Severity

_CONTROLS = (
    "NIST-AI-RMF:MANAGE-3.1",
    "NIST-AI-RMF:MEASURE-2.7",
    "ISO-42001:A.10.3",
    "EU-AI-Act:Art-15",
    "NIST-SSDF:PW.4.4",
)
_ATLAS = ("AML.T0010.003", "AML.T0011.000")
_LOAD_ADVICE = (
    "Do not load the file with pickle, torch.load(weights_only=False), joblib.load or "
    "numpy.load(allow_pickle=True). Get the model from its publisher, verify its digest or "
    "signature, and prefer a data-only format (safetensors, ONNX). "
)

DANGEROUS_CALLABLE = Rule(
    id="GAR-PKL-001",
    name="pickle-imports-dangerous-callable",
    title="Pickle imports a callable known to run code, spawn processes, write files or reach the network",
    severity=Severity.CRITICAL,
    description=(
        "Loading the pickle imports a global on Garrison's curated list of dangerous callables: "
        "os.system, subprocess, builtins.eval/exec/getattr, importlib, pkgutil.resolve_name, runpy, "
        "code/timeit/cProfile/trace runners, ctypes, pip, shutil, logging file handlers, network "
        "clients, nested pickle/torch loaders and the like. The unpickler imports and usually calls "
        "it while loading: this is how pickle payloads execute."
    ),
    remediation=_LOAD_ADVICE + "Treat the machine that loaded it as compromised.",
    cwe=("CWE-502", "CWE-94"),
    owasp_ml=("ML06",),
    owasp_llm=("LLM03",),
    atlas=_ATLAS,
    controls=_CONTROLS,
    example="GLOBAL 'posix system' at opcode 2, called by REDUCE at opcode 6",
    tags=("supply-chain", "pickle", "code-execution"),
)

UNLISTED_GLOBAL = Rule(
    id="GAR-PKL-002",
    name="pickle-imports-unlisted-global",
    title="Pickle imports a global that is not on the allowlist of model constructors",
    severity=Severity.HIGH,
    description=(
        "Loading the pickle imports a class or function outside the allowlist of constructors "
        "ordinary models need (tensor and storage rebuilders, NumPy reconstruction, scikit-learn "
        "estimators, standard torch.nn layers...). Denylists are bypassed by every new gadget; an "
        "allowlist is not. Custom classes (a model class defined in __main__ or a user module) land "
        "here too: loading them runs that module's code."
    ),
    remediation=(
        _LOAD_ADVICE + "If the global is a class you own and trust, load the file with an explicit "
        "allowlist that names it (torch.serialization.add_safe_globals, a restricted Unpickler)."
    ),
    cwe=("CWE-502",),
    owasp_ml=("ML06",),
    owasp_llm=("LLM03",),
    atlas=_ATLAS,
    controls=_CONTROLS,
    example="STACK_GLOBAL '__main__' 'MyNet' at opcode 12",
    tags=("supply-chain", "pickle"),
)

DYNAMIC_IMPORT = Rule(
    id="GAR-PKL-003",
    name="pickle-dynamic-import",
    title="Pickle imports or calls something whose identity is only known at load time",
    severity=Severity.CRITICAL,
    description=(
        "The pickle imports with operands computed while loading (STACK_GLOBAL or INST fed by a "
        "call result), through the copyreg extension registry (EXT1/2/4), calls a value that is not "
        "an imported global, or sets attributes on an imported class, function or module with BUILD "
        "(monkey-patching shared interpreter state). No ordinary model does this; it exists to hide "
        "what runs from scanners."
    ),
    remediation=_LOAD_ADVICE,
    cwe=("CWE-502", "CWE-470"),
    owasp_ml=("ML06",),
    owasp_llm=("LLM03",),
    atlas=_ATLAS,
    controls=_CONTROLS,
    example="STACK_GLOBAL whose module name is the result of a REDUCE",
    tags=("supply-chain", "pickle", "evasion"),
)

NESTED_PICKLE = Rule(
    id="GAR-PKL-004",
    name="nested-pickle",
    title="Pickle carries another pickle that imports globals outside the allowlist",
    severity=Severity.HIGH,
    description=(
        "A bytes or str constant inside the pickle is itself a pickle, and that inner pickle "
        "imports globals outside the allowlist. Hiding a payload in a nested pickle (handed to "
        "pickle.loads, torch.load or numpy.load at load time) is a known way past scanners that "
        "only look at the outer stream. The inner pickle's own findings follow, with its nesting "
        "path in their location."
    ),
    remediation=_LOAD_ADVICE,
    cwe=("CWE-502",),
    owasp_ml=("ML06",),
    owasp_llm=("LLM03",),
    atlas=_ATLAS,
    controls=_CONTROLS,
    example="BINBYTES at offset 40 holds a protocol 4 pickle importing os.system",
    tags=("supply-chain", "pickle", "evasion"),
)

MALFORMED_PICKLE = Rule(
    id="GAR-PKL-101",
    name="malformed-pickle",
    title="Pickle stream is truncated or invalid",
    severity=Severity.MEDIUM,
    description=(
        "The opcode stream breaks before STOP: an invalid opcode, a truncated argument, a stack "
        "underflow, a missing memo key. The real unpickler runs every opcode before the break, so a "
        "payload placed before it executes and then the load fails; scanners that give up on broken "
        "pickles miss it. Garrison reports what comes before the break with the other rules."
    ),
    remediation=(
        "Do not load the file. Fetch it again from its source and compare digests; if the source "
        "copy is also broken, report it to its publisher."
    ),
    cwe=("CWE-20", "CWE-502"),
    owasp_ml=("ML06",),
    atlas=_ATLAS,
    controls=("NIST-AI-RMF:MEASURE-2.7", "ISO-42001:A.7.5", "EU-AI-Act:Art-15"),
    example="invalid opcode 0xff at offset 120, after a REDUCE of posix.system",
    tags=("supply-chain", "pickle", "integrity"),
)

MULTIPLE_PICKLES = Rule(
    id="GAR-PKL-102",
    name="multiple-pickles-in-stream",
    title="File holds more than one pickle, or data after the pickle's STOP",
    severity=Severity.MEDIUM,
    description=(
        "After the first pickle's STOP the file continues: with another pickle (loaders that call "
        "pickle.load repeatedly, or a custom loader, run it) or with bytes that are not a pickle. "
        "Scanners that stop at the first STOP miss a second pickle. Graded high when a later pickle "
        "imports anything outside the allowlist."
    ),
    remediation=(
        "Find out which program wrote the extra data. Regenerate the file with the tool that "
        "should have produced it, and verify its digest."
    ),
    cwe=("CWE-502", "CWE-436"),
    owasp_ml=("ML06",),
    atlas=_ATLAS,
    controls=("NIST-AI-RMF:MEASURE-2.7", "ISO-42001:A.7.5"),
    example="second pickle at offset 58 imports builtins.exec",
    tags=("supply-chain", "pickle", "evasion"),
)

RESOURCE_LIMIT = Rule(
    id="GAR-PKL-201",
    name="pickle-resource-limit",
    title="Pickle analysis hit a resource limit",
    severity=Severity.MEDIUM,
    description=(
        "The pickle needs more opcodes, memo entries, stack items, bytes or nesting than Garrison's "
        "bounds allow. Ordinary models stay far below them; a pickle built to exhaust a scanner or "
        "loader (a denial-of-service attempt, or an attempt to hide a payload past the bound) does "
        "not. What came before the limit is reported by the other rules."
    ),
    remediation=(
        "Do not load the file until you know why it is so large or deep. Raise the bound only for "
        "files from a trusted source."
    ),
    cwe=("CWE-400", "CWE-502"),
    owasp_ml=("ML06",),
    owasp_llm=("LLM10",),
    atlas=_ATLAS,
    controls=("NIST-AI-RMF:MEASURE-2.7", "EU-AI-Act:Art-15"),
    example="max_opcodes (50,000,000) reached at offset 1,073,741,824",
    tags=("supply-chain", "pickle", "resource"),
)

RULES: tuple[Rule, ...] = (
    DANGEROUS_CALLABLE,
    UNLISTED_GLOBAL,
    DYNAMIC_IMPORT,
    NESTED_PICKLE,
    MALFORMED_PICKLE,
    MULTIPLE_PICKLES,
    RESOURCE_LIMIT,
)
"""Every rule the pickle scanner can emit."""
