"""Helpers of the delivery tests: a destinations file, a worker, and draining the outbox."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import update

from adapter.service.delivery.config import load_destinations
from adapter.service.delivery.worker import Worker
from adapter.service.store import deliveries
from tests.api.conftest import Api

FAST_RETRY = {"initial_seconds": 0.01, "max_seconds": 0.05}


def destinations_file(tmp_path: Path, *entries: dict[str, Any]) -> Path:
    path = tmp_path / "destinations.yaml"
    path.write_text(yaml.safe_dump({"destinations": list(entries)}), encoding="utf-8")
    return path


def fhir_destination(base: str, **overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": "billing",
        "kind": "fhir",
        "base": base,
        "timeout": {"connect": 1, "read": 1},
        "retry": FAST_RETRY,
    }
    return entry | overrides


@contextmanager
def worker_for(api: Api) -> Iterator[Worker]:
    destinations = load_destinations(api.settings.destinations)
    assert destinations is not None
    worker = Worker(api.store, destinations, api.settings)
    try:
        yield worker
    finally:
        worker.close()


def make_due(api: Api) -> None:
    """Fast-forward: every waiting delivery is due now (instead of sleeping through its backoff)."""
    with api.store.transaction() as connection:
        connection.execute(
            update(deliveries).where(deliveries.c.state == "requested").values(next_attempt_at=datetime.now(UTC))
        )


def drain(api: Api, worker: Worker, limit: int = 100) -> int:
    """Run the worker until nothing is due, fast-forwarding backoffs; the number of attempts."""
    attempts = 0
    while attempts < limit:
        make_due(api)
        leased = len(worker.run_once())
        if not leased:
            return attempts
        attempts += leased
    raise AssertionError(f"the outbox did not drain in {limit} attempts")


def states(api: Api) -> list[tuple[str, int, str]]:
    return sorted((r["claim_id"], r["claim_version"], r["state"]) for r in api.rows("deliveries"))
