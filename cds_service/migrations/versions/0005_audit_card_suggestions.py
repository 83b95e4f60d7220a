"""The uuids of each audited card's suggestions, so that feedback accepting a suggestion is stored
only if the card carried it. Cards audited before this revision keep NULL: their suggestions are
unknown, and feedback naming them is taken on trust.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("assessment_card", sa.Column("suggestion_uuids", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("assessment_card") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("suggestion_uuids")
