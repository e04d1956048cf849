"""Ordered severity and a separate confidence scale."""

from __future__ import annotations

from enum import IntEnum

from garrison.core.errors import ConfigError


class Severity(IntEnum):
    """How bad a finding is if it is true. Ordered: ``Severity.HIGH > Severity.LOW``."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        """Lower-case name used in every output format and on the command line."""
        return self.name.lower()

    @property
    def sarif_level(self) -> str:
        """The SARIF ``level`` this severity maps to."""
        if self >= Severity.HIGH:
            return "error"
        if self is Severity.MEDIUM:
            return "warning"
        return "note"

    @property
    def security_severity(self) -> str:
        """A CVSS-like score as a string, for GitHub code scanning's ``security-severity``."""
        return {0: "0.0", 1: "2.0", 2: "5.0", 3: "7.5", 4: "9.5"}[int(self)]

    @classmethod
    def parse(cls, value: str | int | Severity, *, where: str = "severity") -> Severity:
        """Read a severity from a name (any case) or a number; raise ``ConfigError`` otherwise."""
        if isinstance(value, Severity):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return cls(value)
            except ValueError:
                pass
        elif isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                pass
        choices = ", ".join(s.label for s in cls)
        raise ConfigError(f"{where}: {value!r} is not a severity", hint=f"use one of: {choices}")


class Confidence(IntEnum):
    """How sure the detector is that the finding is true, independent of its severity."""

    LOW = 0
    MEDIUM = 1
    HIGH = 2

    @property
    def label(self) -> str:
        """Lower-case name used in every output format."""
        return self.name.lower()

    @property
    def sarif_precision(self) -> str:
        """The ``precision`` property GitHub code scanning understands."""
        return {0: "low", 1: "medium", 2: "high"}[int(self)]
