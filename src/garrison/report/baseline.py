"""Baselines: an earlier report whose findings are accepted, so only new ones fail a run.

A baseline is any report Garrison wrote as JSON (``--format json``) or SARIF (``--format sarif``).
Its fingerprints are the findings it reported *and* the ones it had itself baselined, so a
baseline carries forward when a newer report replaces it. Because a fingerprint leaves out
positions, "new findings" is a set difference that survives edits of the scanned files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from garrison.core.errors import ConfigError
from garrison.core.results import REPORT_SCHEMA_VERSION, ScanReport
from garrison.report.common import TOOL_NAME
from garrison.report.sarif import FINGERPRINT_KEY, SARIF_VERSION

__all__ = ["apply_baseline", "load_baseline"]

_HINT = "a baseline is a report written by 'garrison scan --format json' or '--format sarif'"


def load_baseline(path: Path) -> frozenset[str]:
    """The fingerprints in a Garrison JSON report or a Garrison SARIF log at ``path``.

    Raise ``ConfigError`` naming the file and what is wrong when it is missing, unreadable, not
    JSON, of an unknown shape, or of a JSON schema major version this Garrison does not read.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"baseline {path}: file not found", hint=_HINT) from None
    except OSError as exc:
        raise ConfigError(f"baseline {path}: cannot be read ({exc.strerror or exc})") from None
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ConfigError(f"baseline {path}: not JSON (not UTF-8 text)", hint=_HINT) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"baseline {path}: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})", hint=_HINT
        ) from None
    if isinstance(data, dict) and "schema_version" in data and "findings" in data:
        return _from_report(path, data)
    if isinstance(data, dict) and "runs" in data and "version" in data:
        return _from_sarif(path, data)
    raise ConfigError(
        f"baseline {path}: unknown shape (neither a Garrison JSON report nor a SARIF log)", hint=_HINT
    )


def apply_baseline(report: ScanReport, fingerprints: Iterable[str]) -> ScanReport:
    """A copy of ``report`` with the findings whose fingerprint is in ``fingerprints`` baselined.

    Findings already baselined stay baselined; applying the same baseline twice changes nothing.
    """
    known = frozenset(fingerprints)
    kept = tuple(f for f in report.findings if f.fingerprint not in known)
    moved = tuple(f for f in report.findings if f.fingerprint in known)
    return replace(report, findings=kept, baselined=report.baselined + moved)


def _from_report(path: Path, data: dict[str, Any]) -> frozenset[str]:
    version = data["schema_version"]
    if not isinstance(version, str) or not version.partition(".")[0].isdigit():
        raise ConfigError(f"baseline {path}: schema_version {version!r} is not MAJOR.MINOR", hint=_HINT)
    major = version.partition(".")[0]
    supported = REPORT_SCHEMA_VERSION.partition(".")[0]
    if major != supported:
        raise ConfigError(
            f"baseline {path}: report schema version {version} is not supported "
            f"(this Garrison reads {supported}.x)",
            hint="write the baseline again with this version of Garrison",
        )
    findings, baselined = data["findings"], data.get("baselined", [])
    if not isinstance(findings, list) or not isinstance(baselined, list):
        raise ConfigError(f"baseline {path}: 'findings' and 'baselined' must be lists", hint=_HINT)
    fingerprints = [_fingerprint_of(path, f, i) for i, f in enumerate(findings)]
    for i, value in enumerate(baselined):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"baseline {path}: baselined[{i}] is not a fingerprint", hint=_HINT)
        fingerprints.append(value)
    return frozenset(fingerprints)


def _fingerprint_of(path: Path, finding: Any, index: int) -> str:
    value = finding.get("fingerprint") if isinstance(finding, dict) else None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"baseline {path}: findings[{index}] has no fingerprint", hint=_HINT)
    return value


def _from_sarif(path: Path, data: dict[str, Any]) -> frozenset[str]:
    if data["version"] != SARIF_VERSION:
        raise ConfigError(
            f"baseline {path}: SARIF version {data['version']!r} is not supported (only {SARIF_VERSION})",
            hint=_HINT,
        )
    runs = data["runs"]
    if not isinstance(runs, list):
        raise ConfigError(f"baseline {path}: 'runs' must be a list", hint=_HINT)
    fingerprints: set[str] = set()
    for r, run in enumerate(runs):
        driver = _get(run, "tool", "driver")
        name = driver.get("name") if isinstance(driver, dict) else None
        if name != TOOL_NAME:
            raise ConfigError(
                f"baseline {path}: runs[{r}] was produced by {name!r}, not by Garrison",
                hint="only SARIF written by Garrison carries Garrison fingerprints",
            )
        results = run.get("results") or []
        if not isinstance(results, list):
            raise ConfigError(f"baseline {path}: runs[{r}].results must be a list", hint=_HINT)
        for i, result in enumerate(results):
            value = _get(result, "partialFingerprints", FINGERPRINT_KEY)
            if not isinstance(value, str) or not value:
                raise ConfigError(
                    f"baseline {path}: runs[{r}].results[{i}] has no partialFingerprints '{FINGERPRINT_KEY}'",
                    hint="the SARIF was written by a Garrison with another fingerprint version, or edited",
                )
            fingerprints.add(value)
    return frozenset(fingerprints)


def _get(data: Any, *keys: str) -> Any:
    """``data[k1][k2]...`` or ``None`` where a level is missing or not an object."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data
