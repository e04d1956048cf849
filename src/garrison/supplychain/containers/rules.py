"""Rules of model containers: PyTorch checkpoints (``GAR-PT``) and NumPy files (``GAR-NPY``).

Ranges: 0xx code execution, 1xx tampering and structure, 2xx resource exhaustion. Pickle payloads
found inside containers are reported with the pickle rules (``GAR-PKL``). Ids are never reused.
"""

from __future__ import annotations

from garrison.core.rules import Rule
from garrison.core.severity import Severity

_SUPPLY = ("NIST-AI-RMF:MEASURE-2.7", "ISO-42001:A.10.3", "EU-AI-Act:Art-15", "NIST-SSDF:PW.4.4")
_TAMPER = ("NIST-AI-RMF:MEASURE-2.7", "ISO-42001:A.7.5", "EU-AI-Act:Art-15", "NIST-SSDF:PS.3.1")


def _tamper(
    rule_id: str,
    name: str,
    title: str,
    severity: Severity,
    description: str,
    remediation: str,
    example: str,
    cwe: tuple[str, ...] = ("CWE-20",),
    family: str = "supply-chain",
) -> Rule:
    return Rule(
        id=rule_id,
        name=name,
        title=title,
        severity=severity,
        description=description,
        remediation=remediation,
        cwe=cwe,
        owasp_ml=("ML06",),
        owasp_llm=("LLM03",),
        atlas=("AML.T0010.003",),
        controls=_TAMPER,
        example=example,
        tags=(family, "tampering"),
    )


_RESTORE = (
    "Do not load the file. Get a fresh copy from its publisher, compare its digest with the published one, "
    "and convert the weights to safetensors."
)

TORCHSCRIPT_CODE_EXECUTION = Rule(
    id="GAR-PT-001",
    name="torchscript-dangerous-operation",
    title="TorchScript code calls an operation that reads or writes files, loads libraries or evaluates code",
    severity=Severity.HIGH,
    description=(
        "A TorchScript archive carries code (the code/ members) that torch.jit.load compiles and runs "
        "when the model is loaded or called, and torch.load hands TorchScript archives to torch.jit.load. "
        "Operations such as aten::from_file and aten::save, torch.ops.load_library or references to "
        "Python built-ins let that code read or overwrite files or load native code; ordinary exported "
        "models never need them. They were used to turn torch.load(weights_only=True) into code execution "
        "(CVE-2025-32434)."
    ),
    remediation=_RESTORE
    + " Upgrade PyTorch to 2.6 or later, which refuses TorchScript in weights-only loads.",
    cwe=("CWE-94", "CWE-502"),
    owasp_ml=("ML06",),
    owasp_llm=("LLM03",),
    atlas=("AML.T0010.003", "AML.T0011.000"),
    controls=_SUPPLY,
    example="archive/code/__torch__.py: torch.ops.aten.from_file('/etc/passwd', ...)",
    tags=("supply-chain", "code-execution"),
)

ZIP_CRC_MISMATCH = _tamper(
    "GAR-PT-101",
    "zip-crc-mismatch",
    "Zip member's content does not match its CRC-32",
    Severity.MEDIUM,
    "The member's bytes do not match the CRC-32 its directory entry declares. torch.load does not check "
    "CRCs (PyTorch builds miniz without its CRC checks), so it loads the member as it is, while scanners "
    "built on Python's zipfile stop with BadZipFile and report nothing: a known way to slip a pickle "
    "payload past them. Garrison scans the bytes torch would load.",
    _RESTORE,
    "archive/data.pkl: CRC-32 is 0x00000000, the content's is 0x8f1d2c3b",
)

ZIP_NAME_MISMATCH = _tamper(
    "GAR-PT-102",
    "zip-local-central-name-mismatch",
    "Zip member's local header names a different file than the central directory",
    Severity.HIGH,
    "The local file header of a member names a different file than its central-directory entry. Readers "
    "that walk local headers (streaming unzip tools, some scanners) see one name, and torch.load, which "
    "looks members up in the central directory and ignores local names, sees the other. Ordinary writers "
    "never produce this; it exists to show scanners something different from what the loader reads.",
    _RESTORE,
    "central directory: archive/data.pkl, local header: archive/readme.txt",
)

ZIP_DUPLICATE_MEMBER = _tamper(
    "GAR-PT-103",
    "zip-duplicate-member",
    "Zip archive holds two members with the same name",
    Severity.HIGH,
    "Two members share a name (PyTorch compares names without regard to case). Which one a reader returns "
    "differs between implementations: torch.load binary-searches a sorted directory, Python's zipfile "
    "takes the last. A scanner that reads one copy can be shown the harmless one while the loader picks "
    "the other. Garrison scans every copy.",
    _RESTORE,
    "archive/data.pkl appears twice (entries 0 and 7)",
)

ZIP_PREFIX_DATA = _tamper(
    "GAR-PT-104",
    "zip-prefix-data",
    "Bytes before the zip archive",
    Severity.MEDIUM,
    "The file has bytes before the first zip member. torch.load decides by the first four bytes: without "
    "the zip signature at offset 0 it treats the file as a legacy checkpoint and unpickles it from the "
    "start, so whatever pickle hides in the prefix runs; tools that look for the zip directory from the end "
    "of the file see only the archive. Garrison scans both.",
    _RESTORE,
    "412 bytes before the archive; the prefix parses as a pickle",
)

ZIP_UNSUPPORTED_FLAGS = _tamper(
    "GAR-PT-105",
    "zip-unusual-member-encoding",
    "Zip member is encrypted, a patch, or uses a compression method loaders do not read",
    Severity.MEDIUM,
    "A member has the encryption, strong-encryption or patch flag bits, a masked directory, or a "
    "compression method other than stored or deflate. Model writers never produce these. Some readers "
    "ignore the bits and read the data, others refuse, and a scanner cannot see inside encrypted data, "
    "so such members hide content from review.",
    _RESTORE,
    "archive/data.pkl: flag bits 0x0801 (encrypted)",
)

ZIP_HEADER_MISMATCH = _tamper(
    "GAR-PT-106",
    "zip-local-central-field-mismatch",
    "Zip member's local header disagrees with its directory entry",
    Severity.MEDIUM,
    "The local header's compression method, encryption bit, sizes or CRC differ from the central "
    "directory entry. torch.load takes every one of these from the central directory; streaming readers "
    "take them from the local header, so the two decode different data.",
    _RESTORE,
    "archive/data.pkl: local header says deflate, directory says stored",
)

TORCH_ARCHIVE_MALFORMED = _tamper(
    "GAR-PT-107",
    "pytorch-archive-malformed",
    "PyTorch checkpoint is broken in a way that changes what loaders read",
    Severity.MEDIUM,
    "The checkpoint cannot be read the way torch.load reads it (no member under the archive prefix named "
    "data.pkl, a member outside the prefix, a directory offset that only a lenient reader can follow, "
    "data cut short). Broken archives are read differently by different tools; Garrison scans what each "
    "view can read and reports the break.",
    _RESTORE,
    "the first member is 'data.pkl', not inside a folder: torch.load refuses the archive",
)

NPY_MALFORMED = _tamper(
    "GAR-NPY-101",
    "numpy-header-malformed",
    "NumPy array header is broken",
    Severity.MEDIUM,
    "The .npy header (in a file or an .npz member) cannot be parsed, or its object array data is missing. "
    "numpy.load would fail or read something else; broken headers are used to make scanners skip an "
    "object array that a lenient loader still unpickles.",
    _RESTORE,
    "weights.npz!w.npy: header is not a dict",
    family="numpy",
)

NPZ_MEMBER_TAMPERED = _tamper(
    "GAR-NPY-102",
    "npz-member-tampered",
    "NumPy npz member is duplicated, mislabelled or fails its CRC",
    Severity.MEDIUM,
    "A member of the .npz archive has a CRC-32 that does not match its content, a duplicate name, or a "
    "local header that disagrees with the directory. numpy.load reads members through Python's zipfile, "
    "which checks the CRC only once it reaches the end of the member: an object array's pickle has "
    "already run by then. Scanners that stop at the bad CRC report nothing.",
    _RESTORE,
    "arrays.npz!x.npy: CRC-32 does not match",
    family="numpy",
)

PYTORCH_RULES: tuple[Rule, ...] = (
    TORCHSCRIPT_CODE_EXECUTION,
    ZIP_CRC_MISMATCH,
    ZIP_NAME_MISMATCH,
    ZIP_DUPLICATE_MEMBER,
    ZIP_PREFIX_DATA,
    ZIP_UNSUPPORTED_FLAGS,
    ZIP_HEADER_MISMATCH,
    TORCH_ARCHIVE_MALFORMED,
)
NUMPY_RULES: tuple[Rule, ...] = (NPY_MALFORMED, NPZ_MEMBER_TAMPERED)
RULES: tuple[Rule, ...] = (*PYTORCH_RULES, *NUMPY_RULES)
"""Every rule of this package."""
