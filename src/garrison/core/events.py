"""Events: things that happened at run time, appended to a tamper-evident log."""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from garrison.core.errors import InputError
from garrison.core.text import visible

EVENT_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+$")


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds: ``2026-11-25T21:58:00.000000Z``. Sorts as text."""
    if moment.tzinfo is None:
        raise InputError("timestamps must be timezone-aware")
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # the same text as strftime("%Y-%m-%dT%H:%M:%S.%fZ"), at a third of the cost (the audit log
    # formats one per gateway request)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{moment.microsecond:06d}Z"
    )


def parse_timestamp(text: str) -> datetime:
    """Inverse of :func:`format_timestamp`."""
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        raise InputError(f"{text!r} is not a Garrison timestamp") from None


def _check_json(value: Any, path: str) -> Any:
    """``value`` if it is JSON, with any string holding lone surrogates written out (core.text: a
    path that is not UTF-8 cannot be hashed into the chain or stored as it is); the same object when
    nothing needed that. Raises :class:`InputError` for what JSON cannot hold."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return value if value.isascii() else visible(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(f"event data {path} is {value}, which JSON cannot hold")
        return value
    if isinstance(value, list | tuple):
        items = [_check_json(item, f"{path}[{i}]") for i, item in enumerate(value)]
        same = all(new is old for new, old in zip(items, value, strict=True))
        return value if same else type(value)(items)
    if isinstance(value, Mapping):
        changed = False
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InputError(f"event data {path} has a non-string key {key!r}")
            new_key = key if key.isascii() else visible(key)
            new_item = _check_json(item, f"{path}.{key}")
            changed = changed or new_key is not key or new_item is not item
            out[new_key] = new_item
        return out if changed else value
    raise InputError(f"event data {path} is a {type(value).__name__}, not a JSON value")


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Something that happened: a scan finished, a key was created, a request was denied."""

    type: str
    """Dotted lower-case name, for example ``scan.completed`` or ``gateway.request.denied``."""
    actor: str
    """Who or what caused it: a user, an API key id (never the key), ``garrison``."""
    subject: str = ""
    """What it happened to: an asset key, a run id, a route."""
    data: Mapping[str, Any] = field(default_factory=dict)
    """JSON-compatible details. Secrets must be masked before they get here."""
    occurred_at: datetime = field(default_factory=utc_now)
    """When it happened (UTC)."""
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    """Unique id."""

    def __post_init__(self) -> None:
        if not EVENT_TYPE_RE.match(self.type):
            raise InputError(
                f"event type {self.type!r} must be dotted lower-case words, like 'scan.completed'"
            )
        for name in ("actor", "subject"):
            text = getattr(self, name)
            if "\x00" in text:
                raise InputError(f"event {name} contains a NUL character, which the log cannot store")
            object.__setattr__(self, name, visible(text))  # a path that is not UTF-8: see core.text
        if self.occurred_at.tzinfo is None:
            raise InputError("event time must be timezone-aware")
        data = dict(self.data)
        checked = _check_json(data, "data")
        if checked is not data:
            object.__setattr__(self, "data", checked)

    def payload(self) -> dict[str, Any]:
        """The fields the chain hash covers, as JSON-compatible values."""
        return {
            "id": self.id,
            "type": self.type,
            "actor": self.actor,
            "subject": self.subject,
            "occurred_at": format_timestamp(self.occurred_at),
            "data": self.data,
        }


def canonical_json(value: Any) -> bytes:
    """Deterministic UTF-8 JSON: sorted keys, no insignificant white space, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


_dump_str = json.JSONEncoder(ensure_ascii=False).encode


def canonical_event(event: Event) -> tuple[str, str, bytes]:
    """``(timestamp, data JSON, canonical payload)`` of ``event``, each computed once.

    The payload is byte for byte ``canonical_json(event.payload())``: its keys in sorted order
    (actor, data, id, occurred_at, subject, type) around the canonical data. The store keeps the
    timestamp and data text beside the hash, so computing them here once saves doing it twice.
    """
    stamp = format_timestamp(event.occurred_at)
    raw = event.data
    data = canonical_json(raw if isinstance(raw, dict) else dict(raw)).decode("utf-8")
    payload = (
        f'{{"actor":{_dump_str(event.actor)},"data":{data},"id":{_dump_str(event.id)},'
        f'"occurred_at":"{stamp}","subject":{_dump_str(event.subject)},"type":{_dump_str(event.type)}}}'
    )
    return stamp, data, payload.encode("utf-8")
