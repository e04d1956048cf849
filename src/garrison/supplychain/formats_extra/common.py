"""Building findings and reading files within limits, the same way in every scanner of this family."""

from __future__ import annotations

import mmap
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from garrison.core.errors import InputError
from garrison.core.evidence import Evidence
from garrison.core.findings import Finding, Location
from garrison.core.registry import FileTarget
from garrison.core.rules import Rule
from garrison.core.severity import Confidence, Severity

_SEPARATORS = re.compile(r"[!/\\]")


def file_name(target: FileTarget) -> str:
    """The name the user sees: the last part of the locator (an archive member's own name)."""
    return _SEPARATORS.split(target.asset.locator)[-1] or target.path.name


def finding(
    detector: str,
    rule: Rule,
    target: FileTarget,
    message: str,
    evidence: tuple[Evidence, ...] = (),
    *,
    location: Location | None = None,
    severity: Severity | None = None,
    confidence: Confidence = Confidence.HIGH,
) -> Finding:
    """A finding of ``rule`` on ``target``, raised by ``detector``."""
    return Finding.create(
        rule=rule,
        asset=target.asset,
        message=message,
        detector=detector,
        severity=severity,
        confidence=confidence,
        location=location,
        evidence=evidence,
    )


def short(text: str, limit: int = 120) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis, control characters made visible."""
    cleaned = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text[: limit + 1])
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


@contextmanager
def mapped(path: Path) -> Iterator[bytes | mmap.mmap]:
    """The file's bytes, memory-mapped read-only (an empty ``bytes`` for an empty file).

    Mapping lets a parser skip gigabytes of tensor data by arithmetic instead of reading it.
    """
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    with handle:
        view: mmap.mmap | None = None
        try:
            if path.stat().st_size:
                view = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: cannot be mapped for reading ({exc})") from None
        if view is None:
            yield b""
            return
        try:
            yield view
        finally:
            view.close()
