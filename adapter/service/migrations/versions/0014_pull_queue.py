"""Pulls queued by Subscription notifications and the last event number per Subscription (issue 14).

Revision ID: 0014_pull_queue
Revises: 0016_deliveries
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_pull_queue"
down_revision = "0016_deliveries"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pull_queue",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("event_key", sa.String(512), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("encounter_id", sa.String(64)),
        sa.Column("since", sa.DateTime(timezone=True)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(255)),
        sa.Column("claim_id", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_pull_queue_encounter_id", "pull_queue", ["encounter_id"])
    op.create_index("ix_pull_queue_status", "pull_queue", ["status"])
    op.create_index("ix_pull_queue_next_attempt_at", "pull_queue", ["next_attempt_at"])
    op.create_table(
        "subscription_state",
        sa.Column("subscription", sa.String(512), primary_key=True),
        sa.Column("last_event", sa.Integer, nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("subscription_state")
    op.drop_table("pull_queue")
