"""The file inventory: what format each file really is, and what that means for its risk."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import ClassVar

from garrison.core.errors import InputError
from garrison.core.evidence import ByteRange, Evidence, Observation
from garrison.core.findings import Finding, Location
from garrison.core.registry import FileDetector, FileTarget
from garrison.core.rules import Rule
from garrison.formats import FORMATS, Identification, formats_for_extension, identify
from garrison.inventory.rules import (
    CODE_EXECUTING_FORMAT,
    DISGUISED_CODE_EXECUTING_FILE,
    EXTENSION_CONTENT_MISMATCH,
    MALFORMED_MODEL_FILE,
    RULES,
)

#: Nesting (``!``) and path separators; a backslash that starts an escape core.text wrote (``\xff``,
#: ``\ud800``) is part of the name.
_SEPARATORS = re.compile(r"[!/]|\\(?!x[0-9a-f]{2}|u[0-9a-f]{4})")


def _file_name(target: FileTarget) -> str:
    """The name the user sees: the last part of the locator (an archive member's own name)."""
    return _SEPARATORS.split(target.asset.locator)[-1] or target.path.name


def _a(label: str) -> str:
    """``label`` with its indefinite article: an ONNX model, an HDF5, an unknown binary, a CSV."""
    vowel = label[:1].lower() in "aeiou" or label.startswith(("HDF", "LZ4", "xz"))
    return f"{'an' if vowel else 'a'} {label}"


def _extension(name: str) -> str:
    return "." + name.rsplit(".", 1)[-1].lower() if "." in name.lstrip(".") else "(none)"


def _label(fmt: str) -> str:
    return FORMATS[fmt].label if fmt in FORMATS else fmt


def _promise(promised: frozenset[str]) -> str:
    return " or ".join(sorted({_label(p) for p in promised}))


class FileInventory(FileDetector):
    """Identifies every file's format from its bytes and flags risky or inconsistent ones.

    Emits GAR-FMT-001 for formats that run code on load, GAR-FMT-101 when such a file is named as
    a data-only format, GAR-FMT-102 for any other extension/content mismatch, and GAR-FMT-103 when
    a model, data or archive file is structurally broken.
    """

    name: ClassVar[str] = "file-inventory"
    summary: ClassVar[str] = "Identifies each file's format from its content and compares it with its name."
    rules: ClassVar[tuple[Rule, ...]] = RULES
    formats: ClassVar[frozenset[str]] = frozenset()

    def identification(self, target: FileTarget) -> Identification:
        """The target's identification: the engine's, or a fresh one (bounded reads) if it has none."""
        if target.asset.format in FORMATS:
            return Identification(
                format=target.asset.format, details=target.details, malformed=target.malformed
            )
        size = target.asset.size
        if size is None:
            try:
                size = target.path.stat().st_size
            except OSError as exc:
                raise InputError(f"{target.path}: cannot be read ({exc.strerror})") from None
        return identify(target.path, target.head, size)

    def scan(self, target: FileTarget) -> Iterator[Finding]:
        """Yield the inventory findings for one file."""
        found = self.identification(target)
        fmt, info = found.format, FORMATS[found.format]
        name = _file_name(target)
        ext = _extension(name)
        observed = Observation(name="content-format", actual=fmt)

        if info.executes_code:
            lam = " Its config contains a Lambda layer." if found.detail("lambda") == "yes" else ""
            yield self._finding(
                CODE_EXECUTING_FORMAT,
                target,
                f"{name} is {_a(info.label)} file; loading it the usual way can run code.{lam}",
                (observed,),
            )

        promised = formats_for_extension(name)
        empty_ok = fmt == "empty" and not any(FORMATS[p].category == "model" for p in promised or ())
        if promised and fmt not in promised and not empty_ok:
            evidence = Observation(name="content-format", actual=fmt, expected=" | ".join(sorted(promised)))
            if info.executes_code and any(not FORMATS[p].executes_code for p in promised):
                yield self._finding(
                    DISGUISED_CODE_EXECUTING_FILE,
                    target,
                    f"{name} is {_a(info.label)} file, which runs code when loaded, but its {ext} "
                    f"extension promises {_promise(promised)}, which cannot.",
                    (evidence,),
                )
            else:
                yield self._finding(
                    EXTENSION_CONTENT_MISMATCH,
                    target,
                    f"{name} is {_a(info.label)} file, but its {ext} extension promises "
                    f"{_promise(promised)}.",
                    (evidence,),
                )

        if found.malformed is not None:
            evidence_list: list[Evidence] = [observed]
            location = None
            span = found.detail("malformed-range")
            if span is not None:
                start, _, end = span.partition(":")
                evidence_list.append(ByteRange(start=int(start), end=int(end), description=found.malformed))
                location = Location(offset=int(start))
            yield self._finding(
                MALFORMED_MODEL_FILE,
                target,
                f"{name} is a broken {info.label} file: {found.malformed}.",
                tuple(evidence_list),
                location,
            )

    def _finding(
        self,
        rule: Rule,
        target: FileTarget,
        message: str,
        evidence: tuple[Evidence, ...],
        location: Location | None = None,
    ) -> Finding:
        return Finding.create(
            rule=rule,
            asset=target.asset,
            message=message,
            detector=self.name,
            location=location,
            evidence=evidence,
        )
