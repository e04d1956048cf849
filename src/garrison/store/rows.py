"""Conversions between the spine's values and the store's rows. No SQL is executed here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import RowMapping

from garrison.core.assets import Asset, AssetKind
from garrison.core.errors import ConfigError, GarrisonError, StorageError
from garrison.core.eventlog import LogRecord
from garrison.core.events import Event, canonical_json, format_timestamp, parse_timestamp
from garrison.core.evidence import evidence_from_dict
from garrison.core.findings import Finding, Location
from garrison.core.registry import Registry
from garrison.core.results import ErrorRecord, SkippedRecord
from garrison.core.rules import Rule
from garrison.core.severity import Confidence, Severity

#: Remediation of the stand-in rule built for a stored finding whose rule is no longer registered.
RETIRED_RULE_REMEDIATION = "This rule is no longer registered; see the report that created it."

#: Type given to an event row that can no longer be read as an event (it was tampered with).
UNREADABLE_EVENT_TYPE = "garrison.unreadable_event"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: Severity → column of ``scan_runs`` holding its count.
COUNT_COLUMNS: dict[Severity, str] = {s: f"count_{s.label}" for s in Severity}


def dump_json(value: Any) -> str:
    """Compact, deterministic JSON text for a column."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def asset_row(asset: Asset, *, seen_at: datetime) -> dict[str, Any]:
    """Values of an ``assets`` row for ``asset`` first or last seen at ``seen_at``."""
    return {
        "identity": asset.identity,
        "kind": asset.kind.value,
        "locator": asset.locator,
        "digest": asset.digest,
        "size": asset.size,
        "format": asset.format,
        "first_seen": seen_at,
        "last_seen": seen_at,
    }


def rebuild_asset(*, kind: str, locator: str, digest: str | None, size: int | None, fmt: str | None) -> Asset:
    """An :class:`Asset` from stored columns."""
    return Asset(kind=AssetKind(kind), locator=locator, digest=digest, size=size, format=fmt)


def finding_row(finding: Finding, *, run_id: str, asset_id: int, baselined: bool) -> dict[str, Any]:
    """Values of a ``findings`` row."""
    return {
        "run_id": run_id,
        "asset_id": asset_id,
        "asset_kind": finding.asset.kind.value,
        "asset_locator": finding.asset.locator,
        "rule_id": finding.rule.id,
        "rule_name": finding.rule.name,
        "rule_title": finding.rule.title,
        "severity": int(finding.severity),
        "confidence": int(finding.confidence),
        "message": finding.message,
        "detector": finding.detector,
        "fingerprint": finding.fingerprint,
        "location": dump_json(finding.location.to_dict()),
        "evidence": dump_json([e.to_dict() for e in finding.evidence]),
        "baselined": baselined,
    }


class RuleResolver:
    """Finds the rule of a stored finding in a registry, or builds a stand-in for a retired one."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._cache: dict[str, Rule] = {}

    def rule(self, rule_id: str, *, name: str, title: str, severity: Severity) -> Rule:
        """The registered rule with this id, or a stand-in built from what was stored."""
        cached = self._cache.get(rule_id)
        if cached is not None:
            return cached
        try:
            rule = self._registry.rule(rule_id)
        except ConfigError:
            rule = Rule(
                id=rule_id,
                name=name,
                title=title,
                severity=severity,
                description=f"Rule {rule_id} ({name}) raised this finding but is no longer registered.",
                remediation=RETIRED_RULE_REMEDIATION,
                cwe=("CWE-693",),
            )
        self._cache[rule_id] = rule
        return rule


def rebuild_finding(row: RowMapping, *, rules: RuleResolver) -> Finding:
    """A :class:`Finding` from a ``findings`` row joined with its asset's digest, size and format."""
    try:
        severity = Severity(row["severity"])
        asset = rebuild_asset(
            kind=row["asset_kind"],
            locator=row["asset_locator"],
            digest=row["digest"],
            size=row["size"],
            fmt=row["format"],
        )
        return Finding(
            rule=rules.rule(
                row["rule_id"], name=row["rule_name"], title=row["rule_title"], severity=severity
            ),
            asset=asset,
            message=row["message"],
            severity=severity,
            confidence=Confidence(row["confidence"]),
            location=Location(**json.loads(row["location"])),
            evidence=tuple(evidence_from_dict(item) for item in json.loads(row["evidence"])),
            detector=row["detector"],
            fingerprint=row["fingerprint"],
        )
    except (GarrisonError, ValueError, TypeError, KeyError) as exc:
        if isinstance(exc, StorageError):
            raise
        raise StorageError(
            f"stored finding {row['id']} of run {row['run_id']} cannot be read back: {exc}",
            hint="the store was changed by something other than Garrison",
        ) from None


def errors_json(errors: tuple[ErrorRecord, ...]) -> str:
    """The run's error records as JSON text."""
    return dump_json([{"locator": e.locator, "message": e.message, "detector": e.detector} for e in errors])


def skipped_json(skipped: tuple[SkippedRecord, ...]) -> str:
    """The run's skipped records as JSON text."""
    return dump_json([{"locator": s.locator, "reason": s.reason} for s in skipped])


def rebuild_errors(text: str) -> tuple[ErrorRecord, ...]:
    """Error records from their JSON text."""
    return tuple(ErrorRecord(**item) for item in json.loads(text))


def rebuild_skipped(text: str) -> tuple[SkippedRecord, ...]:
    """Skipped records from their JSON text."""
    return tuple(SkippedRecord(**item) for item in json.loads(text))


def event_row(record: LogRecord) -> dict[str, Any]:
    """Values of an ``events`` row; time and data are the exact text the chain hash covers."""
    event = record.event
    return {
        "seq": record.seq,
        "event_id": event.id,
        "type": event.type,
        "actor": event.actor,
        "subject": event.subject,
        "occurred_at": record.occurred or format_timestamp(event.occurred_at),
        "data": record.data_json or canonical_json(dict(event.data)).decode("utf-8"),
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


def rebuild_record(row: RowMapping) -> LogRecord:
    """A :class:`LogRecord` from an ``events`` row.

    A row that is no longer a valid event (a type, time or data edited into something Garrison
    would never write) becomes an event of type :data:`UNREADABLE_EVENT_TYPE` that keeps the id,
    so verification reports it as modified instead of failing.
    """
    try:
        data = json.loads(row["data"])
        if not isinstance(data, dict):
            raise TypeError("event data is not a JSON object")
        event = Event(
            type=row["type"],
            actor=row["actor"],
            subject=row["subject"],
            data=data,
            occurred_at=parse_timestamp(row["occurred_at"]),
            id=row["event_id"],
        )
    except (GarrisonError, ValueError, TypeError) as exc:
        event = Event(
            type=UNREADABLE_EVENT_TYPE,
            actor=str(row["actor"]),
            subject=str(row["subject"]),
            data={"problem": str(exc)},
            occurred_at=_EPOCH,
            id=str(row["event_id"]),
        )
    return LogRecord(seq=int(row["seq"]), event=event, prev_hash=row["prev_hash"], hash=row["hash"])


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredApiKey:
    """A gateway API key as the store keeps it: the key's SHA-256, never the key."""

    id: str
    """Public key id (also inside the key text, so a key names its own record)."""
    name: str
    """Human label given when the key was created."""
    hash: str
    """Lower-case hex SHA-256 of the full key text."""
    prefix: str
    """Non-secret start of the key (``gar_<id>``), shown to recognise it."""
    roles: tuple[str, ...]
    """Roles the key grants, sorted."""
    scopes: tuple[str, ...]
    """Scopes the key is limited to, sorted (empty: whatever its roles allow)."""
    created_at: datetime
    """When the key was created (aware, UTC)."""
    expires_at: datetime | None = None
    """When it stops working, or ``None`` for never."""
    revoked_at: datetime | None = None
    """When it was (or will be, after a rotation's grace period) revoked, or ``None``."""
    rotated_from: str | None = None
    """Id of the key this one replaced in a rotation."""


def api_key_row(key: StoredApiKey) -> dict[str, Any]:
    """Values of an ``api_keys`` row."""
    return {
        "id": key.id,
        "name": key.name,
        "hash": key.hash,
        "prefix": key.prefix,
        "roles": dump_json(sorted(key.roles)),
        "scopes": dump_json(sorted(key.scopes)),
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "rotated_from": key.rotated_from,
    }


def rebuild_api_key(row: RowMapping) -> StoredApiKey:
    """A :class:`StoredApiKey` from an ``api_keys`` row."""
    try:
        roles, scopes = json.loads(row["roles"]), json.loads(row["scopes"])
        if not all(isinstance(r, str) for r in [*roles, *scopes]):
            raise TypeError("roles and scopes must be lists of strings")
        return StoredApiKey(
            id=row["id"],
            name=row["name"],
            hash=row["hash"],
            prefix=row["prefix"],
            roles=tuple(roles),
            scopes=tuple(scopes),
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            revoked_at=row["revoked_at"],
            rotated_from=row["rotated_from"],
        )
    except (ValueError, TypeError) as exc:
        raise StorageError(
            f"stored API key {row['id']} cannot be read back: {exc}",
            hint="the store was changed by something other than Garrison",
        ) from None
