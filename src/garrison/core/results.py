"""The result of a scan, as data: findings, scanned assets, errors and skipped items."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum

from garrison.core.assets import Asset
from garrison.core.findings import Finding
from garrison.core.rules import Rule
from garrison.core.severity import Severity
from garrison.core.text import WrittenOut

#: Version of the JSON report schema (docs/report-schema.json). Bump the minor version for
#: additions, the major version for anything a consumer could trip over.
REPORT_SCHEMA_VERSION = "1.0"


class ExitCode(IntEnum):
    """Exit codes every command uses, so CI can gate on them."""

    OK = 0
    """Nothing at or above ``--fail-on``."""
    FINDINGS = 1
    """At least one finding at or above ``--fail-on`` (takes precedence over INCOMPLETE)."""
    USAGE = 2
    """Usage or configuration error."""
    INCOMPLETE = 3
    """An asset could not be scanned; fails CI unless ``--allow-incomplete``."""
    INTERNAL = 4
    """Internal error: a bug in Garrison. Please report it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorRecord(WrittenOut):
    """Something that could not be scanned, and why. Makes the run incomplete."""

    locator: str
    """The asset or path concerned."""
    message: str
    """What went wrong, for a person."""
    detector: str | None = None
    """The detector that failed, or ``None`` when the asset could not be read at all."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SkippedRecord(WrittenOut):
    """Something deliberately not scanned (excluded, not applicable). Does not fail a run."""

    locator: str
    """The asset or path concerned."""
    reason: str
    """Why it was skipped."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanReport(WrittenOut):
    """Everything one scan produced. Renderers are pure functions of this."""

    run_id: str
    """Unique id of the run (also its id in the store)."""
    target: str
    """What was scanned, as the user named it."""
    tool_version: str
    """Garrison's version."""
    started_at: datetime
    """When the scan started (UTC)."""
    finished_at: datetime
    """When it finished (UTC)."""
    assets: tuple[Asset, ...] = ()
    """Every asset that was scanned."""
    findings: tuple[Finding, ...] = ()
    """Findings to act on (baselined ones are in :attr:`baselined`)."""
    errors: tuple[ErrorRecord, ...] = ()
    """What could not be scanned."""
    skipped: tuple[SkippedRecord, ...] = ()
    """What was deliberately not scanned."""
    baselined: tuple[Finding, ...] = ()
    """Findings suppressed because the baseline already had them."""
    schema_version: str = field(default=REPORT_SCHEMA_VERSION)
    """Version of the report schema."""

    @property
    def complete(self) -> bool:
        """True when every asset could be scanned."""
        return not self.errors

    @classmethod
    def of(
        cls,
        target: str,
        *,
        assets: Iterable[Asset],
        findings: Iterable[Finding],
        started_at: datetime,
    ) -> ScanReport:
        """A new run's report for an analysis that is not a file scan (a verification, a validation,
        a bias or label check): a fresh run id, this version of Garrison, finished now."""
        from garrison import __version__
        from garrison.core.events import utc_now

        return cls(
            run_id=uuid.uuid4().hex,
            target=target,
            tool_version=__version__,
            started_at=started_at,
            finished_at=utc_now(),
            assets=tuple(assets),
            findings=tuple(findings),
        )

    def severity_counts(self) -> dict[Severity, int]:
        """Number of findings per severity, every severity present, highest first."""
        counts = Counter(f.severity for f in self.findings)
        return {s: counts.get(s, 0) for s in sorted(Severity, reverse=True)}

    def rules(self) -> list[Rule]:
        """The distinct rules of the findings (and baselined findings), sorted by id."""
        seen = {f.rule.id: f.rule for f in (*self.findings, *self.baselined)}
        return [seen[k] for k in sorted(seen)]

    def sorted_findings(self) -> list[Finding]:
        """Findings ordered by asset, then severity (highest first), then rule id."""
        return sorted(
            self.findings, key=lambda f: (f.asset.locator, -int(f.severity), f.rule.id, f.fingerprint)
        )

    def exit_code(self, *, fail_on: Severity, allow_incomplete: bool = False) -> ExitCode:
        """The exit code for CI: findings at or above ``fail_on`` first, then incompleteness."""
        if any(f.severity >= fail_on for f in self.findings):
            return ExitCode.FINDINGS
        if self.errors and not allow_incomplete:
            return ExitCode.INCOMPLETE
        return ExitCode.OK
