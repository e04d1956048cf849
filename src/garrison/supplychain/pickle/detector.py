"""The pickle scanner: raw pickle, joblib and legacy PyTorch files, memory-mapped and analysed."""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Iterator
from typing import ClassVar

from garrison.core.errors import InputError
from garrison.core.findings import Finding
from garrison.core.registry import FileDetector, FileTarget
from garrison.core.rules import Rule
from garrison.supplychain.pickle.findings import pickle_findings
from garrison.supplychain.pickle.machine import analyze_stream
from garrison.supplychain.pickle.model import PickleAnalysis
from garrison.supplychain.pickle.rules import RULES
from garrison.supplychain.whole import whole_file

LEGACY_TORCH_PICKLES = 5
"""torch.save's legacy layout: magic number, protocol, sys info, the object, storage keys; then raw
storage bytes."""


class PickleScanner(FileDetector):
    """Finds what a pickle would import and call, by symbolic execution of its opcodes.

    Emits GAR-PKL-001 for globals on the critical list, GAR-PKL-002 for any other global outside the
    allowlist, GAR-PKL-003 for imports and calls decided at load time, GAR-PKL-004 for dangerous
    nested pickles, GAR-PKL-101 for broken streams, GAR-PKL-102 for extra pickles or trailing data
    and GAR-PKL-201 when a bound is reached. Never unpickles and never imports what it reads.
    """

    name: ClassVar[str] = "pickle-scanner"
    summary: ClassVar[str] = (
        "Symbolically executes pickle opcode streams and grades every import against an allowlist."
    )
    rules: ClassVar[tuple[Rule, ...]] = RULES
    formats: ClassVar[frozenset[str]] = frozenset({"pickle", "joblib", "pytorch-legacy"})

    def applies_to(self, target: FileTarget) -> bool:
        """Raw pickle streams only: a compressed joblib file is the containers scanner's to decode."""
        if target.asset.format == "joblib" and dict(target.details).get("compression"):
            return False
        return super().applies_to(target)

    def scan(self, target: FileTarget) -> Iterator[Finding]:
        """Yield the findings for one pickle-family file."""
        legacy = target.asset.format == "pytorch-legacy"
        analyses = self.analyse(target, legacy=legacy)
        yield from pickle_findings(
            analyses,
            asset=target.asset,
            detector=self.name,
            expected_pickles=LEGACY_TORCH_PICKLES if legacy else 1,
            allow_trailing=legacy,
        )

    def analyse(self, target: FileTarget, *, legacy: bool) -> list[PickleAnalysis]:
        """Memory-map the file and analyse every pickle in it."""
        max_pickles = LEGACY_TORCH_PICKLES if legacy else None
        whole = whole_file(target)
        if whole is not None:
            return analyze_stream(whole, max_pickles=max_pickles)
        try:
            with target.open() as handle:
                try:
                    mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
                except ValueError:  # an empty file cannot be mapped
                    return analyze_stream(b"", max_pickles=max_pickles)
                try:
                    return analyze_stream(mapped, max_pickles=max_pickles)
                finally:
                    with contextlib.suppress(BufferError):
                        mapped.close()
        except OSError as exc:
            raise InputError(f"{target.path}: cannot be read ({exc.strerror or exc})") from None
