"""kill -9 mid-burst (issue 10): a real server process is killed while pushes are in flight and
restarted on the same database; every acknowledged write is there, nothing is half-written, and
every Claim has its Provenance.  On SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import create_engine, text

from adapter.service.store import sqlalchemy_url
from tests.api.conftest import FHIR_JSON, OPERATION, visit_for
from tests.api.test_concurrency import STARTUP_SECONDS, Server

PUSHES = 120
KILL_AFTER = 15  # acknowledged pushes before the SIGKILL
THREADS = 8


@pytest.fixture
def started(database_url: str, tmp_path: Path) -> Iterator[list[Server]]:
    servers: list[Server] = []
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


def start(servers: list[Server], database_url: str, log: Path) -> Server:
    server = Server(database_url, log)
    servers.append(server)
    server.wait_ready(time.monotonic() + STARTUP_SECONDS)
    return server


def rows(database_url: str, sql: str) -> list[Any]:
    engine = create_engine(sqlalchemy_url(database_url))
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(sql)))
    finally:
        engine.dispose()


def test_acknowledged_writes_survive_a_kill_9(database_url: str, started: list[Server], tmp_path: Path) -> None:
    first = start(started, database_url, tmp_path / "first.log")
    acknowledged: list[tuple[str, int]] = []

    def push(n: int) -> int | None:
        body = orjson.dumps(visit_for(f"enc-k{n:03d}"))
        try:
            response = httpx.post(
                f"{first.url}{OPERATION}", content=body, headers={"Content-Type": FHIR_JSON}, timeout=60
            )
        except httpx.TransportError:
            return None  # the server died with the request in flight: not acknowledged
        if response.status_code in (200, 201):
            claim = next(e["resource"] for e in response.json()["entry"] if e["resource"]["resourceType"] == "Claim")
            acknowledged.append((claim["id"], int(claim["meta"]["versionId"])))
        return response.status_code

    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(push, n) for n in range(PUSHES)]
        deadline = time.monotonic() + 120
        while len(acknowledged) < KILL_AFTER and time.monotonic() < deadline:
            time.sleep(0.005)
        first.process.kill()  # SIGKILL: no shutdown handler runs
        first.process.wait(timeout=30)
        statuses = [f.result() for f in futures]
    assert len(acknowledged) >= KILL_AFTER, first.output()
    assert None in statuses, "the kill came after the burst: nothing was in flight"
    assert all(s in (None, 200, 201) for s in statuses), statuses

    second = start(started, database_url, tmp_path / "second.log")
    for claim_id, version in acknowledged:
        response = httpx.get(f"{second.url}/fhir/Claim/{claim_id}", timeout=30)
        assert response.status_code == 200, (claim_id, response.text[:300])
        assert int(response.json()["meta"]["versionId"]) >= version

    current = rows(database_url, "SELECT resource_type, id, version_id, content FROM resource_current")
    history = {
        (r[0], r[1], r[2]) for r in rows(database_url, "SELECT resource_type, id, version_id FROM resource_history")
    }
    assert all((r[0], r[1], r[2]) in history for r in current), "a current version without its history row"
    claims = {r[1] for r in current if r[0] == "Claim"}
    assert len(claims) >= len({c for c, _ in acknowledged})
    targeted = {
        re.sub(r"^(?:.*/)?Claim/([^/]+)(?:/_history/.*)?$|^urn:uuid:(.+)$", lambda m: m[1] or m[2], target["reference"])
        for r in current
        if r[0] == "Provenance"
        for target in json.loads(r[3])["target"]
    }
    assert claims <= targeted, f"Claims without a Provenance: {sorted(claims - targeted)[:5]}"
