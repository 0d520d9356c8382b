"""A Bundle that brings several visits of a day is stored once (``day_sources``), not once per visit
(issue 17: a 605 KB Bundle of 32 visits wrote 19 MB).  Rows written before keep their Bundle in
``day_visits.content``.

Revision ID: b17_day_sources
Revises: b12_day_visit_facts
"""

import sqlalchemy as sa
from alembic import op

revision = "b17_day_sources"
down_revision = "b12_day_visit_facts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "day_sources",
        sa.Column("content_hash", sa.String(64), primary_key=True),
        sa.Column("content", sa.Text, nullable=False),
    )
    with op.batch_alter_table("day_visits") as table:
        table.add_column(sa.Column("source_hash", sa.String(64), nullable=True))
        table.alter_column("content", existing_type=sa.Text, nullable=True)


def downgrade() -> None:
    op.execute(
        "UPDATE day_visits SET content = (SELECT content FROM day_sources WHERE content_hash = day_visits.source_hash)"
        " WHERE content IS NULL"
    )
    with op.batch_alter_table("day_visits") as table:
        table.alter_column("content", existing_type=sa.Text, nullable=False)
        table.drop_column("source_hash")
    op.drop_table("day_sources")
