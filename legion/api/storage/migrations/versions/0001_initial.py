"""The initial schema: resources and their change log, the model registry, revoked tokens.

Revision ID: 0001
Revises:
Create Date: 2026-05-09
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out here rather than imported from ``tables``: a revision must keep meaning what it meant when written.
JSON = sa.JSON()  # not JSONB: see ``tables``
TIME = sa.DateTime(timezone=True)


def identifier(length: int) -> sa.types.TypeEngine[str]:
    """Ordered by code point on PostgreSQL too, as on SQLite."""
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "resources",
        sa.Column("kind", identifier(64), nullable=False),
        sa.Column("id", identifier(253), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("status", JSON, nullable=False),
        sa.Column("labels", JSON, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("deleting", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "id", name="pk_resources"),
    )
    op.create_table(
        "events",
        sa.Column("revision", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(253), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("revision", name="pk_events"),
    )
    revision_table = op.create_table(
        "store_revision",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_store_revision"),
    )
    op.bulk_insert(revision_table, [{"id": 1, "value": 0}])
    op.create_table(
        "model_versions",
        sa.Column("name", identifier(253), nullable=False),
        sa.Column("version", identifier(128), nullable=False),
        sa.Column("manifest", JSON, nullable=False),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("source", sa.String(253), nullable=False),
        sa.Column("artifact_uri", sa.Text(), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("name", "version", name="pk_model_versions"),
    )
    op.create_table(
        "revoked_tokens",
        sa.Column("jti", sa.String(255), nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("revoked_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("jti", name="pk_revoked_tokens"),
    )
    op.create_index("ix_revoked_tokens_expires_at", "revoked_tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_revoked_tokens_expires_at", table_name="revoked_tokens")
    op.drop_table("revoked_tokens")
    op.drop_table("model_versions")
    op.drop_table("store_revision")
    op.drop_table("events")
    op.drop_table("resources")
