"""Gateway API keys: their format, their records in the store, and the in-memory cache the hot path reads.

A key is ``gar_<id>_<secret><check>``: ``id`` is 12 hex digits naming the record, ``secret`` is 256
random bits in 43 base62 characters, ``check`` is the CRC-32 of everything before it in 6 base62
characters, so a mistyped or truncated key is told apart from an unknown one without any lookup and
secret scanners can recognise real keys. The key is shown once, when created; the store keeps only
its SHA-256 (the secret's 256 bits of entropy make a slow hash pointless) and the non-secret prefix
``gar_<id>``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from garrison.core.errors import StorageError, UsageError
from garrison.core.events import Event, utc_now
from garrison.gateway.types import Denied, Principal
from garrison.store import Store
from garrison.store.rows import StoredApiKey

#: Every key starts with this.
KEY_PREFIX = "gar_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_HEX = 12
_SECRET_CHARS = 43
_CHECK_CHARS = 6
_BODY_END = len(KEY_PREFIX) + _ID_HEX + 1 + _SECRET_CHARS
#: Length of every key.
KEY_LENGTH = _BODY_END + _CHECK_CHARS
_KEY_RE = re.compile(rf"gar_[0-9a-f]{{{_ID_HEX}}}_[0-9A-Za-z]{{{_SECRET_CHARS + _CHECK_CHARS}}}")
_ROLE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@*?-]{0,127}$")
_DURATION_RE = re.compile(r"^\s*(\d{1,6})\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def _check(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), _CHECK_CHARS)


def new_key() -> tuple[str, str]:
    """A fresh ``(key id, key text)``."""
    key_id = secrets.token_hex(_ID_HEX // 2)
    body = f"{KEY_PREFIX}{key_id}_{_base62(secrets.randbits(256), _SECRET_CHARS)}"
    return key_id, body + _check(body)


def key_id_of(key: str) -> str | None:
    """The id inside a well-formed key (format and checksum), or ``None`` for anything else."""
    if len(key) != KEY_LENGTH or not _KEY_RE.fullmatch(key):
        return None
    if not hmac.compare_digest(_check(key[:_BODY_END]), key[_BODY_END:]):
        return None
    return key[len(KEY_PREFIX) : len(KEY_PREFIX) + _ID_HEX]


def hash_key(key: str) -> str:
    """Lower-case hex SHA-256 of the key text: what the store keeps."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_prefix(key_id: str) -> str:
    """The non-secret start of the key with this id, shown to recognise it."""
    return f"{KEY_PREFIX}{key_id}"


MAX_LIFETIME_SECONDS = 100 * 366 * 86400
"""Longest lifetime or grace period a duration may give (later dates overflow ``datetime``)."""


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``45m``, ``90s`` or ``2w`` as a ``timedelta``; ``UsageError`` otherwise."""
    match = _DURATION_RE.match(text)
    if not match or int(match.group(1)) == 0:
        raise UsageError(
            f"duration {text!r} is not understood",
            hint="use a positive number and a unit: 90s, 45m, 12h, 30d, 2w",
        )
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds > MAX_LIFETIME_SECONDS:
        raise UsageError(
            f"duration {text!r} is longer than 100 years",
            hint="a key that should never expire is created without --expires",
        )
    return timedelta(seconds=seconds)


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyRecord:
    """What the gateway knows about one API key (never the key)."""

    id: str
    """Public id, inside the key text; the principal is ``key_<id>``."""
    name: str
    """Human label."""
    roles: frozenset[str]
    """Roles the key grants."""
    scopes: frozenset[str]
    """Scopes it is limited to (empty: whatever its roles allow)."""
    created: datetime
    """When it was created (UTC)."""
    expires: datetime | None
    """When it stops working, or ``None``."""
    revoked_at: datetime | None
    """When it was or will be revoked, or ``None``."""
    hash: str
    """Hex SHA-256 of the key."""
    prefix: str
    """``gar_<id>``, safe to show."""
    rotated_from: str | None = None
    """Id of the key it replaced."""

    def status(self, now: datetime | None = None) -> str:
        """``active``, ``expired``, ``revoked``, or ``revoking`` (revocation scheduled by a rotation)."""
        moment = now or utc_now()
        if self.revoked_at is not None and self.revoked_at <= moment:
            return "revoked"
        if self.expires is not None and self.expires <= moment:
            return "expired"
        if self.revoked_at is not None:
            return "revoking"
        return "active"

    def principal(self) -> Principal:
        """The caller this key authenticates."""
        return Principal(
            id=f"key_{self.id}", kind="api_key", roles=self.roles, scopes=self.scopes, name=self.name
        )

    @classmethod
    def from_stored(cls, stored: StoredApiKey) -> KeyRecord:
        """The record of a key as the store returned it."""
        return cls(
            id=stored.id,
            name=stored.name,
            roles=frozenset(stored.roles),
            scopes=frozenset(stored.scopes),
            created=stored.created_at,
            expires=stored.expires_at,
            revoked_at=stored.revoked_at,
            hash=stored.hash,
            prefix=stored.prefix,
            rotated_from=stored.rotated_from,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CreatedKey:
    """A key just made: the only moment its text exists outside the caller's hands."""

    record: KeyRecord
    """What was stored."""
    key: str
    """The key itself. Show it once; it cannot be recovered."""


def _names(kind: str, values: Iterable[str]) -> tuple[str, ...]:
    result = tuple(sorted(set(values)))
    for value in result:
        if not _ROLE_RE.match(value):
            raise UsageError(f"{kind} {value!r} must be letters, digits and _.:@*?- (at most 128)")
    return result


def _stored(
    *,
    name: str,
    roles: Iterable[str],
    scopes: Iterable[str],
    created: datetime,
    expires_in: timedelta | None,
    rotated_from: str | None = None,
) -> tuple[StoredApiKey, str]:
    if not name.strip():
        raise UsageError("an API key needs a name", hint="--name says what or who the key is for")
    role_names = _names("role", roles)
    if not role_names:
        raise UsageError("an API key needs at least one role", hint="give --role ROLE")
    key_id, key = new_key()
    stored = StoredApiKey(
        id=key_id,
        name=name.strip(),
        hash=hash_key(key),
        prefix=key_prefix(key_id),
        roles=role_names,
        scopes=_names("scope", scopes),
        created_at=created,
        expires_at=created + expires_in if expires_in is not None else None,
        rotated_from=rotated_from,
    )
    return stored, key


def _created_event(stored: StoredApiKey, *, actor: str) -> Event:
    return Event(
        type="gateway.key.created",
        actor=actor,
        subject=f"key_{stored.id}",
        data={
            "name": stored.name,
            "prefix": stored.prefix,
            "roles": list(stored.roles),
            "scopes": list(stored.scopes),
            "expires_at": stored.expires_at.isoformat() if stored.expires_at else None,
            "rotated_from": stored.rotated_from,
        },
        occurred_at=stored.created_at,
    )


def create_key(
    store: Store,
    *,
    name: str,
    roles: Iterable[str],
    scopes: Iterable[str] = (),
    expires_in: timedelta | None = None,
    actor: str,
) -> CreatedKey:
    """Make a key, store its hash and record ``gateway.key.created``; return the key (shown once)."""
    stored, key = _stored(name=name, roles=roles, scopes=scopes, created=utc_now(), expires_in=expires_in)
    store.add_api_key(stored, [_created_event(stored, actor=actor)])
    return CreatedKey(record=KeyRecord.from_stored(stored), key=key)


def list_keys(store: Store) -> list[KeyRecord]:
    """Every key the store holds, oldest first (revoked and expired ones too)."""
    return [KeyRecord.from_stored(s) for s in store.api_keys()]


def revoke_key(store: Store, key_id: str, *, actor: str, reason: str = "") -> KeyRecord:
    """Revoke a key now (an earlier revocation stands) and record ``gateway.key.revoked``."""
    now = utc_now()
    event = Event(
        type="gateway.key.revoked",
        actor=actor,
        subject=f"key_{key_id}",
        data={"revoked_at": now.isoformat(), "reason": reason},
        occurred_at=now,
    )
    return KeyRecord.from_stored(store.revoke_api_key(key_id, at=now, events=[event]))


def rotate_key(
    store: Store,
    key_id: str,
    *,
    actor: str,
    grace: timedelta = timedelta(0),
    expires_in: timedelta | None = None,
) -> CreatedKey:
    """Replace a key: a successor with the same name, roles and scopes; the old one revoked after ``grace``.

    The successor lives ``expires_in``, or as long as the old key was meant to when that is ``None``.
    Records ``gateway.key.created`` and ``gateway.key.rotated``. Revoked keys cannot be rotated.
    """
    old = store.api_key(key_id)
    if old is None:
        raise UsageError(f"no API key {key_id!r} in the store", hint="garrison keys list shows them")
    now = utc_now()
    if old.revoked_at is not None and old.revoked_at <= now:
        raise UsageError(f"API key {key_id!r} is revoked; create a new key instead of rotating it")
    if expires_in is None and old.expires_at is not None:
        expires_in = old.expires_at - old.created_at
    stored, key = _stored(
        name=old.name,
        roles=old.roles,
        scopes=old.scopes,
        created=now,
        expires_in=expires_in,
        rotated_from=old.id,
    )
    revoke_at = now + grace
    rotated = Event(
        type="gateway.key.rotated",
        actor=actor,
        subject=f"key_{old.id}",
        data={"successor": f"key_{stored.id}", "revoked_at": revoke_at.isoformat()},
        occurred_at=now,
    )
    store.rotate_api_key(
        old.id, stored, revoke_at=revoke_at, events=[_created_event(stored, actor=actor), rotated]
    )
    return CreatedKey(record=KeyRecord.from_stored(stored), key=key)


@dataclass(frozen=True, slots=True)
class _Entry:
    stored: StoredApiKey
    hash: str
    expires_ts: float | None
    revoked_ts: float | None
    principal: Principal


def _entry(stored: StoredApiKey) -> _Entry:
    return _Entry(
        stored,
        stored.hash,
        stored.expires_at.timestamp() if stored.expires_at else None,
        stored.revoked_at.timestamp() if stored.revoked_at else None,
        KeyRecord.from_stored(stored).principal(),
    )


class KeyCache:
    """The hot path: a key's SHA-256 looked up in memory, refreshed from the store with bounded staleness.

    A revocation or a new key is seen within ``refresh_seconds``: the refresh runs inline on the first
    request after that interval, unless :meth:`refresh` was called meanwhile (a server can call it from
    a worker thread, e.g. ``await asyncio.to_thread(cache.refresh)`` every ``refresh_seconds / 2``,
    so the event loop never waits for the store). With
    ``refresh_seconds=0`` every request reads the store. When the store cannot be read, the last
    snapshot serves for up to ``max_stale_seconds``; after that keys are refused with 503.
    """

    def __init__(
        self,
        store: Store,
        *,
        refresh_seconds: float = 1.0,
        max_stale_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._refresh_seconds = refresh_seconds
        self._max_stale = max_stale_seconds
        self._clock = clock
        self._by_hash: dict[str, _Entry] = {}
        self._next_refresh = float("-inf")
        self._last_success = float("-inf")
        self._lock = threading.Lock()
        self.last_error: str | None = None
        """Why the last refresh failed, or ``None`` after a successful one (safe to log)."""

    def refresh(self) -> bool:
        """Reload every key from the store now; ``False`` (keeping the old snapshot) when that failed."""
        started = self._clock()
        with self._lock:
            self._next_refresh = started + self._refresh_seconds
            try:
                stored = self._store.api_keys()
            except StorageError as exc:
                self.last_error = exc.message
                return False
            previous = self._by_hash
            fresh: dict[str, _Entry] = {}
            for key in stored:
                old = previous.get(key.hash)
                fresh[key.hash] = old if old is not None and old.stored == key else _entry(key)
            self._by_hash = fresh
            self._last_success = started
            self.last_error = None
            return True

    def __len__(self) -> int:
        return len(self._by_hash)

    def authenticate(self, key: str) -> Principal:
        """The principal of ``key``, or ``Denied`` (401 ``malformed_key``, ``unknown_key``, ``expired_key``,
        ``revoked_key``; 503 ``key_store_unavailable``)."""
        # A known key costs one SHA-256 and one dict lookup; the full format and checksum check runs
        # only on a miss, to tell a mangled key from an unknown one (and before any store read).
        if len(key) != KEY_LENGTH or not key.isascii():
            raise Denied(401, "malformed_key")
        digest = hashlib.sha256(key.encode("ascii")).hexdigest()
        if self._refresh_seconds == 0 and key_id_of(key) is None:
            raise Denied(401, "malformed_key")
        entry = self._lookup(digest)
        if entry is None or not hmac.compare_digest(entry.hash, digest):
            raise Denied(401, "malformed_key" if key_id_of(key) is None else "unknown_key")
        now = time.time()
        if entry.revoked_ts is not None and now >= entry.revoked_ts:
            raise Denied(401, "revoked_key")
        if entry.expires_ts is not None and now >= entry.expires_ts:
            raise Denied(401, "expired_key")
        return entry.principal

    def _lookup(self, digest: str) -> _Entry | None:
        if self._refresh_seconds == 0:
            try:
                stored = self._store.api_key_by_hash(digest)
            except StorageError as exc:
                self.last_error = exc.message
                raise Denied(503, "key_store_unavailable") from None
            return None if stored is None else _entry(stored)
        now = self._clock()
        if now >= self._next_refresh and not self._lock.locked():
            self.refresh()
        if now - self._last_success > self._max_stale:
            raise Denied(503, "key_store_unavailable")
        return self._by_hash.get(digest)
