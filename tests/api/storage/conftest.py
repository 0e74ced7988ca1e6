"""Databases for the storage tests: every test runs once on SQLite and once on PostgreSQL.

SQLite: a fresh migrated file in the test's ``tmp_path``. PostgreSQL: one database per test session, named
``legion_test_<random hex>`` so that parallel runs never meet, created through the ``test`` database of the
server at ``LEGION_TEST_POSTGRES_URL``, migrated once, emptied before each test and dropped at the end.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from legion.api.storage import (
    Cipher,
    ModelRegistry,
    ResourceStore,
    TokenRevocations,
    create_engine,
    migrate,
    sqlite_url,
)

SERVER_URL = os.environ.get("LEGION_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SECRET_FIELDS = {"Connection": ["password", "keySecret"]}
TABLES = ("resources", "events", "model_versions", "revoked_tokens", "predictions", "feedback")


class PostgresServer:
    """Creates and drops uniquely named databases on the test server."""

    def __init__(self, url: str) -> None:
        self.url = sa.make_url(url)
        self.admin = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
        self.created: list[str] = []

    def create_database(self) -> str:
        name = f"legion_test_{secrets.token_hex(6)}"
        try:
            with self.admin.connect() as connection:
                connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        except sa.exc.OperationalError as exc:
            pytest.fail(
                f"PostgreSQL at {self.url.render_as_string()} is not reachable (deselect with -m 'not postgres'): {exc}"
            )
        self.created.append(name)
        return self.url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self.admin.connect() as connection:
            for name in self.created:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.admin.dispose()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer(SERVER_URL)
    yield server
    server.drop_all()


@pytest.fixture(scope="session")
def postgres_engine(postgres_server: PostgresServer) -> Iterator[Engine]:
    """The session's migrated PostgreSQL database."""
    engine = create_engine(postgres_server.create_database())
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """An empty, migrated database; ``[sqlite]`` and ``[postgres]`` in the test ids."""
    if request.param == "sqlite":
        sqlite_engine = create_engine(sqlite_url(tmp_path_factory.mktemp("db")))
        migrate(sqlite_engine)
        yield sqlite_engine
        sqlite_engine.dispose()
        return
    engine: Engine = request.getfixturevalue("postgres_engine")
    with engine.begin() as connection:
        connection.exec_driver_sql(f"TRUNCATE {', '.join(TABLES)}")
        connection.exec_driver_sql("UPDATE store_revision SET value = 0")
    yield engine


@pytest.fixture
def key() -> str:
    return Cipher.generate_key()


@pytest.fixture
def store(engine: Engine, key: str) -> ResourceStore:
    return ResourceStore(engine, Cipher([key]), secret_fields=SECRET_FIELDS)


@pytest.fixture
def registry(engine: Engine) -> ModelRegistry:
    return ModelRegistry(engine)


@pytest.fixture
def revocations(engine: Engine) -> TokenRevocations:
    return TokenRevocations(engine)
