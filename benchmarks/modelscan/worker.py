"""One scanner's Python API, driven line by line: a path in on stdin, one JSON verdict out on stdout.

Runs inside the scanner's own virtual environment (it imports nothing from Garrison unless the tool is
Garrison), so it uses only the standard library besides the tool. ``run.py`` starts one worker per
tool, sends it every corpus file, and restarts it when a file kills it or runs past the timeout.

Each answer is ``{"flagged": {variant: bool}, "status": "ok" | "error" | "skipped", "detail": str,
"seconds": float}``: ``error`` when the tool itself reported that it could not scan the file,
``skipped`` when it did not look at the file (unsupported extension or format). An exception that
escapes the tool's API is answered as ``{"crash": "..."}``.

Usage: ``PYTHON worker.py TOOL`` with TOOL one of garrison, picklescan, modelscan, fickling, modelaudit;
``PYTHON worker.py --once TOOL PATH`` scans a file or a whole directory in one process and exits 1 if
anything was flagged (the directory mode fickling lacks).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
import zipfile
from collections.abc import Callable
from typing import Any

Verdict = dict[str, Any]


def _garrison() -> Callable[[str], Verdict]:
    from pathlib import Path

    from garrison.core.config import Settings
    from garrison.core.severity import Severity
    from garrison.detectors import default_registry
    from garrison.engine.runner import scan_path

    registry = default_registry()
    settings = Settings(store=False)

    def scan(path: str) -> Verdict:
        report = scan_path(Path(path), settings=settings, registry=registry)
        high = sorted({f.rule.id for f in report.findings if f.severity >= Severity.HIGH})
        rules = sorted({f.rule.id for f in report.findings})
        status = "error" if report.errors else "ok"
        detail = ",".join(high) or ",".join(rules)
        if report.errors:
            detail += " | " + "; ".join(str(e.message)[:120] for e in report.errors[:2])
        return {"flagged": {"": bool(high)}, "status": status, "detail": detail, "rules": rules}

    return scan


def _picklescan() -> Callable[[str], Verdict]:
    from picklescan.scanner import SafetyLevel, scan_file_path

    logging.getLogger("picklescan").setLevel(logging.CRITICAL)

    def scan(path: str) -> Verdict:
        default = scan_file_path(path)
        strict = scan_file_path(path, strict=True)
        dangerous = [f"{g.module}.{g.name}" for g in default.globals if g.safety == SafetyLevel.Dangerous]
        suspicious = [f"{g.module}.{g.name}" for g in strict.globals if g.safety != SafetyLevel.Innocuous]
        status = "error" if default.scan_err else ("ok" if default.scanned_files else "skipped")
        return {
            "flagged": {
                "": default.issues_count > 0 or default.infected_files > 0,
                "strict": strict.issues_count > 0 or strict.infected_files > 0,
            },
            "status": status,
            "detail": ",".join(sorted(set(dangerous))[:4]) or ",".join(sorted(set(suspicious))[:4]),
        }

    return scan


def _modelscan() -> Callable[[str], Verdict]:
    from modelscan.modelscan import ModelScan

    logging.disable(logging.CRITICAL)

    def scan(path: str) -> Verdict:
        report = ModelScan().scan(path)
        issues = report.get("issues", [])
        errors = report.get("errors", [])
        scanned = report["summary"]["scanned"]["total_scanned"]
        detail = ",".join(sorted({f"{i.get('severity')}:{i.get('operator')}" for i in issues})[:4])
        if errors:
            detail += " | " + "; ".join(str(e.get("description", e))[:120] for e in errors[:2])
        status = "error" if errors else ("ok" if scanned else "skipped")
        return {"flagged": {"": bool(issues)}, "status": status, "detail": detail}

    return scan


def _fickling() -> Callable[[str], Verdict]:
    import tarfile

    from fickling.analysis import Severity
    from fickling.fickle import Pickled, StackedPickle
    from fickling.loader import scan_file, scan_zip_archive
    from numpy.lib import format as npformat

    raw_extensions = {".bin", ".pkl", ".pickle"}
    zip_extensions = {".pt", ".pth"}

    def is_numpy(path: str) -> bool:
        with open(path, "rb") as handle:
            try:
                npformat.read_magic(handle)
            except ValueError:
                return False
        return True

    def is_pickle(path: str) -> bool:
        # fickling.polyglot.check_pickle, which cannot be imported without torch
        with open(path, "rb") as handle:
            try:
                return len(Pickled.load(handle)) > 2
            except Exception:  # noqa: BLE001 - fickling's own check treats any failure as 'not a pickle'
                handle.seek(0)
                try:
                    return any(len(p) > 2 for p in StackedPickle.load(handle).pickled)
                except Exception:  # noqa: BLE001
                    return False

    def scan(path: str) -> Verdict:
        # The routing of fickling's own Hugging Face scanner (fickling.cli._scan_huggingface).
        ext = os.path.splitext(path)[1].lower()
        if zipfile.is_zipfile(path) or ext in zip_extensions:
            results = list(scan_zip_archive(path, graceful=True).values())
        elif is_pickle(path) or ext in raw_extensions:
            results = [scan_file(path, graceful=True)]
        else:
            kind = "tar" if tarfile.is_tarfile(path) else "numpy" if is_numpy(path) else "unknown format"
            return {"flagged": {"": False, "overt": False}, "status": "skipped", "detail": kind}
        worst = max((r.severity for r in results), default=Severity.LIKELY_SAFE)
        errors = [e for r in results for e in r.errors]
        return {
            "flagged": {
                "": worst > Severity.LIKELY_SAFE,
                "overt": worst >= Severity.LIKELY_OVERTLY_MALICIOUS,
            },
            "status": "error" if errors else ("ok" if results else "skipped"),
            "detail": worst.name + (" | " + "; ".join(errors[:2])[:200] if errors else ""),
        }

    return scan


def _modelaudit() -> Callable[[str], Verdict]:
    os.environ.setdefault("PROMPTFOO_DISABLE_TELEMETRY", "1")
    from modelaudit.core import determine_exit_code, scan_model_directory_or_file

    logging.disable(logging.CRITICAL)

    def scan(path: str) -> Verdict:
        # The arguments `modelaudit scan PATH --no-cache` passes for a local path, default settings.
        result = scan_model_directory_or_file(
            path,
            timeout=3600,
            max_file_size=0,
            max_total_size=0,
            strict_license=False,
            skip_file_types=True,
            use_hf_whitelist=True,
            cache_enabled=False,  # as --no-cache: every file is really scanned
            cache_dir=None,
            enable_progress=False,
        )
        code = determine_exit_code(result)
        serious = [
            i
            for i in result.issues
            if str(getattr(i.severity, "value", i.severity)) in {"warning", "critical"}
        ]
        detail = ",".join(sorted({f"{i.severity.value}:{(i.message or '')[:60]}" for i in serious})[:3])
        status = {0: "ok", 1: "ok", 2: "error"}.get(code, "error")
        if code == 2:
            detail += " | exit 2"
        return {"flagged": {"": code == 1}, "status": status, "detail": detail, "exit": code}

    return scan


TOOLS: dict[str, Callable[[], Callable[[str], Verdict]]] = {
    "garrison": _garrison,
    "picklescan": _picklescan,
    "modelscan": _modelscan,
    "fickling": _fickling,
    "modelaudit": _modelaudit,
}


def once(tool: str, target: str) -> int:
    """Scan a file, or every file under a directory, in this one process; exit 1 if any is flagged."""
    scan = TOOLS[tool]()
    paths = (
        [target]
        if os.path.isfile(target)
        else sorted(os.path.join(root, name) for root, _, names in os.walk(target) for name in names)
    )
    flagged = 0
    for path in paths:
        verdict = scan(path)
        flagged += bool(verdict["flagged"][""])
    print(f"{len(paths)} files, {flagged} flagged")
    return 1 if flagged else 0


def main() -> None:
    if sys.argv[1] == "--once":
        sys.exit(once(sys.argv[2], sys.argv[3]))
    tool = sys.argv[1]
    # Keep the protocol on a private copy of stdout; whatever the tool prints goes to stderr.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    scan = TOOLS[tool]()
    out.write(json.dumps({"ready": tool}) + "\n")
    for line in sys.stdin:
        path = line.rstrip("\n")
        start = time.perf_counter()
        try:
            verdict = scan(path)
        except Exception as exc:  # noqa: BLE001 - an exception escaping the tool's API is a crash
            tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
            verdict = {"crash": tb[:300]}
        verdict["seconds"] = time.perf_counter() - start
        out.write(json.dumps(verdict, default=str) + "\n")


if __name__ == "__main__":
    main()
