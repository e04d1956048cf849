"""Opening a database: URL handling, engine set-up per dialect, and migrations to head.

SQLite gets WAL, foreign keys, a busy timeout, and transactions that SQLAlchemy (not the
``sqlite3`` module) begins, so a writer can ask for ``BEGIN IMMEDIATE``. Alembic is imported only
when the database is behind the code's schema, so opening an up-to-date store stays fast.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from garrison.core.errors import StorageError

if TYPE_CHECKING:
    from alembic.config import Config

#: The newest migration in ``migrations/versions``; a test keeps the two in step.
HEAD_REVISION = "0002"

#: How long a SQLite writer waits for another writer before giving up, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 30_000

#: Execution option naming the statement a SQLite transaction starts with.
SQLITE_BEGIN_OPTION = "garrison_sqlite_begin"

#: Lock key PostgreSQL migrations serialise on, so two processes never migrate at once.
_PG_MIGRATION_LOCK = 0x6761727269736F6E  # "garrison"

_PASSWORD_IN_URL = re.compile(r"(?P<head>://[^/@:]*:)[^/@]*@")


def mask_url(url: str | URL) -> str:
    """The URL with any password replaced by ``***``, safe to show in messages and logs."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _PASSWORD_IN_URL.sub(r"\g<head>***@", url)


def is_sqlite(url: URL) -> bool:
    """True for any SQLite URL (``sqlite://``, ``sqlite+pysqlite://``)."""
    return url.get_backend_name() == "sqlite"


def _sqlite_file(url: URL) -> Path | None:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def create_store_engine(raw_url: str) -> Engine:
    """An engine for ``raw_url`` set up for the store; ``StorageError`` if that is impossible."""
    shown = mask_url(raw_url)
    try:
        url = make_url(raw_url)
    except (ArgumentError, ValueError) as exc:
        raise StorageError(
            f"cannot open the store at {shown}: not a database URL ({exc})",
            hint="use a path such as sqlite:///.garrison/garrison.db or postgresql+psycopg://user@host/db",
        ) from None
    kwargs: dict[str, Any] = {}
    if is_sqlite(url):
        path = _sqlite_file(url)
        if path is None:
            kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            try:
                path.expanduser().parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(
                    f"cannot create the folder for the store at {shown}: {exc.strerror or exc}",
                    hint="choose a writable location with --db or GARRISON_DB",
                ) from None
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(url, **kwargs)
    except (NoSuchModuleError, ModuleNotFoundError, ImportError) as exc:
        hint = "pip install 'garrison[postgres]'" if url.get_backend_name() == "postgresql" else None
        raise StorageError(
            f"cannot open the store at {shown}: the database driver is not available ({exc})", hint=hint
        ) from None
    except (ArgumentError, SQLAlchemyError) as exc:
        raise StorageError(f"cannot open the store at {shown}: {exc}") from None
    if is_sqlite(url):
        _configure_sqlite(engine, wal=_sqlite_file(url) is not None)
    return engine


def _configure_sqlite(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (see _on_begin) instead of the sqlite3 module.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if wal:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        statement = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "BEGIN")
        connection.exec_driver_sql(statement)


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A connection in a write transaction, committed on success and rolled back on error.

    On SQLite the transaction starts with ``BEGIN IMMEDIATE``, taking the write lock before
    anything is read, so read-then-write sequences (the event chain's head) cannot interleave.
    """
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection.execution_options(**{SQLITE_BEGIN_OPTION: "BEGIN IMMEDIATE"})
        with connection.begin():
            yield connection


def current_revision(connection: Connection) -> str | None:
    """The schema revision recorded in ``alembic_version``, or ``None`` for an empty database."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    rows = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    if not rows:
        return None  # migrated down to nothing
    if len(rows) > 1:
        raise StorageError(
            f"the store's alembic_version table holds {len(rows)} revisions; expected one",
            hint="the database was changed by something other than Garrison",
        )
    return str(rows[0])


def migrate(engine: Engine, shown_url: str) -> None:
    """Bring the schema to :data:`HEAD_REVISION`, importing Alembic only when there is work."""
    with engine.connect() as connection:
        revision = current_revision(connection)
        connection.rollback()
    if revision == HEAD_REVISION:
        return
    _upgrade(engine, shown_url)


def _upgrade(engine: Engine, shown_url: str) -> None:
    # Imported here, not at the top: most opens find the schema current and never need Alembic.
    from alembic import command
    from alembic.script import ScriptDirectory

    config = alembic_config()
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    with writing(engine) as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        revision = current_revision(connection)
        if revision is not None and revision not in known:
            raise StorageError(
                f"the store at {shown_url} has schema revision {revision!r}, "
                "which this version of Garrison does not know",
                hint="it was created by a newer Garrison; upgrade Garrison or use another store",
            )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def alembic_config() -> Config:
    """An Alembic ``Config`` whose scripts are the package's ``migrations`` folder."""
    from alembic.config import Config  # lazy, as in _upgrade

    config = Config()
    location = str(Path(__file__).parent / "migrations")
    config.set_main_option("script_location", location.replace("%", "%%"))
    return config
