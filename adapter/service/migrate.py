"""Bring the database schema to the newest Alembic revision (run at start-up, safe to repeat)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text

from adapter.service.store import Store

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant works; it only has to be the same for every theraclaim process on the database.
ADVISORY_LOCK_KEY = 0x7468657261  # "thera"


def upgrade(store: Store) -> None:
    """Run pending migrations; on PostgreSQL an advisory lock keeps concurrent workers in line."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as connection:
        if store.dialect == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
