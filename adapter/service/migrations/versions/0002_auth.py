"""Authentication and audit: resource tenants, used assertion ids, the token key, AuditEvents.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("resource_current", sa.Column("tenant", sa.String(16)))
    op.create_index("ix_resource_current_tenant", "resource_current", ["tenant"])
    op.create_table(
        "auth_jti",
        sa.Column("client_id", sa.String(255), primary_key=True),
        sa.Column("jti", sa.String(255), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_auth_jti_expires_at", "auth_jti", ["expires_at"])
    op.create_table(
        "auth_signing_key",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "audit_event",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("recorded", sa.DateTime(timezone=True), nullable=False),
        sa.Column("agent", sa.String(255)),
        sa.Column("outcome", sa.String(2), nullable=False),
        sa.Column("entity", sa.Text, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
    )
    op.create_index("ix_audit_event_recorded", "audit_event", ["recorded"])
    op.create_index("ix_audit_event_agent", "audit_event", ["agent"])


def downgrade() -> None:
    op.drop_table("audit_event")
    op.drop_table("auth_signing_key")
    op.drop_table("auth_jti")
    op.drop_index("ix_resource_current_tenant", "resource_current")
    op.drop_column("resource_current", "tenant")
