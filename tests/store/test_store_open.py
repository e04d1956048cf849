"""Opening a store: URLs, SQLite set-up, migrations, and errors a user can act on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect, text

from garrison.core.errors import StorageError
from garrison.store import Store
from garrison.store.connection import HEAD_REVISION, alembic_config, mask_url
from garrison.store.models import Base

TABLES = {"alembic_version", "assets", "scan_runs", "run_assets", "findings", "events", "event_head"}


def test_open_creates_every_table_and_records_head_revision(store: Store, raw: Engine) -> None:
    assert set(inspect(raw).get_table_names()) >= TABLES
    with raw.connect() as connection:
        assert (
            connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD_REVISION
        )
        head = connection.execute(text("SELECT id, seq, hash FROM event_head")).one()
    assert tuple(head) == (1, 0, "0" * 64)


def test_migrated_schema_matches_models_exactly(store: Store, raw: Engine) -> None:
    with raw.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_compare_metadata_notices_a_schema_that_differs(store: Store, raw: Engine) -> None:
    # The no-diff test above is only worth something if the comparison can fail.
    with raw.begin() as connection:
        connection.execute(text("DROP INDEX ix_findings_fingerprint"))
    with raw.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d[0] for d in diff] == ["add_index"]


def test_head_revision_constant_is_the_newest_migration() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD_REVISION


def test_opening_again_keeps_data_and_runs_no_migration(db_url: str) -> None:
    with Store.open(db_url) as first:
        first.append_events([])
        assert first.list_runs() == []
    with Store.open(db_url) as second:
        assert second.verify_events().intact


def test_downgrade_then_upgrade_round_trips(store: Store, raw: Engine) -> None:
    config = alembic_config()
    with raw.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert set(inspect(raw).get_table_names()) <= {"alembic_version"}
    with Store.open(store.engine.url.render_as_string(hide_password=False)) as reopened:
        assert reopened.verify_events().intact
    assert set(inspect(raw).get_table_names()) >= TABLES


def test_up_to_date_store_opens_without_importing_alembic(db_url: str) -> None:
    Store.open(db_url).close()
    code = (
        "import sys\n"
        "from garrison.store import Store\n"
        f"Store.open({db_url!r}).close()\n"
        "print('alembic' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ,
    )
    assert result.stdout.strip() == "False"


def test_sqlite_creates_parent_folders_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "garrison.db"
    with Store.open(f"sqlite:///{path}") as store, store.engine.connect() as connection:
        assert path.is_file()
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 1000


def test_sqlite_in_memory_store_works() -> None:
    with Store.open("sqlite://") as store:
        assert store.list_runs() == []
        assert store.verify_events().intact


def test_unwritable_location_is_a_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError) as caught:
        Store.open(f"sqlite:///{blocker}/sub/garrison.db")
    assert str(blocker) in caught.value.diagnostics()
    assert caught.value.hint


def test_not_a_database_file_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "garrison.db"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(StorageError, match="cannot open the store at sqlite:///"):
        Store.open(f"sqlite:///{path}")


def test_garbage_url_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match="not a database URL"):
        Store.open("::not a url::")


def test_unsupported_database_is_a_storage_error() -> None:
    with pytest.raises(StorageError) as caught:
        Store.open("mysql+nosuchdriver://user:hunter2@localhost/db")
    assert "hunter2" not in caught.value.diagnostics()
    assert "***" in caught.value.diagnostics()


def test_unreachable_postgres_names_the_url_without_its_password() -> None:
    # Port 1 on localhost refuses connections at once.
    url = "postgresql+psycopg://garrison:s3cret-pw@127.0.0.1:1/garrison?connect_timeout=2"
    with pytest.raises(StorageError) as caught:
        Store.open(url)
    text_shown = caught.value.diagnostics()
    assert "s3cret-pw" not in text_shown
    assert "postgresql+psycopg://garrison:***@127.0.0.1:1/garrison" in text_shown
    assert caught.value.hint


def test_store_created_by_a_newer_garrison_is_refused(db_url: str) -> None:
    Store.open(db_url).close()
    engine = create_engine(db_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StorageError, match="9999") as caught:
        Store.open(db_url)
    assert "newer Garrison" in (caught.value.hint or "")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://u:pw@h:5432/db", "postgresql+psycopg://u:***@h:5432/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///x/y.db", "sqlite:///x/y.db"),
        ("not a url://u:pw@h/db", "not a url://u:***@h/db"),
    ],
)
def test_mask_url_hides_passwords(url: str, shown: str) -> None:
    assert mask_url(url) == shown
