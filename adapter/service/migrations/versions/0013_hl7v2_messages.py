"""HL7 v2 messages acknowledged with AA (idempotency of MSH-10 per sender).

Revision ID: 0013_hl7v2
Revises: 0011_rest_search_index
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_hl7v2"
down_revision = "0011_rest_search_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hl7v2_messages",
        sa.Column("sender", sa.String(512), primary_key=True),
        sa.Column("control_id", sa.String(199), primary_key=True),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ack", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("hl7v2_messages")
