"""A key per audit row, so that a batch written again after a commit whose acknowledgement was
lost is not stored twice. Rows written before this revision keep NULL (a unique index admits
any number of NULLs on SQLite and PostgreSQL).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("assessment_audit", sa.Column("audit_id", sa.String(36), nullable=True))
    op.create_index("uq_assessment_audit_audit_id", "assessment_audit", ["audit_id"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_assessment_audit_audit_id", table_name="assessment_audit")
    with op.batch_alter_table("assessment_audit") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("audit_id")
