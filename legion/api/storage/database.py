"""Engines, transactions and migrations: the one place where the database driver meets Legion.

- ``create_engine(url)``: SQLite (the default, ``sqlite_url(data_dir)``) in WAL mode with foreign keys and a busy
  timeout, or PostgreSQL through psycopg 3 (``postgresql+psycopg://user:password@host/db``).
- ``transaction(engine, write=...)``: every store method runs its statements inside one of these, so a write is
  one transaction and a failed write changes nothing. It is also the error boundary: SQLAlchemy and driver
  exceptions become Legion errors here and nowhere else (a duplicate key is a ``ConflictError``, an unreachable
  database an ``UnavailableError`` whose message never carries the URL's password).
- ``migrate(url)``: brings any database, empty or older, to the newest schema with the Alembic scripts shipped in
  ``migrations/``; no ``alembic.ini`` is needed (``alembic_config`` builds the configuration in code).

SQLite only allows one writer at a time. A transaction that reads and then writes would fail at once with
"database is locked" when another writer went first, whatever the busy timeout, so write transactions start
with ``BEGIN IMMEDIATE``: they take the write lock up front and wait their turn instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import sqlalchemy
import sqlalchemy.exc
from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import URL, Connection, Engine, event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.pool import StaticPool

from legion.core.errors import ConflictError, InvalidInputError, LegionError, UnavailableError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

_ALEMBIC = threading.Lock()  # Alembic's ``context`` and ``op`` proxies are globals: one migration at a time
_WRITE = "legion_write"  # execution option of a connection that will write (BEGIN IMMEDIATE on SQLite)
_UNIQUE_VIOLATION = "23505"  # PostgreSQL SQLSTATEs
_UNDEFINED_TABLE = "42P01"
_UNDEFINED_COLUMN = "42703"
_SQLITE_UNIQUE = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})
# Cannot connect, connection lost, pool exhausted, SQLite's busy timeout ran out: worth retrying later.
_UNAVAILABLE = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, sqlalchemy.exc.TimeoutError)


def sqlite_url(data_dir: Path | str) -> str:
    """The default database: ``legion.db`` in the data directory, e.g. ``sqlite:////var/lib/legion/legion.db``."""
    return f"sqlite:///{Path(data_dir).resolve() / 'legion.db'}"


def create_engine(url: str | URL, *, busy_timeout_s: float = 5.0) -> Engine:
    """An engine for a ``sqlite://`` or ``postgresql+psycopg://`` URL, set up the way the stores expect.

    ``postgresql://`` and ``postgres://`` mean psycopg 3. On SQLite every connection gets WAL mode, foreign keys
    and ``busy_timeout_s`` (how long a writer waits for another one, in seconds); the data directory is created if
    missing. ``sqlite://`` alone is an in-memory database shared by every thread of the engine (tests).

    >>> engine = create_engine(sqlite_url("/tmp/legion"))
    """
    unsupported = InvalidInputError(
        "not a supported database URL: use sqlite:///<path> or postgresql+psycopg://<user>:<password>@<host>/<db>"
    )
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise unsupported from None  # the parser's message repeats the URL, password included
    if parsed.drivername in ("postgres", "postgresql"):  # the psycopg 3 driver is the one Legion installs
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise unsupported
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, busy_timeout_s)
    return sqlalchemy.create_engine(parsed, pool_pre_ping=True, json_serializer=_dump_json)


def _owner_only(database: Path) -> None:
    """Make the database file (it holds every logged prediction) readable by its owner only: created 0600, or
    narrowed to it when an older version made it with the umask's mode. SQLite gives its ``-wal`` and ``-shm``
    files the mode of the database file. A path that cannot be opened is left to SQLite, which says why."""
    with contextlib.suppress(OSError):
        os.close(os.open(database, os.O_RDWR | os.O_CREAT, 0o600))
    for path in (database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")):
        with contextlib.suppress(OSError):
            if path.is_file():
                path.chmod(0o600)


def _sqlite_engine(url: URL, busy_timeout_s: float) -> Engine:
    in_memory = url.database in (None, "", ":memory:")
    if not in_memory:
        database = Path(str(url.database))
        database.parent.mkdir(parents=True, exist_ok=True)
        _owner_only(database)
    engine = sqlalchemy.create_engine(
        url,
        json_serializer=_dump_json,
        connect_args={"check_same_thread": False},  # the pool hands a connection to one thread at a time
        poolclass=StaticPool if in_memory else None,
    )
    busy_timeout_ms = int(busy_timeout_s * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Leave transactions to SQLAlchemy's "begin" event below: pysqlite's own implicit BEGIN would defer
        # until the first write and cannot be IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
            _use_wal(cursor, deadline=time.monotonic() + busy_timeout_s)
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")  # durable enough with WAL, and much faster than FULL
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if connection.get_execution_options().get(_WRITE) else "BEGIN")

    return engine


def _use_wal(cursor: Any, *, deadline: float) -> None:
    """Switch the file to WAL (a lasting property of the file, so usually it is already).

    Switching needs the file to itself, and SQLite answers "database is locked" at once, without its busy
    handler, when another process opened the new file at the same moment: so retry until ``deadline``.
    An in-memory database stays in "memory" mode, which is fine.
    """
    delay_s = 0.005
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as exc:
            if not getattr(exc, "sqlite_errorname", "").startswith("SQLITE_BUSY") or time.monotonic() >= deadline:
                raise
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, 0.1)
        else:
            return


def _dump_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def upsert(engine: Engine, table: Any) -> Any:
    """``INSERT`` for ``table`` with ``ON CONFLICT`` clauses (SQLite's and PostgreSQL's spell them alike)."""
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def resolve_engine(bind: Engine | str) -> tuple[Engine, bool]:
    """The engine to use and whether the caller created it (and so must dispose of it)."""
    if isinstance(bind, Engine):
        return bind, False
    return create_engine(bind), True


@contextmanager
def transaction(engine: Engine, *, write: bool = False, conflict: str | None = None) -> Iterator[Connection]:
    """One transaction: committed when the block ends, rolled back when it raises.

    ``write=True`` takes SQLite's write lock at the start (see the module docstring). ``conflict`` is the message
    of the ``ConflictError`` raised when the block breaks a unique key, e.g. ``"ModelRoute 'r' already exists"``.
    """
    with database_errors(engine.url, conflict=conflict), engine.connect() as connection:
        if write:
            connection.execution_options(**{_WRITE: True})
        with connection.begin():
            yield connection


@contextmanager
def database_errors(url: URL, *, conflict: str | None = None) -> Iterator[None]:
    """Translate SQLAlchemy and driver exceptions raised in the block into Legion errors (the one boundary)."""
    try:
        yield
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise _translate(exc, url, conflict) from exc


def _translate(exc: sqlalchemy.exc.SQLAlchemyError, url: URL, conflict: str | None) -> LegionError:
    orig = getattr(exc, "orig", None)
    where = url.render_as_string(hide_password=True)
    reason = _reason(orig or exc, url)
    error: LegionError
    if isinstance(exc, sqlalchemy.exc.IntegrityError) and _is_unique_violation(orig):
        error = ConflictError(conflict or "the record exists already")
    elif isinstance(exc, sqlalchemy.exc.IntegrityError):
        error = LegionError(f"database {where} refused the write: {reason}")
    elif _is_missing_schema(orig):
        error = UnavailableError(
            f"database {where} has no Legion schema, or an old one ({reason}); "
            "run the migrations (legion.api.storage.migrate) first"
        )
    elif isinstance(exc, sqlalchemy.exc.DataError):
        error = InvalidInputError(f"the database refused a value: {reason}")
    elif isinstance(exc, _UNAVAILABLE) or (isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated):
        error = UnavailableError(f"database {where} is unavailable: {reason}")
    elif isinstance(exc, sqlalchemy.exc.StatementError) and isinstance(orig, TypeError | ValueError):
        error = InvalidInputError(f"a value cannot be stored: {reason}")
    else:
        error = LegionError(f"database {where} failed: {type(orig or exc).__name__}: {reason}")
    return error


def _reason(error: BaseException, url: URL) -> str:
    lines = str(error).strip().splitlines()
    reason = lines[0] if lines else type(error).__name__
    if url.password:
        reason = reason.replace(str(url.password), "***")
    return reason


def _is_unique_violation(orig: object) -> bool:
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is not None:
        return bool(sqlstate == _UNIQUE_VIOLATION)
    return getattr(orig, "sqlite_errorname", None) in _SQLITE_UNIQUE


def _is_missing_schema(orig: object) -> bool:
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate in (_UNDEFINED_TABLE, _UNDEFINED_COLUMN)
    return str(orig).startswith(("no such table", "no such column"))


def alembic_config(url: str | URL | None = None) -> Config:
    """The Alembic configuration of Legion's migrations, built in code (no ``alembic.ini``).

    ``migrate`` uses it; so can a developer writing the next migration::

        from alembic import command
        command.revision(alembic_config("sqlite:///dev.db"), "add a column", autogenerate=True)
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("path_separator", "os")
    if url is not None:
        # ConfigParser interpolates "%": a percent-encoded password must survive it.
        rendered = make_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def migrate(bind: Engine | str) -> None:
    """Upgrade the database to the newest schema; a database already there is left as it is.

    Safe to run from several processes at once: PostgreSQL serialises them on an advisory lock, SQLite on its
    write lock. Within a process calls take turns, as Alembic's ``context`` and ``op`` are process-wide.

    >>> migrate("sqlite:////var/lib/legion/legion.db")
    """
    engine, owned = resolve_engine(bind)
    where = engine.url.render_as_string(hide_password=True)
    try:
        with _ALEMBIC, database_errors(engine.url), engine.connect() as connection:
            connection.execution_options(**{_WRITE: True})
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except CommandError as exc:
        # e.g. the database was migrated by a newer Legion whose revisions this one does not know.
        raise LegionError(f"cannot migrate database {where}: {exc}") from exc
    finally:
        if owned:
            engine.dispose()


class EngineUser:
    """Base of the stores: holds an engine (shared, or made from a URL and then disposed by ``close``)."""

    def __init__(self, bind: Engine | str) -> None:
        self._engine, self._owns_engine = resolve_engine(bind)

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        """Dispose of the engine if this object created it."""
        if self._owns_engine:
            self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
