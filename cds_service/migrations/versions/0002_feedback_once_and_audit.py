"""Each feedback entry stored once (a client's retry is a no-op); audit log of assessments.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ENTRY_KEY = ["service_id", "card_uuid", "outcome", "outcome_timestamp"]


def upgrade() -> None:
    # Retries stored before this revision are duplicates: keep the first copy of each entry.
    op.execute(
        "DELETE FROM feedback WHERE id NOT IN "
        f"(SELECT keep FROM (SELECT MIN(id) AS keep FROM feedback GROUP BY {', '.join(_ENTRY_KEY)}) AS firsts)"
    )
    op.create_index("uq_feedback_entry", "feedback", _ENTRY_KEY, unique=True)

    op.create_table(
        "assessment_audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("hook_instance", sa.String(36), nullable=False),
        sa.Column("service_id", sa.String(200), nullable=False),
        sa.Column("hook", sa.String(100), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=True),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("timing_ms", sa.Float, nullable=False),
        sa.Column("missing_data", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_assessment_audit_hook_instance", "assessment_audit", ["hook_instance"])
    op.create_index("ix_assessment_audit_recorded_at", "assessment_audit", ["recorded_at"])
    op.create_table(
        "assessment_card",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "assessment_id",
            sa.Integer,
            sa.ForeignKey("assessment_audit.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("card_uuid", sa.String(200), nullable=False),
        sa.Column("indicator", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(100), nullable=True),
    )
    op.create_index("ix_assessment_card_assessment_id", "assessment_card", ["assessment_id"])
    op.create_index("ix_assessment_card_card_uuid", "assessment_card", ["card_uuid"])


def downgrade() -> None:
    op.drop_table("assessment_card")
    op.drop_table("assessment_audit")
    op.drop_index("uq_feedback_entry", table_name="feedback")
