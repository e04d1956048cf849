"""API keys: format, storage (hash only), events, the hot-path cache, and the authenticator's headers."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from garrison.core.errors import ConfigError, UsageError
from garrison.core.events import utc_now
from garrison.gateway.auth_config import AuthConfig, MtlsConfig
from garrison.gateway.authn import PUBLIC_401, Authenticator
from garrison.gateway.keys import (
    KEY_LENGTH,
    KeyCache,
    create_key,
    hash_key,
    key_id_of,
    list_keys,
    new_key,
    parse_duration,
    revoke_key,
    rotate_key,
)
from garrison.gateway.types import Denied
from garrison.store import Store
from garrison.store.rows import StoredApiKey


class FakeClock:
    """A monotonic clock the test moves by hand (no sleeping, no timing asserts)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    with Store.open(f"sqlite:///{db}") as opened:
        yield opened


def denied(fn: object, *args: object, **kwargs: object) -> Denied:
    assert callable(fn)
    with pytest.raises(Denied) as caught:
        fn(*args, **kwargs)
    return caught.value


def headers(key: str, name: bytes = b"authorization") -> list[tuple[bytes, bytes]]:
    value = f"Bearer {key}" if name == b"authorization" else key
    return [(b"host", b"example"), (name, value.encode())]


# -- format ------------------------------------------------------------------------------------


def test_new_keys_have_the_prefix_an_id_and_a_valid_checksum() -> None:
    key_id, key = new_key()
    assert key.startswith(f"gar_{key_id}_")
    assert len(key) == KEY_LENGTH
    assert key_id_of(key) == key_id
    assert new_key()[1] != key


@pytest.mark.parametrize(
    "mangle",
    [
        lambda k: k[:-1],
        lambda k: k + "x",
        lambda k: k[:-1] + ("A" if k[-1] != "A" else "B"),
        lambda k: k[:20] + ("Z" if k[20] != "Z" else "Y") + k[21:],
        lambda k: k.replace("gar_", "GAR_"),
        lambda k: k[:-2] + "é" + k[-1],
        lambda k: "",
    ],
    ids=["truncated", "extended", "bad-checksum", "typo-in-secret", "prefix-case", "non-ascii", "empty"],
)
def test_mangled_keys_are_not_well_formed(mangle: object) -> None:
    _, key = new_key()
    assert callable(mangle)
    assert key_id_of(mangle(key)) is None


def test_hash_is_sha256_of_the_key() -> None:
    _, key = new_key()
    assert hash_key(key) == hashlib.sha256(key.encode()).hexdigest()


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("45m", 2700), ("12h", 43200), ("30d", 2592000)])
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "0d", "3y", "-1d", "1.5h", "d", "999999w", "36601d"])
def test_parse_duration_refuses_nonsense(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


# -- storage and events ------------------------------------------------------------------------


def test_the_store_keeps_only_the_hash_and_events_never_hold_the_key(store: Store, db: Path) -> None:
    created = create_key(store, name="ci", roles=["user"], scopes=["invoke"], actor="alice")
    secret = created.key.split("_", 2)[2]
    raw = db.read_bytes() + (Path(f"{db}-wal").read_bytes() if Path(f"{db}-wal").exists() else b"")
    assert created.key.encode() not in raw
    assert secret[:20].encode() not in raw
    [stored] = store.api_keys()
    assert stored.hash == hash_key(created.key)
    assert stored.prefix == f"gar_{created.record.id}"
    assert stored.roles == ("user",)
    assert stored.scopes == ("invoke",)
    [record] = store.event_records()
    assert record.event.type == "gateway.key.created"
    assert record.event.actor == "alice"
    assert record.event.subject == f"key_{created.record.id}"
    dumped = repr(record.event)
    assert created.key not in dumped
    assert stored.hash not in dumped
    assert store.verify_events().intact


def test_create_refuses_no_roles_and_bad_names(store: Store) -> None:
    with pytest.raises(UsageError):
        create_key(store, name="x", roles=[], actor="a")
    with pytest.raises(UsageError):
        create_key(store, name=" ", roles=["user"], actor="a")
    with pytest.raises(UsageError):
        create_key(store, name="x", roles=["bad role"], actor="a")
    assert store.api_keys() == []


def test_revoke_and_list(store: Store) -> None:
    first = create_key(store, name="one", roles=["user"], actor="a")
    create_key(store, name="two", roles=["user"], expires_in=timedelta(days=1), actor="a")
    revoked = revoke_key(store, first.record.id, actor="bob", reason="leaked")
    assert revoked.status() == "revoked"
    statuses = {r.name: r.status() for r in list_keys(store)}
    assert statuses == {"one": "revoked", "two": "active"}
    types = [r.event.type for r in store.event_records()]
    assert types == ["gateway.key.created", "gateway.key.created", "gateway.key.revoked"]
    with pytest.raises(UsageError, match="no API key"):
        revoke_key(store, "000000000000", actor="bob")


def test_rotate_makes_a_successor_and_revokes_the_old_key(store: Store) -> None:
    old = create_key(store, name="svc", roles=["user", "ops"], scopes=["invoke"], actor="a")
    new = rotate_key(store, old.record.id, actor="carol")
    assert new.record.roles == {"user", "ops"}
    assert new.record.scopes == {"invoke"}
    assert new.record.rotated_from == old.record.id
    cache = KeyCache(store, refresh_seconds=0)
    assert denied(cache.authenticate, old.key).reason == "revoked_key"
    assert cache.authenticate(new.key).id == f"key_{new.record.id}"
    with pytest.raises(UsageError, match="revoked"):
        rotate_key(store, old.record.id, actor="carol")
    assert [r.event.type for r in store.event_records()][-2:] == [
        "gateway.key.created",
        "gateway.key.rotated",
    ]


def test_rotate_with_grace_keeps_the_old_key_working_until_then(store: Store) -> None:
    old = create_key(store, name="svc", roles=["user"], expires_in=timedelta(days=30), actor="a")
    new = rotate_key(store, old.record.id, actor="a", grace=timedelta(hours=1))
    cache = KeyCache(store, refresh_seconds=0)
    assert cache.authenticate(old.key).id == f"key_{old.record.id}"
    statuses = {r.id: r.status() for r in list_keys(store)}
    assert statuses == {old.record.id: "revoking", new.record.id: "active"}
    assert new.record.expires is not None
    assert new.record.expires - new.record.created == timedelta(days=30)
    # An explicit revocation overrides the grace period.
    revoke_key(store, old.record.id, actor="a")
    assert denied(cache.authenticate, old.key).reason == "revoked_key"


# -- the hot-path cache ------------------------------------------------------------------------


def test_cache_outcomes_with_store_checked_every_request(store: Store) -> None:
    good = create_key(store, name="good", roles=["user"], scopes=["invoke"], actor="a")
    cache = KeyCache(store, refresh_seconds=0)
    principal = cache.authenticate(good.key)
    assert principal.kind == "api_key"
    assert principal.roles == {"user"}
    assert principal.scopes == {"invoke"}
    assert principal.name == "good"
    assert good.key not in repr(principal)
    assert denied(cache.authenticate, new_key()[1]).reason == "unknown_key"
    assert denied(cache.authenticate, good.key[:-1]).reason == "malformed_key"
    assert denied(cache.authenticate, "gar_nothing").reason == "malformed_key"
    key_id, key = new_key()
    past = utc_now() - timedelta(days=2)
    store.add_api_key(
        StoredApiKey(
            id=key_id,
            name="old",
            hash=hash_key(key),
            prefix=f"gar_{key_id}",
            roles=("user",),
            scopes=(),
            created_at=past,
            expires_at=past + timedelta(days=1),
        )
    )
    assert denied(cache.authenticate, key).reason == "expired_key"
    revoke_key(store, good.record.id, actor="a")
    assert denied(cache.authenticate, good.key).reason == "revoked_key"


def test_revocation_is_seen_after_the_refresh_interval_and_not_before(store: Store) -> None:
    created = create_key(store, name="k", roles=["user"], actor="a")
    clock = FakeClock()
    cache = KeyCache(store, refresh_seconds=1.0, clock=clock)
    assert cache.authenticate(created.key).name == "k"
    later = create_key(store, name="later", roles=["user"], actor="a")
    revoke_key(store, created.record.id, actor="a")
    clock.now += 0.5
    assert cache.authenticate(created.key).name == "k"  # the snapshot is at most 1 s old
    assert denied(cache.authenticate, later.key).reason == "unknown_key"
    clock.now += 0.6
    assert denied(cache.authenticate, created.key).reason == "revoked_key"
    assert cache.authenticate(later.key).name == "later"


def test_unreadable_store_serves_the_last_snapshot_then_fails_closed(store: Store) -> None:
    created = create_key(store, name="k", roles=["user"], actor="a")
    clock = FakeClock()
    cache = KeyCache(store, refresh_seconds=1.0, max_stale_seconds=10.0, clock=clock)
    assert cache.authenticate(created.key).name == "k"
    with store.engine.begin() as connection:
        connection.execute(text("DROP TABLE api_keys"))
    clock.now += 5
    assert cache.authenticate(created.key).name == "k"
    assert cache.last_error is not None
    assert "api_keys" in cache.last_error
    clock.now += 6
    failure = denied(cache.authenticate, created.key)
    assert (failure.status, failure.reason) == (503, "key_store_unavailable")
    every_request = KeyCache(store, refresh_seconds=0)
    failure = denied(every_request.authenticate, created.key)
    assert (failure.status, failure.reason) == (503, "key_store_unavailable")


# -- the authenticator with API keys -----------------------------------------------------------


@pytest.fixture
def authn(store: Store) -> Authenticator:
    return Authenticator(AuthConfig(key_refresh_seconds=0), store=store)


def test_bearer_and_x_api_key_both_authenticate(store: Store, authn: Authenticator) -> None:
    created = create_key(store, name="k", roles=["user"], actor="a")
    assert authn.authenticate(headers(created.key)).id == f"key_{created.record.id}"
    assert authn.authenticate(headers(created.key, b"x-api-key")).id == f"key_{created.record.id}"
    both = [(b"authorization", f"Bearer {created.key}".encode()), (b"x-api-key", created.key.encode())]
    assert authn.authenticate(both).id == f"key_{created.record.id}"


def _hostile_cases(good: str, revoked: str, expired: str) -> list[tuple[list[tuple[bytes, bytes]], str]]:
    return [
        ([], "missing_credentials"),
        ([(b"authorization", b"Basic dXNlcjpwYXNz")], "unsupported_scheme"),
        ([(b"authorization", b"Bearer ")], "malformed_credentials"),
        ([(b"x-api-key", b"")], "malformed_credentials"),
        ([(b"x-api-key", b"hunter2")], "malformed_credentials"),
        ([(b"x-api-key", "gar_é".encode())], "malformed_credentials"),
        ([(b"x-api-key", b"x" * 20000)], "malformed_credentials"),
        (headers(good[:-3] + "AAA"), "malformed_key"),
        (headers("gar_" + "0" * 12 + "_" + "A" * 49), "malformed_key"),
        (headers(new_key()[1]), "unknown_key"),
        (headers(revoked), "revoked_key"),
        (headers(expired), "expired_key"),
        ([*headers(good), (b"x-api-key", new_key()[1].encode())], "conflicting_credentials"),
        (headers(good) + headers(revoked), "conflicting_credentials"),
    ]


def test_hostile_api_key_requests_get_one_generic_401(store: Store, authn: Authenticator) -> None:
    good = create_key(store, name="good", roles=["user"], actor="a")
    revoked = create_key(store, name="revoked", roles=["user"], actor="a")
    revoke_key(store, revoked.record.id, actor="a")
    key_id, expired = new_key()
    past = utc_now() - timedelta(days=2)
    store.add_api_key(
        StoredApiKey(
            id=key_id,
            name="expired",
            hash=hash_key(expired),
            prefix=f"gar_{key_id}",
            roles=("user",),
            scopes=(),
            created_at=past,
            expires_at=past + timedelta(hours=1),
        )
    )
    for request, reason in _hostile_cases(good.key, revoked.key, expired):
        failure = denied(authn.authenticate, request)
        assert (failure.status, failure.reason) == (401, reason), request
        assert failure.public == PUBLIC_401
        for secret in (good.key, revoked.key, expired, hash_key(good.key), "api_keys", key_id):
            assert secret not in failure.public
            assert secret not in failure.reason
            assert secret not in str(failure)
        assert dict(failure.headers)["www-authenticate"].startswith("Bearer")


def test_jwt_shaped_credential_without_jwt_config_is_refused(authn: Authenticator) -> None:
    failure = denied(authn.authenticate, headers("aaa.bbb.ccc"))
    assert (failure.status, failure.reason) == (401, "jwt_disabled")


def test_api_keys_can_be_turned_off(store: Store) -> None:
    created = create_key(store, name="k", roles=["user"], actor="a")
    off = Authenticator(AuthConfig(api_keys=False), store=store)
    assert denied(off.authenticate, headers(created.key)).reason == "api_keys_disabled"
    with pytest.raises(ConfigError):
        Authenticator(AuthConfig())


def test_client_certificates(store: Store) -> None:
    config = AuthConfig(
        key_refresh_seconds=0, mtls=MtlsConfig(required=True, subject_roles={"CN=batch,O=acme": ["batch"]})
    )
    authn = Authenticator(config, store=store)
    principal = authn.authenticate([], client_cert_subject="CN=batch,O=acme")
    assert (principal.kind, principal.roles) == ("mtls", {"batch"})
    assert denied(authn.authenticate, [], client_cert_subject="CN=eve").reason == "unknown_certificate"
    created = create_key(store, name="k", roles=["user"], actor="a")
    assert denied(authn.authenticate, headers(created.key)).reason == "mtls_required"
    with_cert = authn.authenticate(headers(created.key), client_cert_subject="CN=eve")
    assert with_cert.kind == "api_key"
