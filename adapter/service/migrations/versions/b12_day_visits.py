"""The inputs of each visit of a day, for the day's pool across pushes (issue 12).

Revision ID: b12_day_visits
Revises: 0014_pull_queue
"""

import sqlalchemy as sa
from alembic import op

revision = "b12_day_visits"
down_revision = "0014_pull_queue"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "day_visits",
        sa.Column("day_hash", sa.String(64), primary_key=True),
        sa.Column("visit_hash", sa.String(64), primary_key=True),
        sa.Column("visit_identity", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("day_visits")
