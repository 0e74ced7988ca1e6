"""Migrations from an empty database (twice, downgrade and back), the schema they make, and error translation."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from legion.api.storage import Cipher, ResourceStore, alembic_config, create_engine, migrate, sqlite_url
from legion.api.storage.tables import Base
from legion.core.errors import InvalidInputError, UnavailableError

ROOT = Path(__file__).resolve().parents[3]
TABLES = {
    "alembic_version", "resources", "events", "store_revision", "model_versions", "revoked_tokens", "predictions",
    "feedback",
}  # fmt: skip


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a database that has never been migrated."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "data")
    server = request.getfixturevalue("postgres_server")
    url: str = server.create_database()
    return url


@pytest.fixture
def empty_engine(empty_url: str) -> Iterator[Engine]:
    engine = create_engine(empty_url)
    yield engine
    engine.dispose()


def head() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def test_migrating_an_empty_database_twice_reaches_head_once(empty_url: str, empty_engine: Engine) -> None:
    migrate(empty_url)
    assert current(empty_engine) == head() == "0002"
    assert set(sa.inspect(empty_engine).get_table_names()) >= TABLES
    store = ResourceStore(empty_engine, Cipher([Cipher.generate_key()]))
    store.create("ModelRoute", "r", {"urlPrefix": "/r"})

    migrate(empty_url)

    assert current(empty_engine) == "0002"
    assert store.get("ModelRoute", "r").spec == {"urlPrefix": "/r"}
    assert store.revision() == 1


MIGRATORS = 2  # as many as this machine has cores: more only adds start-up time
MIGRATOR = """
import sys
from legion.api.storage import migrate
print("ready", flush=True)
sys.stdin.readline()
migrate(sys.argv[1])
"""


def test_processes_starting_together_migrate_one_after_the_other(empty_url: str, empty_engine: Engine) -> None:
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATOR, empty_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(MIGRATORS)
    ]
    try:
        for process in processes:  # every one imported and waiting: release them together
            assert process.stdout is not None and process.stdout.readline() == "ready\n"
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        errors = [process.communicate(timeout=60)[1] for process in processes]
    finally:
        for process in processes:
            process.kill()
            process.wait()

    assert [process.returncode for process in processes] == [0] * MIGRATORS, errors
    assert current(empty_engine) == head()
    assert ResourceStore(empty_engine, Cipher([Cipher.generate_key()])).revision() == 0


def test_the_migrated_schema_matches_the_models(empty_engine: Engine) -> None:
    migrate(empty_engine)

    with empty_engine.connect() as connection:
        differences = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata
        )

    assert differences == []


def test_downgrade_to_nothing_and_upgrade_again(empty_engine: Engine) -> None:
    migrate(empty_engine)
    config = alembic_config()
    with empty_engine.connect() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert set(sa.inspect(empty_engine).get_table_names()) <= {"alembic_version"}

    migrate(empty_engine)

    assert current(empty_engine) == head()


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    engine = create_engine(sqlite_url(tmp_path / "new" / "dir"), busy_timeout_s=2.5)
    try:
        with engine.connect() as connection:
            pragmas = {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            }
    finally:
        engine.dispose()

    assert pragmas == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 2500}
    assert (tmp_path / "new" / "dir" / "legion.db").exists()


def test_an_in_memory_sqlite_database_is_shared_by_the_engine() -> None:
    store = ResourceStore("sqlite://", Cipher([Cipher.generate_key()]))
    migrate(store.engine)
    store.create("ModelRoute", "r", {})

    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(store.get, "ModelRoute", "r").result().version == 1
    store.close()


def test_an_unmigrated_database_says_to_run_the_migrations(empty_engine: Engine) -> None:
    store = ResourceStore(empty_engine, Cipher([Cipher.generate_key()]))

    with pytest.raises(UnavailableError, match="run the migrations"):
        store.get("ModelRoute", "r")


def test_an_unreachable_postgresql_is_unavailable_without_the_password() -> None:
    url = "postgresql+psycopg://legion:hunter2-secret@127.0.0.1:1/legion?connect_timeout=5"
    store = ResourceStore(url, Cipher([Cipher.generate_key()]))

    with pytest.raises(UnavailableError) as raised:
        store.get("ModelRoute", "r")
    store.close()
    with pytest.raises(UnavailableError) as migrating:
        migrate(url)

    for error in (raised.value, migrating.value):
        assert error.status == 503
        assert "127.0.0.1:1" in error.detail
        assert "hunter2-secret" not in error.detail
        assert "hunter2-secret" not in str(error.__cause__)


def test_an_unopenable_sqlite_file_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "legion.db").mkdir()  # a directory where the file should be
    store = ResourceStore(sqlite_url(tmp_path), Cipher([Cipher.generate_key()]))

    with pytest.raises(UnavailableError, match="unable to open database file"):
        store.get("ModelRoute", "r")
    store.close()


@pytest.mark.parametrize(
    "url", ["not a url", "mysql://u:hunter2-secret@host/db", "postgresql+psycopg2://u:hunter2-secret@h/d"]
)
def test_a_bad_url_is_invalid_input_without_the_password(url: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        create_engine(url)

    assert "hunter2-secret" not in str(raised.value)
    assert raised.value.__cause__ is None


def test_a_postgresql_url_without_a_driver_means_psycopg() -> None:
    engine = create_engine("postgres://legion:hunter2-secret@127.0.0.1/legion")

    assert engine.url.drivername == "postgresql+psycopg"
    engine.dispose()
