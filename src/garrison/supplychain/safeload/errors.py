"""Why a file was not loaded: a refusal, with the findings and globals that caused it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from garrison.core.errors import GarrisonError

if TYPE_CHECKING:
    from garrison.core.findings import Finding

_SHOWN = 10
"""Most findings quoted in the message; the rest are counted."""


class LoadRefusedError(GarrisonError):
    """Safe loading refused a file: the scan flagged it, the unpickler met a global outside the
    allowlist, the signature could not be verified, or the file changed while it was being checked.

    Nothing from the file was returned, and no code of the file's choosing ran.
    """

    exit_code = 1

    def __init__(
        self,
        path: str,
        reason: str,
        *,
        findings: Sequence[Finding] = (),
        refused_globals: Sequence[str] = (),
        hint: str | None = None,
    ) -> None:
        lines = [f"refused to load {path}: {reason}"]
        ordered = sorted(findings, key=lambda f: (-int(f.severity), f.rule.id))
        for finding in ordered[:_SHOWN]:
            where = f" [{finding.location.member}]" if finding.location.member else ""
            lines.append(f"  {finding.rule.id} {finding.severity.label}{where}: {finding.message}")
        if len(ordered) > _SHOWN:
            lines.append(f"  ... and {len(ordered) - _SHOWN} more finding(s)")
        if refused_globals:
            lines.append("  offending global(s): " + ", ".join(refused_globals))
        super().__init__("\n".join(lines), hint=hint)
        self.path = path
        """The file that was refused, as the caller named it."""
        self.reason = reason
        """The refusal in one line."""
        self.findings: tuple[Finding, ...] = tuple(ordered)
        """Scan findings that caused the refusal (empty when the unpickler or a check refused)."""
        self.refused_globals: tuple[str, ...] = tuple(refused_globals)
        """Dotted names of the globals the scan or the restricted unpickler objected to."""

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """Distinct rule ids of :attr:`findings`, sorted."""
        return tuple(sorted({f.rule.id for f in self.findings}))
