"""A Bundle of thousands of resources is read and written in bounded statements: PostgreSQL plans a
row IN list as one expression, and one of 16,000 keys exceeded its stack depth (a 503
``database-unavailable`` for a 5 MB push).  SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from adapter.service.migrate import upgrade
from adapter.service.store import KEYS_PER_READ, PutBatch, Store

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


def test_puts_of_one_batch_are_written_together_and_a_resource_put_again_gets_its_next_version(
    database_url: str,
) -> None:
    """$from-encounter puts its inputs, its Claims and its other outputs through one PutBatch."""
    store = Store(database_url)
    try:
        upgrade(store)
        now = datetime.now(UTC)
        patient = {"resourceType": "Patient", "id": "p1", "gender": "female"}
        organization = {"resourceType": "Organization", "id": "o1", "name": "Clinic"}
        with store.transaction() as connection:
            store.put_many(connection, [organization], now, tenants=[None])
        with store.transaction() as connection:
            batch = PutBatch(connection)
            batch.read([("Patient", "p1"), ("Organization", "o1")])
            first = store.put_many(connection, [patient, organization], now, tenants=[None, None], batch=batch)
            assert store.read("Patient", "p1", connection=connection) is None  # not written before the flush
            again = store.put_many(connection, [patient | {"gender": "male"}], now, tenants=[None], batch=batch)
            batch.flush()
        assert [(s.version_id, s.changed) for s in first] == [(1, True), (1, False)]
        assert [(s.version_id, s.changed) for s in again] == [(2, True)]
        current = store.read("Patient", "p1")
        assert current is not None and current.version_id == 2 and current.resource["gender"] == "male"
        assert [s.version_id for s in store.history("Patient", "p1")] == [2, 1]
    finally:
        store.engine.dispose()
