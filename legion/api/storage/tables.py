"""The tables of the management API database, as typed SQLAlchemy declarative models.

The stores (``resources``, ``registry``, ``tokens``) build Core statements on these classes and hand out frozen
dataclasses, never these rows. The schema is created and changed only by the Alembic migrations in
``migrations/versions``; a test compares these models with the migrated schema so the two cannot drift.

JSON columns are ``JSON`` on both backends, deliberately not ``JSONB`` on PostgreSQL: ``json`` keeps the text as
written, so a spec reads back exactly as it was stored (``JSONB`` reorders keys and turns a float such as
``1e+20`` into an integer). Nothing here needs ``JSONB``'s operators; filters use ``->>``, which both have.
Times are stored in UTC and always read back timezone-aware (SQLite has no time zones, so ``UTCDateTime``
keeps them naive UTC there). Identifiers use the "C" collation on PostgreSQL, so listings are ordered by code
point as on SQLite, whatever the database's locale.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Dialect, Double, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

KIND_LENGTH = 64
ID_LENGTH = 253  # a DNS subdomain, the longest name Kubernetes accepts
VERSION_LENGTH = 128

# Deterministic constraint names, so later migrations (SQLite batch mode included) can name what they alter.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def identifier(length: int) -> TypeEngine[str]:
    """A name compared and ordered byte by byte on every backend."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC ``datetime`` on every backend; naive values are refused rather than guessed."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware value")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(DateTime(timezone=True))


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ResourceRow(Base):
    """One resource of any kind: the desired state (``spec``) and the observed state (``status``)."""

    __tablename__ = "resources"

    kind: Mapped[str] = mapped_column(identifier(KIND_LENGTH), primary_key=True)
    id: Mapped[str] = mapped_column(identifier(ID_LENGTH), primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[dict[str, Any]] = mapped_column(JSON)
    labels: Mapped[dict[str, str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    generation: Mapped[int] = mapped_column(Integer)
    """Bumped when the spec changes: what a reconcile loop compares with the generation it last acted on."""
    version: Mapped[int] = mapped_column(Integer)
    """Bumped on every write: the token of optimistic concurrency."""
    deleting: Mapped[bool] = mapped_column(Boolean)


class EventRow(Base):
    """One write to ``resources``, numbered by the store revision it produced (see ``RevisionRow``)."""

    __tablename__ = "events"

    revision: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(KIND_LENGTH))
    resource_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    action: Mapped[str] = mapped_column(String(16))
    generation: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class RevisionRow(Base):
    """The single-row counter of writes to ``resources``.

    Every write increments it as its last statement, so the row lock orders commits: revision ``n`` is never
    visible before revision ``n - 1`` (a sequence would hand out numbers in start order, not commit order, and a
    poller could skip a slow writer's event).
    """

    __tablename__ = "store_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(BigInteger)


class ModelVersionRow(Base):
    """The model registry: every trained or imported model version, its manifest and metrics."""

    __tablename__ = "model_versions"

    name: Mapped[str] = mapped_column(identifier(ID_LENGTH), primary_key=True)
    version: Mapped[str] = mapped_column(identifier(VERSION_LENGTH), primary_key=True)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(ID_LENGTH))
    artifact_uri: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RevokedTokenRow(Base):
    """A revoked model API token, kept until it would have expired anyway."""

    __tablename__ = "revoked_tokens"
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime)


REQUEST_ID_LENGTH = 200  # the gateway's limit on a caller's Request-ID


class PredictionRow(Base):
    """One logged prediction (``request_response`` and ``response_body`` records merged by request id)."""

    __tablename__ = "predictions"

    request_id: Mapped[str] = mapped_column(String(REQUEST_ID_LENGTH), primary_key=True)
    deployment: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    model_name: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    model_version: Mapped[str | None] = mapped_column(String(VERSION_LENGTH))
    endpoint: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    time: Mapped[float] = mapped_column(Double, index=True)
    """Unix time in seconds of the prediction."""
    status: Mapped[int | None] = mapped_column(Integer)
    latency_s: Mapped[float | None] = mapped_column(Double)
    inputs: Mapped[Any] = mapped_column(JSON, nullable=True)
    outputs: Mapped[Any] = mapped_column(JSON, nullable=True)
    has_outputs: Mapped[bool] = mapped_column(Boolean)


class FeedbackRow(Base):
    """Ground truth for one request id and, once its prediction is known, how the prediction scored."""

    __tablename__ = "feedback"

    request_id: Mapped[str] = mapped_column(String(REQUEST_ID_LENGTH), primary_key=True)
    deployment: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    model_name: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    model_version: Mapped[str | None] = mapped_column(String(VERSION_LENGTH))
    payload: Mapped[Any] = mapped_column(JSON)
    received: Mapped[float] = mapped_column(Double)
    scored: Mapped[bool] = mapped_column(Boolean)
    """Joined to its prediction (``kind`` is ``None`` when the two could not be compared)."""
    kind: Mapped[str | None] = mapped_column(String(16))
    compared: Mapped[int] = mapped_column(Integer)
    correct: Mapped[int] = mapped_column(Integer)
    abs_error: Mapped[float] = mapped_column(Double)
    prediction_time: Mapped[float | None] = mapped_column(Double, index=True)
    """Time of the prediction it was joined to: quality windows are over when predictions were made."""
