"""Rules the engine itself raises: limits hit, links that lead out of the scanned tree, archive abuse."""

from __future__ import annotations

from garrison.core.rules import Rule
from garrison.core.severity import Severity

SYMLINK_ESCAPES_ROOT = Rule(
    id="GAR-SCAN-101",
    name="symlink-escapes-scan-root",
    title="Symbolic link points outside the scanned tree",
    severity=Severity.MEDIUM,
    description=(
        "A symbolic link inside the scanned directory points to a file or directory outside it. "
        "Tools that follow links while loading a model or dataset read whatever the link names, "
        "which lets a repository smuggle in files that were never reviewed, or read files such "
        "as credentials from the machine that loads it. Garrison does not follow such links."
    ),
    remediation=(
        "Replace the link with the file it should contain, or remove it. Model and dataset "
        "directories should be self-contained."
    ),
    cwe=("CWE-59", "CWE-22"),
    owasp_ml=("ML06",),
    controls=("NIST-AI-RMF:MAP-4.1", "ISO-42001:A.7.5"),
)

SCAN_LIMIT_REACHED = Rule(
    id="GAR-SCAN-201",
    name="scan-limit-reached",
    title="A scan limit was reached; part of the input was not scanned",
    severity=Severity.MEDIUM,
    description=(
        "The input exceeded a bound Garrison keeps to protect itself (number of files, size "
        "of a file). Inputs built to exhaust scanners are a known way to hide a payload behind "
        "the work a scanner gives up on, so hitting a limit is reported, and the run is "
        "marked incomplete."
    ),
    remediation=(
        "Check why the input is so large. If it is legitimate, raise the limit (max-files, "
        "max-file-bytes) in garrison.toml or with the matching GARRISON_ variable."
    ),
    cwe=("CWE-400", "CWE-409"),
    owasp_ml=("ML06",),
    controls=("NIST-AI-RMF:MEASURE-2.7",),
)

_SUPPLY = ("NIST-AI-RMF:MEASURE-2.7", "ISO-42001:A.10.3", "EU-AI-Act:Art-15", "NIST-SSDF:PW.4.4")
_LIMITS = ("NIST-AI-RMF:MEASURE-2.7", "NIST-SSDF:PW.4.4")

ARCHIVE_PATH_TRAVERSAL = Rule(
    id="GAR-ARC-101",
    name="archive-path-traversal",
    title="Archive member would be written outside the extraction folder",
    severity=Severity.HIGH,
    description=(
        "A member's name is absolute (/etc/cron.d/x, C:\\...) or climbs out with '..'. Extracting the "
        "archive with a tool that trusts names (tarfile before Python 3.12's filters, many unzip helpers "
        "in ML pipelines) writes the file wherever the name points: overwriting code, configuration or "
        "other models (Zip Slip)."
    ),
    remediation=(
        "Do not extract the archive. If it must be used, extract with a tool that refuses such names "
        "(tarfile with filter='data') and report the archive to its publisher."
    ),
    cwe=("CWE-22", "CWE-23", "CWE-36"),
    owasp_ml=("ML06",),
    owasp_llm=("LLM03",),
    atlas=("AML.T0010",),
    controls=_SUPPLY,
    example="model.tar.gz!../../.bashrc",
    tags=("supply-chain", "archive"),
)

ARCHIVE_LINK_ESCAPES = Rule(
    id="GAR-ARC-102",
    name="archive-link-escapes",
    title="Archive holds a link that points outside the extraction folder",
    severity=Severity.HIGH,
    description=(
        "A symbolic or hard link member points to an absolute path or climbs out with '..'. Once "
        "extracted, reading the link reads a file of the machine (credentials, keys), and writing a later "
        "member through it overwrites one."
    ),
    remediation=(
        "Do not extract the archive. Extract only with a tool that refuses links (tarfile with "
        "filter='data'), and ask the publisher for an archive without them."
    ),
    cwe=("CWE-59", "CWE-22"),
    owasp_ml=("ML06",),
    owasp_llm=("LLM03",),
    atlas=("AML.T0010",),
    controls=_SUPPLY,
    example="weights.tar!config.json -> /home/user/.ssh/id_rsa",
    tags=("supply-chain", "archive"),
)

ARCHIVE_MEMBER_UNREADABLE = Rule(
    id="GAR-ARC-103",
    name="archive-member-unreadable",
    title="Archive member could not be opened for scanning",
    severity=Severity.MEDIUM,
    description=(
        "A member is encrypted, compressed with a method Garrison cannot read, or its data is broken, "
        "so its content was not scanned. A loader with the password or the codec will still read it."
    ),
    remediation=(
        "Obtain the content in a plain archive (or install the archive extra: pip install "
        "'garrison[archives]') and scan again."
    ),
    cwe=("CWE-20",),
    owasp_ml=("ML06",),
    atlas=("AML.T0010",),
    controls=_SUPPLY,
    example="bundle.zip!model.pt: encrypted member",
    tags=("supply-chain", "archive"),
)

ARCHIVE_BOMB = Rule(
    id="GAR-ARC-201",
    name="archive-decompression-bomb",
    title="Archive expands far more than its size (decompression bomb)",
    severity=Severity.HIGH,
    description=(
        "A compressed member or stream expands more than the expansion-ratio limit allows, or past the "
        "total expanded-bytes limit. Such inputs exhaust disk and memory of whatever unpacks them, and "
        "make scanners give up on the rest of the archive, where a payload can wait."
    ),
    remediation="Do not unpack the archive; find out why it is built this way.",
    cwe=("CWE-409", "CWE-400"),
    owasp_ml=("ML06",),
    owasp_llm=("LLM10",),
    atlas=("AML.T0029",),
    controls=_LIMITS,
    example="bundle.zip!zeros.bin: 1 KiB expands to 4 GiB",
    tags=("supply-chain", "archive", "resource-limit"),
)

ARCHIVE_LIMIT_REACHED = Rule(
    id="GAR-ARC-202",
    name="archive-limit-reached",
    title="Archive is nested too deep or holds too many members to scan fully",
    severity=Severity.MEDIUM,
    description=(
        "The archive exceeded the nesting-depth or member-count limit, so part of it was not scanned and "
        "the run is incomplete. Deep nesting and huge member counts are ways to hide a payload behind "
        "the work a scanner gives up on."
    ),
    remediation="Flatten the archive, or scan its content directly.",
    cwe=("CWE-400", "CWE-674"),
    owasp_ml=("ML06",),
    owasp_llm=("LLM10",),
    atlas=("AML.T0029",),
    controls=_LIMITS,
    example="a.zip!b.zip!c.zip!d.zip!e.zip: nesting deeper than 4",
    tags=("supply-chain", "archive", "resource-limit"),
)

ARCHIVE_RULES: tuple[Rule, ...] = (
    ARCHIVE_PATH_TRAVERSAL,
    ARCHIVE_LINK_ESCAPES,
    ARCHIVE_MEMBER_UNREADABLE,
    ARCHIVE_BOMB,
    ARCHIVE_LIMIT_REACHED,
)
"""Rules the engine raises while opening archives (``GAR-ARC``)."""

ENGINE_RULES: tuple[Rule, ...] = (SYMLINK_ESCAPES_ROOT, SCAN_LIMIT_REACHED, *ARCHIVE_RULES)
