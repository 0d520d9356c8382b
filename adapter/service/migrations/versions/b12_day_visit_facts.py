"""Each stored visit of a day also as read (its facts), so the day's pool does not read every stored
Bundle again (issue 12).

Revision ID: b12_day_visit_facts
Revises: b12_day_visits
"""

import sqlalchemy as sa
from alembic import op

revision = "b12_day_visit_facts"
down_revision = "b12_day_visits"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("day_visits") as table:
        table.add_column(sa.Column("facts", sa.Text, nullable=True))
        table.add_column(sa.Column("facts_format", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("day_visits") as table:
        table.drop_column("facts_format")
        table.drop_column("facts")
