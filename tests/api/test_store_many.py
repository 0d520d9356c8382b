"""A Bundle of thousands of resources is read and written in bounded statements: PostgreSQL plans a
row IN list as one expression, and one of 16,000 keys exceeded its stack depth (a 503
``database-unavailable`` for a 5 MB push).  SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from adapter.service import store as store_module
from adapter.service.migrate import upgrade
from adapter.service.store import KEYS_PER_READ, PutBatch, Store, content_hash

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
            batch = PutBatch(connection)
            assert batch.changes(changed) == {f"Patient/p{MANY - 1}"}
            again = store.put_many(connection, changed, datetime.now(UTC), tenants=[None] * MANY, batch=batch)
            batch.flush()
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


def test_a_batch_hashes_each_resource_once_for_its_changes_and_its_put(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A push's inputs are compared (to lock only the changed ones), then put: one content hash each."""
    hashed: list[str] = []

    def counted(resource: dict[str, Any]) -> str:
        hashed.append(resource["id"])
        return content_hash(resource)

    store = Store(database_url)
    try:
        upgrade(store)
        monkeypatch.setattr(store_module, "content_hash", counted)
        inputs = [{"resourceType": "Patient", "id": f"p{i}", "gender": "female"} for i in range(3)]
        with store.transaction() as connection:
            batch = PutBatch(connection)
            assert batch.changes(inputs) == {"Patient/p0", "Patient/p1", "Patient/p2"}
            stored = store.put_many(connection, inputs, datetime.now(UTC), tenants=[None] * 3, batch=batch)
            changed_copy = store.put_many(
                connection, [inputs[0] | {"gender": "male"}], datetime.now(UTC), tenants=[None], batch=batch
            )
            batch.flush()
        assert [s.changed for s in stored + changed_copy] == [True] * 4
        assert hashed == ["p0", "p1", "p2", "p0"]  # the changed copy is another resource: hashed on its own
    finally:
        store.engine.dispose()
