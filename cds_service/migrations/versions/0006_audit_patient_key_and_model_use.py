"""What the model used and predicted, and a keyed digest of the patient id (never the id), on each
audit row. All new columns are nullable: rows audited before this revision keep NULL.

Typed columns for what reports filter or join on (key id, digest, scenario, resistance probability
and its CI); JSON text for the nested inputs and the second-line survival estimates.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COLUMNS = (
    ("patient_key_id", sa.String(100)),
    ("patient_digest", sa.String(64)),
    ("scenario", sa.String(20)),
    ("resistance_probability", sa.Float()),
    ("resistance_ci_low", sa.Float()),
    ("resistance_ci_high", sa.Float()),
    ("model_inputs", sa.Text()),
    ("survival", sa.Text()),
)


def upgrade() -> None:
    for name, type_ in COLUMNS:
        op.add_column("assessment_audit", sa.Column(name, type_, nullable=True))
    op.create_index("ix_assessment_audit_patient_digest", "assessment_audit", ["patient_digest"])


def downgrade() -> None:
    op.drop_index("ix_assessment_audit_patient_digest", table_name="assessment_audit")
    with op.batch_alter_table("assessment_audit") as batch:  # SQLite drops a column by copying the table
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
