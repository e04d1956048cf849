"""Rules the engine itself raises: limits hit and links that lead out of the scanned tree."""

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

ENGINE_RULES: tuple[Rule, ...] = (SYMLINK_ESCAPES_ROOT, SCAN_LIMIT_REACHED)
