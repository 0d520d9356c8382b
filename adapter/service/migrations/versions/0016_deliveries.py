"""The delivery outbox (issue 16): one row per Claim version per destination.

Revision ID: 0016_deliveries
Revises: 0013_hl7v2
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_deliveries"
down_revision = "0013_hl7v2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.String(36), nullable=False, unique=True),
        sa.Column("destination", sa.String(64), nullable=False),
        sa.Column("claim_id", sa.String(64), nullable=False),
        sa.Column("claim_version", sa.Integer, nullable=False),
        sa.Column("claim_status", sa.String(32), nullable=False),
        sa.Column("payer", sa.String(64)),
        sa.Column("tenant", sa.String(256)),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("http_status", sa.Integer),
        sa.Column("reason", sa.String(512)),
        sa.Column("response", sa.Text),
        sa.UniqueConstraint("destination", "claim_id", "claim_version", name="uq_deliveries_change"),
    )
    op.create_index("ix_deliveries_due", "deliveries", ["state", "next_attempt_at"])
    op.create_index("ix_deliveries_claim", "deliveries", ["claim_id", "claim_version"])


def downgrade() -> None:
    op.drop_table("deliveries")
