"""Detectors and the one registry they are listed in.

A detector subclasses the base of its kind, declares its name, what it handles, the rules it can
emit, the extras it needs and an options model, and yields findings. Built-ins are listed in a
tuple in their package (collected in :mod:`garrison.detectors`); third-party packages register
through the ``garrison.detectors`` entry-point group. Both go through :meth:`Registry.add`, which
rejects duplicate names, duplicate rule ids and malformed metadata.
"""

from __future__ import annotations

import difflib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, TYPE_CHECKING, ClassVar, Self

from pydantic import BaseModel, ConfigDict

from garrison.core.assets import Asset
from garrison.core.errors import ConfigError, RegistryError
from garrison.core.findings import Finding
from garrison.core.rules import RULE_ID_RE, Rule, rule_problems

if TYPE_CHECKING:
    from garrison.core.config import Settings

ENTRY_POINT_GROUP = "garrison.detectors"
_DETECTOR_NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
#: A range inside a family: ``GAR-FMT-1`` selects GAR-FMT-100 to GAR-FMT-199.
_RANGE_RE = re.compile(r"^GAR-[A-Z]{2,5}-\d{1,2}$")


class DetectorOptions(BaseModel):
    """Base of every detector's options. Unknown options are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Detector(ABC):
    """Base of everything that observes an asset and yields findings."""

    name: ClassVar[str]
    """Unique kebab-case name, shown in reports and used by ``--select``."""
    kind: ClassVar[str]
    """Which engine runs it: ``file`` for file scanners."""
    summary: ClassVar[str]
    """One line on what it looks at."""
    rules: ClassVar[tuple[Rule, ...]]
    """Every rule it can emit."""
    extras: ClassVar[tuple[str, ...]] = ()
    """Pyproject extras it needs (``torch``); checked before it runs."""
    Options: ClassVar[type[DetectorOptions]] = DetectorOptions
    """Its options model."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FileTarget:
    """A file handed to a file detector: where it is, what it is, and its first bytes."""

    path: Path
    """Absolute path on disk."""
    asset: Asset
    """The asset, with its digest, size and identified format."""
    head: bytes
    """The first bytes of the file (up to 64 KiB), already read."""
    details: tuple[tuple[str, str], ...] = ()
    """Facts the format identification found (``protocol=4``, ``members=12``)."""
    malformed: str | None = None
    """Why the file's structure is broken, when identification found it broken."""
    member: str | None = None
    """For a file taken out of an archive: its name inside the archive the scan started from,
    nested archives joined with ``!`` (``inner.zip!model.pt``). ``None`` for a file on disk. The
    bytes are then at :attr:`path`, a bounded temporary copy the engine deletes after the scan."""
    depth: int = 0
    """How many archives deep the file lies (0 for a file on disk)."""

    def open(self) -> IO[bytes]:
        """Open the file for reading. Detectors read with limits; they never execute it."""
        return self.path.open("rb")


class FileDetector(Detector):
    """A detector that reads one file at a time."""

    kind: ClassVar[str] = "file"
    formats: ClassVar[frozenset[str]] = frozenset()
    """Formats it handles (ids from ``garrison.formats``); empty means every file."""

    def __init__(self, options: DetectorOptions | None = None) -> None:
        self.options = options or self.Options()

    @classmethod
    def configured(cls, settings: Settings) -> Self:
        """The detector a scan with ``settings`` runs; override to take options from the settings.

        Called once per scan, before any file is read, so a bad setting stops the scan at once.
        """
        del settings
        return cls()

    def applies_to(self, target: FileTarget) -> bool:
        """Whether this detector should look at ``target``."""
        return not self.formats or (target.asset.format or "") in self.formats

    @abstractmethod
    def scan(self, target: FileTarget) -> Iterator[Finding]:
        """Yield findings for ``target``. Raise ``GarrisonError`` for what cannot be scanned."""


class Registry:
    """Every detector and rule Garrison knows, and the redirects of renamed rule ids."""

    def __init__(self) -> None:
        self._detectors: dict[str, type[Detector]] = {}
        self._rules: dict[str, Rule] = {}
        self._owners: dict[str, str] = {}
        self._redirects: dict[str, str] = {}
        self.problems: list[str] = []
        """Plugins that failed to load, as sentences. The registry works without them."""

    def add(self, detector: type[Detector]) -> None:
        """Register a detector class and its rules; raise ``RegistryError`` if malformed."""
        if not (isinstance(detector, type) and issubclass(detector, Detector)):
            raise RegistryError(f"{detector!r} is not a Detector subclass")
        name = getattr(detector, "name", None)
        if not isinstance(name, str) or not _DETECTOR_NAME_RE.match(name):
            raise RegistryError(f"detector {detector.__qualname__} needs a kebab-case name")
        if name in self._detectors:
            raise RegistryError(f"a detector named {name!r} is already registered")
        rules = getattr(detector, "rules", ())
        if not rules:
            raise RegistryError(f"detector {name!r} declares no rules")
        self.add_rules(rules, owner=name)
        self._detectors[name] = detector

    def add_rules(self, rules: Iterable[Rule], *, owner: str) -> None:
        """Register rules raised by something that is not a detector (the engine itself)."""
        rules = tuple(rules)
        for rule in rules:
            problems = rule_problems(rule)
            if problems:
                raise RegistryError(f"rule {rule.id!r} of {owner!r}: " + "; ".join(problems))
            if rule.id in self._rules and self._owners[rule.id] != owner and self._rules[rule.id] != rule:
                raise RegistryError(
                    f"rule {rule.id} of {owner!r} is already registered by {self._owners[rule.id]!r}"
                )
            if rule.id in self._redirects:
                raise RegistryError(f"rule id {rule.id} was retired and cannot be reused")
        for rule in rules:
            self._rules[rule.id] = rule
            self._owners.setdefault(rule.id, owner)

    def add_redirect(self, old: str, new: str) -> None:
        """Record that rule ``old`` is now ``new``; ``old`` can never be reused."""
        if not RULE_ID_RE.match(old) or old in self._rules:
            raise RegistryError(f"cannot redirect {old!r}: not a retired rule id")
        self._redirects[old] = new

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Add detectors from installed plugins. A plugin that fails is noted in :attr:`problems`."""
        for entry in metadata.entry_points(group=group):
            try:
                loaded = entry.load()
                items = loaded if isinstance(loaded, list | tuple) else (loaded,)
                for item in items:
                    self.add(item)
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop a scan
                self.problems.append(f"plugin {entry.name!r} ({entry.value}) was not loaded: {exc}")

    def detectors(self, kind: str | None = None) -> list[type[Detector]]:
        """Registered detector classes, optionally of one kind, sorted by name."""
        return [d for n, d in sorted(self._detectors.items()) if kind is None or d.kind == kind]

    def detector(self, name: str) -> type[Detector]:
        """The detector called ``name``; ``ConfigError`` with a suggestion otherwise."""
        try:
            return self._detectors[name]
        except KeyError:
            raise ConfigError(f"no detector named {name!r}", hint=_suggest(name, self._detectors)) from None

    def rules(self) -> list[Rule]:
        """Every registered rule, sorted by id."""
        return [self._rules[k] for k in sorted(self._rules)]

    def rule(self, rule_id: str) -> Rule:
        """The rule with this id (following redirects); ``ConfigError`` with a suggestion otherwise."""
        rule_id = rule_id.strip().upper()
        seen = set()
        while rule_id in self._redirects and rule_id not in seen:
            seen.add(rule_id)
            rule_id = self._redirects[rule_id]
        try:
            return self._rules[rule_id]
        except KeyError:
            raise ConfigError(f"no rule with id {rule_id!r}", hint=_suggest(rule_id, self._rules)) from None

    def owner(self, rule_id: str) -> str:
        """Name of the detector (or engine part) that owns a rule."""
        return self._owners[self.rule(rule_id).id]

    def match_rules(self, patterns: Iterable[str]) -> set[str]:
        """Rule ids matching ids, families (``GAR-FMT``) or prefixes; ``ConfigError`` if none match."""
        matched: set[str] = set()
        for raw in patterns:
            pattern = raw.strip().upper()
            if pattern in self._redirects:
                pattern = self.rule(pattern).id
            hits = {
                rid
                for rid in self._rules
                if rid == pattern
                or rid.startswith(pattern + "-")
                or (_RANGE_RE.match(pattern) is not None and rid.startswith(pattern))
            }
            if not hits:
                raise ConfigError(f"{raw!r} matches no rule", hint=_suggest(pattern, self._rules))
            matched |= hits
        return matched


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=3)
    if close:
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "run 'garrison rules list' to see what exists"
