"""Findings: one occurrence of a rule on an asset."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from garrison.core.assets import Asset
from garrison.core.evidence import Evidence
from garrison.core.rules import Rule
from garrison.core.severity import Confidence, Severity
from garrison.core.text import WrittenOut, visible

FINGERPRINT_VERSION = "v1"


@dataclass(frozen=True, slots=True, kw_only=True)
class Location(WrittenOut):
    """Where inside the asset the finding is. Every field is optional."""

    member: str | None = None
    """Member of an archive (``archive/data.pkl``), nested with ``!`` for archives in archives."""
    offset: int | None = None
    """Byte offset in the file or member."""
    row: int | None = None
    """Row of a dataset, counted from 0."""
    column: str | None = None
    """Column of a dataset, by name."""
    request_id: str | None = None
    """Request of a gateway or endpoint exchange."""

    def stable_key(self) -> str:
        """Identity without positions that move when the asset is edited (offset, row, request)."""
        return f"{self.member or ''}|{self.column or ''}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible form; absent fields are left out."""
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One occurrence of a rule on an asset. Build it with :meth:`create`."""

    rule: Rule
    """The rule that was matched."""
    asset: Asset
    """The asset it was found on."""
    message: str
    """One or two sentences about this occurrence, naming what was found."""
    severity: Severity
    """Severity of this occurrence (the rule's default unless the detector says why not)."""
    confidence: Confidence
    """How sure the detector is."""
    location: Location
    """Where inside the asset."""
    evidence: tuple[Evidence, ...]
    """Why: what was seen."""
    detector: str
    """Name of the detector that raised it."""
    fingerprint: str = field(default="")
    """Stable identity for baselines: rule, asset key, location and evidence keys; no positions."""

    @classmethod
    def create(
        cls,
        *,
        rule: Rule,
        asset: Asset,
        message: str,
        detector: str,
        severity: Severity | None = None,
        confidence: Confidence = Confidence.HIGH,
        location: Location | None = None,
        evidence: tuple[Evidence, ...] = (),
    ) -> Finding:
        """Build a finding, defaulting the severity to the rule's and computing its fingerprint."""
        loc = location or Location()
        return cls(
            rule=rule,
            asset=asset,
            message=visible(message),  # NUL and lone surrogates from hostile input, written out
            severity=rule.severity if severity is None else severity,
            confidence=confidence,
            location=loc,
            evidence=evidence,
            detector=detector,
            fingerprint=compute_fingerprint(rule.id, asset, loc, evidence),
        )


def compute_fingerprint(
    rule_id: str, asset: Asset, location: Location, evidence: tuple[Evidence, ...]
) -> str:
    """SHA-256 over the rule id, the asset's key, the location and evidence keys (hex, 32 chars)."""
    parts = [FINGERPRINT_VERSION, rule_id, asset.key, location.stable_key()]
    parts.extend(sorted(e.kind + ":" + e.stable_key() for e in evidence))
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:32]
