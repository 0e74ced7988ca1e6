"""The feedback store: logged predictions and the ground truth joined to them by request id.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON()  # not JSONB: see ``tables``


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("request_id", sa.String(200), nullable=False),
        sa.Column("deployment", sa.String(253), nullable=True),
        sa.Column("model_name", sa.String(253), nullable=True),
        sa.Column("model_version", sa.String(128), nullable=True),
        sa.Column("endpoint", sa.String(253), nullable=True),
        sa.Column("time", sa.Double(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("latency_s", sa.Double(), nullable=True),
        sa.Column("inputs", JSON, nullable=True),
        sa.Column("outputs", JSON, nullable=True),
        sa.Column("has_outputs", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_predictions"),
    )
    op.create_index("ix_predictions_time", "predictions", ["time"])
    op.create_table(
        "feedback",
        sa.Column("request_id", sa.String(200), nullable=False),
        sa.Column("deployment", sa.String(253), nullable=True),
        sa.Column("model_name", sa.String(253), nullable=True),
        sa.Column("model_version", sa.String(128), nullable=True),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("received", sa.Double(), nullable=False),
        sa.Column("scored", sa.Boolean(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=True),
        sa.Column("compared", sa.Integer(), nullable=False),
        sa.Column("correct", sa.Integer(), nullable=False),
        sa.Column("abs_error", sa.Double(), nullable=False),
        sa.Column("prediction_time", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("request_id", name="pk_feedback"),
    )
    op.create_index("ix_feedback_prediction_time", "feedback", ["prediction_time"])


def downgrade() -> None:
    op.drop_index("ix_feedback_prediction_time", table_name="feedback")
    op.drop_table("feedback")
    op.drop_index("ix_predictions_time", table_name="predictions")
    op.drop_table("predictions")
