"""Running file detectors over a path and collecting one :class:`ScanReport`."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from garrison import __version__
from garrison.core.assets import Asset, AssetKind
from garrison.core.config import Settings
from garrison.core.errors import GarrisonError, ResourceLimitError, UsageError
from garrison.core.events import utc_now
from garrison.core.evidence import Observation
from garrison.core.findings import Finding, Location
from garrison.core.registry import FileDetector, FileTarget, Registry
from garrison.core.results import ErrorRecord, ScanReport, SkippedRecord
from garrison.core.rules import Rule
from garrison.engine.archives import EXPANDED_FORMATS, Budget, Extracted, Problem, limit_rule, open_archive
from garrison.engine.parallel import choose_jobs, run_batches, split
from garrison.engine.rules import ARCHIVE_LIMIT_REACHED, SCAN_LIMIT_REACHED, SYMLINK_ESCAPES_ROOT
from garrison.engine.walker import FileEntry, LinkEntry, ProblemEntry, SkipEntry, walk
from garrison.formats import HEAD_BYTES, identify

_CHUNK = 1 << 20
ENGINE = "engine"


class Progress(Protocol):
    """Where the engine reports progress; the CLI draws it, tests can count it."""

    def start(self, total_files: int, total_bytes: int) -> None:
        """The walk is done: this many files and bytes will be read."""

    def advance(self, locator: str, nbytes: int) -> None:
        """One file is done."""

    def finish(self) -> None:
        """The scan is over."""


@dataclass
class _Collector:
    findings: list[Finding] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)
    skipped: list[SkippedRecord] = field(default_factory=list)
    assets: list[Asset] = field(default_factory=list)

    def merge(self, other: _Collector) -> None:
        """Append everything ``other`` collected."""
        self.findings.extend(other.findings)
        self.errors.extend(other.errors)
        self.skipped.extend(other.skipped)
        self.assets.extend(other.assets)


def scan_path(
    path: Path,
    *,
    settings: Settings,
    registry: Registry,
    progress: Progress | None = None,
    target_label: str | None = None,
) -> ScanReport:
    """Scan a file or directory with every registered file detector that applies.

    Raises ``UsageError`` when ``path`` does not exist; everything that goes wrong inside the
    scan is recorded in the report instead.
    """
    if not path.exists() and not path.is_symlink():
        raise UsageError(f"path not found: {path}", hint="check the spelling, or scan '.'")
    started = utc_now()
    keep = _rule_filter(registry, settings.select, settings.ignore)
    detectors = [
        cls.configured(settings)
        for cls in registry.detectors(kind="file")
        if issubclass(cls, FileDetector) and any(keep(r.id) for r in cls.rules)
    ]
    out = _Collector()
    files: list[FileEntry] = []
    for entry in walk(path, exclude=settings.exclude):
        if isinstance(entry, FileEntry):
            if len(files) >= settings.max_files:
                _limit(
                    out,
                    keep,
                    entry.locator,
                    f"more than {settings.max_files} files; the rest were not scanned",
                    "max-files",
                    settings.max_files,
                )
                break
            files.append(entry)
        elif isinstance(entry, LinkEntry):
            _link(out, keep, entry)
        elif isinstance(entry, SkipEntry):
            out.skipped.append(SkippedRecord(locator=entry.locator, reason=entry.reason))
        elif isinstance(entry, ProblemEntry):
            out.errors.append(ErrorRecord(locator=entry.locator, message=entry.message))
    sizes = [_size(f.path) for f in files]
    if progress is not None:
        progress.start(len(files), sum(sizes))
    jobs = choose_jobs(settings.jobs, len(files))
    batches = split(len(files), sizes, jobs) if jobs > 1 else [range(len(files))]
    results: list[_Collector | None] = [None] * len(batches)

    def work(batch: range) -> _Collector:
        part = _Collector()
        for index in batch:
            _scan_file(
                files[index], sizes[index], settings=settings, detectors=detectors, keep=keep, out=part
            )
            if progress is not None and jobs <= 1:
                progress.advance(files[index].locator, sizes[index])
        return part

    def done(index: int, part: _Collector) -> None:
        results[index] = part
        if progress is not None and jobs > 1:
            for i in batches[index]:
                progress.advance(files[i].locator, sizes[i])

    run_batches(batches, work, jobs=jobs, done=done)
    for part in results:
        if part is not None:
            out.merge(part)
    if progress is not None:
        progress.finish()
    return ScanReport(
        run_id=uuid.uuid4().hex,
        target=target_label or str(path),
        tool_version=__version__,
        started_at=started,
        finished_at=utc_now(),
        assets=tuple(out.assets),
        findings=tuple(out.findings),
        errors=tuple(out.errors),
        skipped=tuple(out.skipped),
    )


def _rule_filter(
    registry: Registry, select: Collection[str], ignore: Collection[str]
) -> Callable[[str], bool]:
    selected = registry.match_rules(select) if select else None
    ignored = registry.match_rules(ignore) if ignore else set()

    def keep(rule_id: str) -> bool:
        return (selected is None or rule_id in selected) and rule_id not in ignored

    return keep


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _limit(
    out: _Collector, keep: Callable[[str], bool], locator: str, message: str, limit: str, value: int
) -> None:
    out.errors.append(ErrorRecord(locator=locator, message=message))
    if keep(SCAN_LIMIT_REACHED.id):
        asset = Asset(kind=AssetKind.FILE, locator=locator)
        out.findings.append(
            Finding.create(
                rule=SCAN_LIMIT_REACHED,
                asset=asset,
                message=message,
                detector=ENGINE,
                evidence=(Observation(name=limit, actual=f"more than {value}", expected=f"at most {value}"),),
            )
        )


def _link(out: _Collector, keep: Callable[[str], bool], entry: LinkEntry) -> None:
    if entry.escapes and keep(SYMLINK_ESCAPES_ROOT.id):
        asset = Asset(kind=AssetKind.FILE, locator=entry.locator)
        out.findings.append(
            Finding.create(
                rule=SYMLINK_ESCAPES_ROOT,
                asset=asset,
                detector=ENGINE,
                message=f"{entry.locator} links to {entry.target}, outside the scanned tree; not followed",
                evidence=(Observation(name="link-target", actual=entry.target),),
            )
        )
    reason = (
        "symbolic link outside the tree (not followed)"
        if entry.escapes
        else ("symbolic link (its target is scanned where it lies)")
    )
    out.skipped.append(SkippedRecord(locator=entry.locator, reason=reason))


def _scan_file(
    entry: FileEntry,
    size: int,
    *,
    settings: Settings,
    detectors: list[FileDetector],
    keep: Callable[[str], bool],
    out: _Collector,
) -> None:
    if size > settings.max_file_bytes:
        _limit(
            out,
            keep,
            entry.locator,
            f"{entry.locator} is {size} bytes, over the {settings.max_file_bytes}-byte limit; not scanned",
            "max-file-bytes",
            settings.max_file_bytes,
        )
        return
    try:
        head, digest, size = _read(entry.path, digest=_wants_digest(settings, size))
        ident = identify(entry.path, head, size)
    except GarrisonError as exc:
        out.errors.append(ErrorRecord(locator=entry.locator, message=exc.message))
        return
    except OSError as exc:
        out.errors.append(
            ErrorRecord(locator=entry.locator, message=f"cannot be read: {exc.strerror or exc}")
        )
        return
    asset = Asset(kind=AssetKind.FILE, locator=entry.locator, digest=digest, size=size, format=ident.format)
    target = FileTarget(
        path=entry.path, asset=asset, head=head, details=ident.details, malformed=ident.malformed
    )
    _scan_target(target, detectors=detectors, keep=keep, out=out, budget=None, settings=settings)


def _scan_target(
    target: FileTarget,
    *,
    detectors: list[FileDetector],
    keep: Callable[[str], bool],
    out: _Collector,
    budget: Budget | None,
    settings: Settings,
) -> None:
    """Run every applicable detector on ``target``, then open it if it is a generic archive."""
    locator = target.asset.locator
    out.assets.append(target.asset)
    for detector in detectors:
        if not detector.applies_to(target):
            continue
        try:
            out.findings.extend(f for f in detector.scan(target) if keep(f.rule.id))
        except ResourceLimitError as exc:
            _limit(out, keep, locator, f"{detector.name}: {exc.message}", exc.limit, int(exc.value))
        except GarrisonError as exc:
            out.errors.append(ErrorRecord(locator=locator, detector=detector.name, message=exc.message))
        except Exception as exc:  # noqa: BLE001 - one broken detector must not end the scan
            out.errors.append(
                ErrorRecord(
                    locator=locator,
                    detector=detector.name,
                    message=f"detector failed unexpectedly ({type(exc).__name__}: {exc}); "
                    "please report this as a Garrison bug",
                )
            )
    if (target.asset.format or "") in EXPANDED_FORMATS:
        if budget is None:
            with tempfile.TemporaryDirectory(prefix="garrison-") as tmp:
                _expand(
                    target,
                    Path(tmp),
                    detectors=detectors,
                    keep=keep,
                    out=out,
                    budget=_budget(settings),
                    settings=settings,
                )
        else:
            _expand(
                target,
                target.path.parent,
                detectors=detectors,
                keep=keep,
                out=out,
                budget=budget,
                settings=settings,
            )


def _expand(
    target: FileTarget,
    tmp: Path,
    *,
    detectors: list[FileDetector],
    keep: Callable[[str], bool],
    out: _Collector,
    budget: Budget,
    settings: Settings,
) -> None:
    locator = target.asset.locator
    if target.depth >= budget.max_depth:
        _archive_problem(
            out,
            keep,
            target,
            ARCHIVE_LIMIT_REACHED,
            f"{locator} is nested {target.depth} archives deep, the limit is {budget.max_depth}; not opened",
            incomplete=True,
        )
        return
    level = tmp / f"d{target.depth}-{budget.members}"
    level.mkdir()
    try:
        for item in open_archive(
            target.path, target.asset.format or "", locator, target.asset.size or 0, level, budget
        ):
            if isinstance(item, Problem):
                _archive_problem(
                    out, keep, target, item.rule, item.message, member=item.name, incomplete=item.incomplete
                )
                continue
            try:
                _scan_member(
                    target, item, detectors=detectors, keep=keep, out=out, budget=budget, settings=settings
                )
            finally:
                item.path.unlink(missing_ok=True)
    except ResourceLimitError as exc:
        _archive_problem(
            out, keep, target, limit_rule(exc.limit), f"{locator}: {exc.message}", incomplete=True
        )
    except GarrisonError as exc:
        out.errors.append(ErrorRecord(locator=locator, message=f"archive cannot be opened: {exc.message}"))
    finally:
        shutil.rmtree(level, ignore_errors=True)


def _scan_member(
    parent: FileTarget,
    item: Extracted,
    *,
    detectors: list[FileDetector],
    keep: Callable[[str], bool],
    out: _Collector,
    budget: Budget,
    settings: Settings,
) -> None:
    locator = f"{parent.asset.locator}!{item.name}"
    member = item.name if parent.member is None else f"{parent.member}!{item.name}"
    try:
        ident = identify(item.path, item.head, item.size)
    except GarrisonError as exc:
        out.errors.append(ErrorRecord(locator=locator, message=exc.message))
        return
    asset = Asset(
        kind=AssetKind.FILE, locator=locator, digest=item.digest, size=item.size, format=ident.format
    )
    target = FileTarget(
        path=item.path,
        asset=asset,
        head=item.head,
        details=ident.details,
        malformed=ident.malformed,
        member=member,
        depth=parent.depth + 1,
    )
    _scan_target(target, detectors=detectors, keep=keep, out=out, budget=budget, settings=settings)


def _archive_problem(
    out: _Collector,
    keep: Callable[[str], bool],
    target: FileTarget,
    rule: Rule | None,
    message: str,
    *,
    member: str | None = None,
    incomplete: bool = False,
) -> None:
    locator = target.asset.locator
    if incomplete:
        out.errors.append(ErrorRecord(locator=locator, message=message))
    if rule is not None and keep(rule.id):
        out.findings.append(
            Finding.create(
                rule=rule,
                asset=target.asset,
                message=message,
                detector=ENGINE,
                location=Location(member=member),
                evidence=(Observation(name="archive-member", actual=member or locator),),
            )
        )


def _read(path: Path, *, digest: bool) -> tuple[bytes, str | None, int]:
    """First ``HEAD_BYTES`` bytes, SHA-256 of the whole file when ``digest``, and the file's size.

    Without a digest only the head is read: the detectors seek to the parts they need, so tensor
    data in a large checkpoint is never read at all.
    """
    with path.open("rb") as handle:
        if not digest:
            head = handle.read(HEAD_BYTES)
            return head, None, os.fstat(handle.fileno()).st_size
        hasher = hashlib.sha256()
        size = 0
        head = b""
        while chunk := handle.read(_CHUNK):
            if size < HEAD_BYTES:
                head += chunk[: HEAD_BYTES - size]
            hasher.update(chunk)
            size += len(chunk)
    return head, "sha256:" + hasher.hexdigest(), size


def _wants_digest(settings: Settings, size: int) -> bool:
    if settings.digest == "full":
        return True
    return settings.digest == "auto" and size <= settings.digest_max_bytes


def _budget(settings: Settings) -> Budget:
    return Budget(
        members=settings.archive_max_members,
        expanded=settings.archive_max_expanded_bytes,
        max_depth=settings.archive_max_depth,
        max_ratio=settings.archive_max_ratio,
    )


__all__ = ["Progress", "scan_path"]
