"""Errors a user can act on.

Library code raises these and never prints or exits; the command line turns them into a message
and an exit code. Every error carries a one-line message naming what was wrong and where, and an
optional hint saying what to do about it.
"""

from __future__ import annotations


class GarrisonError(Exception):
    """Base of every error Garrison raises on purpose."""

    #: Exit code the command line uses when this error ends a command.
    exit_code: int = 4

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def diagnostics(self) -> str:
        """The full text to show a user: the message, then the hint if there is one."""
        if self.hint:
            return f"{self.message}\nhint: {self.hint}"
        return self.message


class ConfigError(GarrisonError):
    """A setting, flag or configuration file is wrong."""

    exit_code = 2


class UsageError(GarrisonError):
    """The command was called with arguments that cannot work (a path that does not exist, ...)."""

    exit_code = 2


class InputError(GarrisonError):
    """An input (file, dataset, request) could not be read or parsed."""

    exit_code = 3


class UnsupportedFormatError(GarrisonError):
    """The input is of a format this detector does not handle. The engine records a skip."""

    exit_code = 3


class MissingExtraError(GarrisonError):
    """A feature needs an optional dependency that is not installed."""

    exit_code = 2

    def __init__(self, feature: str, *, extra: str, module: str) -> None:
        super().__init__(
            f"{feature} needs the optional dependency {module!r}, which is not installed",
            hint=f"pip install 'garrison[{extra}]'",
        )
        self.extra = extra
        self.module = module


class ResourceLimitError(GarrisonError):
    """A bound was hit (bytes, files, depth, time). Also reported as a finding by the engine."""

    exit_code = 3

    def __init__(self, message: str, *, limit: str, value: int | float, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.limit = limit
        self.value = value


class StorageError(GarrisonError):
    """The findings store could not be opened, migrated, read or written."""

    exit_code = 2


class RegistryError(GarrisonError):
    """A detector or rule is malformed or registered twice."""

    exit_code = 4
