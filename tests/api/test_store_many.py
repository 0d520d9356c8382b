"""A Bundle of thousands of resources is read and written in bounded statements: PostgreSQL plans a
row IN list as one expression, and one of 16,000 keys exceeded its stack depth (a 503
``database-unavailable`` for a 5 MB push).  SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from adapter.service.migrate import upgrade
from adapter.service.store import KEYS_PER_READ, Store

MANY = 20 * KEYS_PER_READ  # about what a 4,000-Encounter push stores


def test_thousands_of_resources_are_put_and_compared_in_one_transaction(database_url: str) -> None:
    store = Store(database_url)
    try:
        upgrade(store)
        patients = [{"resourceType": "Patient", "id": f"p{i}", "gender": "female"} for i in range(MANY)]
        with store.transaction() as connection:
            first = store.put_many(connection, patients, datetime.now(UTC), tenants=[None] * MANY)
        assert [s.version_id for s in first] == [1] * MANY
        changed = [*patients[:-1], patients[-1] | {"gender": "male"}]
        with store.transaction() as connection:
            assert store.changes(connection, changed) == {f"Patient/p{MANY - 1}"}
            again = store.put_many(connection, changed, datetime.now(UTC), tenants=[None] * MANY)
        assert [s.changed for s in again] == [False] * (MANY - 1) + [True]
        assert again[-1].version_id == 2
    finally:
        store.engine.dispose()
