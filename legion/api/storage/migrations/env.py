"""Alembic environment of the management API database.

``legion.api.storage.migrate`` hands over an open connection in ``config.attributes["connection"]`` (so SQLite gets
the engine's pragmas and write lock); the Alembic command line may instead give ``sqlalchemy.url``. Offline mode
(``--sql``) prints the SQL for a DBA to run.

The whole upgrade is one transaction (SQLite's DDL is transactional too), and on PostgreSQL it first takes an
advisory lock so that API replicas starting together migrate one after the other.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from legion.api.storage.database import create_engine
from legion.api.storage.tables import Base

_ADVISORY_LOCK = 0x4C6567696F6E  # "Legion"


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
        transactional_ddl=True,
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run(connection)
        return
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as opened:
            _run(opened)
    finally:
        engine.dispose()


def run_offline() -> None:
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=Base.metadata,
        literal_binds=True,
        render_as_batch=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
