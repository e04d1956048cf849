"""Fixtures for store tests: every test runs on SQLite, and on PostgreSQL when it is configured.

Set ``GARRISON_TEST_PG_URL`` (for example ``postgresql+psycopg://postgres@127.0.0.1:55432/garrison_test``)
to run the ``postgres`` parameters. Each PostgreSQL database handed out is a fresh schema, dropped
afterwards, so tests never see each other's tables.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from garrison.core.registry import Registry
from garrison.store import Store
from tests.store.factories import RULES

PG_URL_ENV = "GARRISON_TEST_PG_URL"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def backend(request: pytest.FixtureRequest) -> str:
    """Which database the test runs on."""
    name: str = request.param
    if name == "postgresql" and not os.environ.get(PG_URL_ENV):
        if os.environ.get("CI"):
            pytest.fail(f"{PG_URL_ENV} is not set: .ci/run must start PostgreSQL for the store tests")
        pytest.skip(f"{PG_URL_ENV} is not set")
    return name


@pytest.fixture
def new_db_url(backend: str, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """A factory: each call returns the URL of a new, empty database on the current backend."""
    counter = itertools.count()
    schemas: list[str] = []
    admin: Engine | None = None
    base = os.environ.get(PG_URL_ENV, "")

    def make() -> str:
        nonlocal admin
        if backend == "sqlite":
            return f"sqlite:///{tmp_path}/db{next(counter)}/garrison.db"
        if admin is None:
            admin = create_engine(base)
        schema = f"garrison_test_{uuid.uuid4().hex[:16]}"
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        schemas.append(schema)
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False)

    yield make
    if admin is not None:
        with admin.begin() as connection:
            for schema in schemas:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def db_url(new_db_url: Callable[[], str]) -> str:
    """URL of a new, empty database."""
    return new_db_url()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A store opened (and migrated) on a new database."""
    with Store.open(db_url) as opened:
        yield opened


@pytest.fixture
def raw(db_url: str) -> Iterator[Engine]:
    """A plain SQLAlchemy engine on the same database, for tampering and inspection with SQL."""
    engine = create_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def registry() -> Registry:
    """A registry knowing the test rules."""
    reg = Registry()
    reg.add_rules(RULES, owner="tests")
    return reg
