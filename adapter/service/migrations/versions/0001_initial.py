"""Resources (current and history) and submissions.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "resource_current",
        sa.Column("resource_type", sa.String(64), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("patient", sa.String(256)),
        sa.Column("encounter", sa.String(256)),
        sa.Column("status", sa.String(32)),
        sa.Column("content", sa.Text, nullable=False),
    )
    for column in ("last_updated", "patient", "encounter", "status"):
        op.create_index(f"ix_resource_current_{column}", "resource_current", [column])
    op.create_table(
        "resource_history",
        sa.Column("resource_type", sa.String(64), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.Integer, primary_key=True),
        sa.Column("last_updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
    )
    op.create_table(
        "submissions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("payload_sha256", sa.String(64), nullable=False),
        sa.Column("http_status", sa.Integer, nullable=False),
        sa.Column("rule_fingerprint", sa.String(64), nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
    )
    op.create_index("ix_submissions_received_at", "submissions", ["received_at"])
    op.create_index("ix_submissions_payload_sha256", "submissions", ["payload_sha256"])


def downgrade() -> None:
    op.drop_table("submissions")
    op.drop_table("resource_history")
    op.drop_table("resource_current")
