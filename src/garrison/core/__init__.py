"""The spine: assets, rules, findings, events, severity, the detector registry, config, errors.

Everything in Garrison speaks these types. This package depends on nothing heavy.
"""

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
