"""Search index: one row per search parameter value of every stored version (issue 11).

Replaces the three search columns of resource_current (patient, encounter, status), which could
hold one value each and only on the current version; existing versions are indexed here.

Revision ID: 0011_rest_search_index
Revises: 0015_x12
"""

import orjson
import sqlalchemy as sa
from alembic import op

from adapter.service.search_params import index_rows

revision = "0011_rest_search_index"
down_revision = "0015_x12"
branch_labels = None
depends_on = None


def upgrade() -> None:
    index = op.create_table(
        "search_index",
        sa.Column("resource_type", sa.String(64), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("system", sa.Text),
        sa.Column("code", sa.Text),
        sa.Column("low", sa.DateTime(timezone=False)),
        sa.Column("high", sa.DateTime(timezone=False)),
    )
    op.create_index("ix_search_index_version", "search_index", ["resource_type", "id", "version_id"])
    op.create_index("ix_search_index_code", "search_index", ["resource_type", "name", "code"])
    op.create_index("ix_search_index_low", "search_index", ["resource_type", "name", "low"])
    history = sa.table(
        "resource_history",
        sa.column("resource_type", sa.String),
        sa.column("id", sa.String),
        sa.column("version_id", sa.Integer),
        sa.column("content", sa.Text),
    )
    connection = op.get_bind()
    for row in connection.execute(sa.select(history)):
        rows = index_rows(orjson.loads(row.content))
        if rows:
            op.bulk_insert(
                index,
                [
                    {
                        "resource_type": row.resource_type,
                        "id": row.id,
                        "version_id": row.version_id,
                        "name": r.name,
                        "system": r.system,
                        "code": r.code,
                        "low": r.low,
                        "high": r.high,
                    }
                    for r in rows
                ],
            )
    with op.batch_alter_table("resource_current") as batch:
        for column in ("patient", "encounter", "status"):
            batch.drop_index(f"ix_resource_current_{column}")
            batch.drop_column(column)


def downgrade() -> None:
    with op.batch_alter_table("resource_current") as batch:
        for column, length in (("patient", 256), ("encounter", 256), ("status", 32)):
            batch.add_column(sa.Column(column, sa.String(length)))
            batch.create_index(f"ix_resource_current_{column}", [column])
    op.drop_table("search_index")
