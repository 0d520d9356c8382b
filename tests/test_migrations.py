"""The Alembic migrations build exactly the tables the store's SQLAlchemy metadata describes."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from adapter.service.migrate import upgrade
from adapter.service.store import Store, metadata


def test_migrations_match_the_store_metadata(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'schema.sqlite3'}")
    upgrade(store)
    upgrade(store)  # idempotent: a second start does nothing
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


def test_a_changed_model_is_noticed(tmp_path: Path) -> None:
    """The comparison can fail: a table the migrations never created is reported."""
    from sqlalchemy import Column, Integer, MetaData, Table

    store = Store(f"sqlite:///{tmp_path / 'schema.sqlite3'}")
    upgrade(store)
    extra = MetaData()
    for table in metadata.tables.values():
        table.to_metadata(extra)
    Table("not_migrated", extra, Column("id", Integer, primary_key=True))
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), extra)
    assert any(d[0] == "add_table" and d[1].name == "not_migrated" for d in differences)
