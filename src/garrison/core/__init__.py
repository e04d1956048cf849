"""The spine: assets, rules, findings, events, severity, the detector registry, config, errors.

Everything in Garrison speaks these types. This package depends on nothing heavy, and its names
are loaded on first use so that importing one module (``garrison.core.errors``) stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "Asset": "assets",
    "AssetKind": "assets",
    "ConfigError": "errors",
    "GarrisonError": "errors",
    "InputError": "errors",
    "MissingExtraError": "errors",
    "RegistryError": "errors",
    "ResourceLimitError": "errors",
    "StorageError": "errors",
    "UnsupportedFormatError": "errors",
    "UsageError": "errors",
    "Event": "events",
    "ByteRange": "evidence",
    "Evidence": "evidence",
    "Exchange": "evidence",
    "Metric": "evidence",
    "Observation": "evidence",
    "OpcodeRef": "evidence",
    "TextSpan": "evidence",
    "Finding": "findings",
    "Location": "findings",
    "Detector": "registry",
    "DetectorOptions": "registry",
    "FileDetector": "registry",
    "FileTarget": "registry",
    "Registry": "registry",
    "ErrorRecord": "results",
    "ExitCode": "results",
    "ScanReport": "results",
    "SkippedRecord": "results",
    "Reference": "rules",
    "Rule": "rules",
    "Confidence": "severity",
    "Severity": "severity",
}

__all__ = [
    "Asset",
    "AssetKind",
    "ByteRange",
    "Confidence",
    "ConfigError",
    "Detector",
    "DetectorOptions",
    "ErrorRecord",
    "Event",
    "Evidence",
    "Exchange",
    "ExitCode",
    "FileDetector",
    "FileTarget",
    "Finding",
    "GarrisonError",
    "InputError",
    "Location",
    "Metric",
    "MissingExtraError",
    "Observation",
    "OpcodeRef",
    "Reference",
    "Registry",
    "RegistryError",
    "ResourceLimitError",
    "Rule",
    "ScanReport",
    "Severity",
    "SkippedRecord",
    "StorageError",
    "TextSpan",
    "UnsupportedFormatError",
    "UsageError",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'garrison.core' has no attribute {name!r}")
    value = getattr(import_module(f"garrison.core.{module}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from garrison.core.assets import Asset, AssetKind
    from garrison.core.errors import (
        ConfigError,
        GarrisonError,
        InputError,
        MissingExtraError,
        RegistryError,
        ResourceLimitError,
        StorageError,
        UnsupportedFormatError,
        UsageError,
    )
    from garrison.core.events import Event
    from garrison.core.evidence import (
        ByteRange,
        Evidence,
        Exchange,
        Metric,
        Observation,
        OpcodeRef,
        TextSpan,
    )
    from garrison.core.findings import Finding, Location
    from garrison.core.registry import Detector, DetectorOptions, FileDetector, FileTarget, Registry
    from garrison.core.results import ErrorRecord, ExitCode, ScanReport, SkippedRecord
    from garrison.core.rules import Reference, Rule
    from garrison.core.severity import Confidence, Severity
