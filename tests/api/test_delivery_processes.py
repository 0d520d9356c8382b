"""Delivery workers as real processes (`theraclaim deliver`): killed mid-send, and four sharing PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import httpx
import orjson
import pytest
from sqlalchemy import func, insert, select

from adapter.rules.catalog import Rules
from adapter.service.store import Store, deliveries, resource_history
from bench.receiver import Receiver
from tests.api.auth_support import live_server
from tests.api.conftest import Api, make_api, require_postgres, reset_postgres, visit_for
from tests.api.delivery_helpers import destinations_file, fhir_destination


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def deliver(api: Api, log: IO[bytes], workers: int = 1, lease: float = 30) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "THERACLAIM_DATABASE_URL": api.settings.database_url,
        "THERACLAIM_DESTINATIONS": str(api.settings.destinations),
        "THERACLAIM_DELIVERY_LEASE_SECONDS": str(lease),
        "THERACLAIM_DELIVERY_POLL_SECONDS": "0.05",
    }
    command = [sys.executable, "-m", "adapter.cli", "deliver", "--workers", str(workers)]
    return subprocess.Popen(command, env=env, stdout=log, stderr=log)


def completed(api: Api) -> int:
    with api.store.engine.connect() as connection:
        query = select(func.count()).select_from(deliveries).where(deliveries.c.state == "completed")
        return int(connection.execute(query).scalar_one())


def wait_for(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {seconds} s")
        time.sleep(0.05)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0


def test_a_worker_killed_mid_send_loses_and_duplicates_nothing(
    database_url: str, rules: Rules, tmp_path: Path, receiver: Receiver
) -> None:
    destination = fhir_destination(receiver.base, timeout={"connect": 0.5, "read": 1.5})
    release = threading.Event()
    receiver.plan.append(("hold", release))  # the first request arrives and gets no answer while held
    with (
        make_api(database_url, rules, destinations=destinations_file(tmp_path, destination)) as api,
        open(tmp_path / "deliver.log", "wb") as log,
    ):
        for minutes in (30, 45):  # versions 1 and 2 of one Claim
            assert api.push(visit_for("enc-1", minutes)).status_code == 201
        first = deliver(api, log, lease=5)
        try:
            assert receiver.received.wait(60), "the first worker never sent"
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(30)
        release.set()  # the destination now applies version 1, answering a worker that is gone
        assert completed(api) == 0
        second = deliver(api, log, lease=5)
        try:
            wait_for(lambda: completed(api) == 2, 60, "both deliveries completing after the restart")
        finally:
            stop(second)
    claim_id = receiver.requests[0].claim_id
    assert receiver.effects == [(claim_id, 1, "active"), (claim_id, 2, "active")]
    versions = [r.version for r in receiver.requests]
    assert versions == [1, 1, 2]  # version 1 sent again after the lease ran out, then version 2
    assert len({r.key for r in receiver.requests if r.version == 1}) == 1


def history_row(claim_id: str, version: int, now: datetime) -> dict[str, Any]:
    claim = {"resourceType": "Claim", "id": claim_id, "meta": {"versionId": str(version)}, "status": "active"}
    return {
        "resource_type": "Claim",
        "id": claim_id,
        "version_id": version,
        "last_updated": now,
        "content": orjson.dumps(claim).decode(),
    }


def delivery_row(claim_id: str, version: int, now: datetime) -> dict[str, Any]:
    return {
        "task_id": str(uuid.uuid4()),
        "destination": "billing",
        "claim_id": claim_id,
        "claim_version": version,
        "claim_status": "active",
        "state": "requested",
        "version": 1,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
    }


def test_four_workers_in_two_processes_share_postgresql_without_duplicates(
    rules: Rules, tmp_path: Path, receiver: Receiver
) -> None:
    url = require_postgres()
    reset_postgres(url)
    claims, versions = 2500, 2
    destination = fhir_destination(receiver.base, timeout={"connect": 2, "read": 10})
    path = destinations_file(tmp_path, destination)
    with make_api(url, rules, destinations=path) as api, open(tmp_path / "deliver.log", "wb") as log:
        # the backlog is written in bulk (the outbox rows of Claim writes are tested in test_delivery.py)
        now = datetime.now(UTC)
        changes = [(f"c-{n}", version) for version in range(1, versions + 1) for n in range(claims)]
        with api.store.transaction() as connection:
            connection.execute(insert(resource_history), [history_row(c, v, now) for c, v in changes])
            connection.execute(insert(deliveries), [delivery_row(c, v, now) for c, v in changes])
        total = claims * versions
        assert api.count("deliveries") == total
        workers = [deliver(api, log, workers=2, lease=60), deliver(api, log, workers=2, lease=60)]
        try:
            wait_for(lambda: completed(api) == total, 600, f"{total} deliveries completing")
        finally:
            for process in workers:
                stop(process)
    # both processes took part: each logged deliveries it completed
    lines = (tmp_path / "deliver.log").read_text().splitlines()
    pids = {line.split("pid=")[1].split()[0] for line in lines if ": completed" in line}
    assert pids == {str(process.pid) for process in workers}
    sent = Counter(r.key for r in receiver.requests)
    assert len(sent) == total
    assert max(sent.values()) == 1, "a delivery was sent twice"
    assert len(receiver.effects) == total
    order = {}
    for request in receiver.requests:
        order.setdefault(request.claim_id, []).append(request.version)
    assert all(seen == [1, 2] for seen in order.values())


def recent_visit() -> dict[str, Any]:
    """The builder's visit moved to two days ago: a served Claim is dated by the wall clock, and a
    visit of 2025 is past timely filing (held, so not delivered)."""
    day = date.today() - timedelta(days=2)
    text = orjson.dumps(visit_for("enc-1", 30)).decode()
    for old, new in (
        ("2025-01-14", day),
        ("2025-01-01", day - timedelta(days=13)),
        ("2025-03-31", day + timedelta(days=76)),
    ):
        text = text.replace(old, new.isoformat())
    return dict(orjson.loads(text))


def push_recent_visit(base: str) -> None:
    pushed = httpx.post(
        f"{base}/fhir/Claim/$from-encounter",
        content=orjson.dumps(recent_visit()),
        headers={"Content-Type": "application/fhir+json"},
    )
    assert pushed.status_code == 201, pushed.text


def test_serve_runs_a_delivery_worker(database_url: str, tmp_path: Path, receiver: Receiver) -> None:
    """`theraclaim serve` with destinations delivers what it stores (one worker by default)."""
    path = destinations_file(tmp_path, fhir_destination(receiver.base))
    with live_server(tmp_path, database_url, None, THERACLAIM_DESTINATIONS=str(path)) as server:
        push_recent_visit(server.base)
        wait_for(lambda: bool(receiver.effects), 60, "the delivery by the server's worker")
    assert [(version, status) for _, version, status in receiver.effects] == [(1, "active")]


def test_sigterm_to_serve_lets_its_delivery_worker_record_the_send_in_flight(
    database_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    """uvicorn ends by re-raising the SIGTERM it caught: `serve` still closes its delivery workers first,
    so a send in flight is answered and recorded, not left leased until the lease runs out."""
    release = threading.Event()
    receiver.plan.append(("hold", release))
    path = destinations_file(tmp_path, fhir_destination(receiver.base))
    with live_server(tmp_path, database_url, None, THERACLAIM_DESTINATIONS=str(path)) as server:
        push_recent_visit(server.base)
        assert receiver.received.wait(60), "the server's worker never sent"
        server.process.send_signal(signal.SIGTERM)
        wait_for(lambda: b"Application shutdown complete" in server.log.read_bytes(), 30, "uvicorn's shutdown")
        release.set()  # the destination answers only now, after uvicorn is done
        assert server.process.wait(30) == -signal.SIGTERM, server.log.read_text()[-3000:]
    store = Store(database_url)
    try:
        with store.engine.connect() as connection:
            states = connection.execute(select(deliveries.c.state)).scalars().all()
    finally:
        store.engine.dispose()
    assert states == ["completed"], server.log.read_text()[-3000:]
