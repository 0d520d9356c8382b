"""837P export: control-number counters, per-version 837P sources, interchanges, exports.

Revision ID: 0015_x12
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_x12"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "x12_counters",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.Integer, nullable=False),
    )
    op.create_table(
        "x12_sources",
        sa.Column("claim_id", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.Integer, primary_key=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content", sa.Text),
        sa.Column("problems", sa.Text),
    )
    op.create_index("ix_x12_sources_recorded_at", "x12_sources", ["recorded_at"])
    op.create_table(
        "x12_interchanges",
        sa.Column("control_number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("profile_id", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
    )
    op.create_table(
        "x12_exports",
        sa.Column("claim_id", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.Integer, primary_key=True),
        sa.Column("interchange", sa.Integer, nullable=False),
        sa.Column("transaction_control", sa.Integer, nullable=False),
        sa.Column("frequency", sa.String(1), nullable=False),
        sa.Column("exported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("acknowledgment", sa.String(1)),
        sa.Column("payer_claim_number", sa.String(50)),
    )
    op.create_index("ix_x12_exports_interchange", "x12_exports", ["interchange"])


def downgrade() -> None:
    for table in ("x12_exports", "x12_interchanges", "x12_sources", "x12_counters"):
        op.drop_table(table)
