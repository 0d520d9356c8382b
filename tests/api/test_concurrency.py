"""Two real server processes on one PostgreSQL database, 200 concurrent pushes of 20 encounters
(issue 4, "Scale and concurrency"): exactly 20 Claims of one version each, no 5xx, only 200/201."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest
from sqlalchemy import create_engine, text

from adapter.service.store import sqlalchemy_url
from tests.api.conftest import FHIR_JSON, OPERATION, require_postgres, reset_postgres, visit_for
from tests.conftest import ROOT

ENCOUNTERS = 20
REPEATS = 10
THREADS = 32
STARTUP_SECONDS = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, database_url: str, log: Path, settings: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        python = ROOT / ".venv" / "bin" / "python"
        env = os.environ | {"THERACLAIM_DATABASE_URL": database_url} | (settings or {})
        with log.open("wb") as sink:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [
                    str(python if python.exists() else sys.executable),
                    "-m",
                    "uvicorn",
                    "adapter.service.api:main_app",
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                ],
                cwd=ROOT,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server on port {self.port} exited with {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"server on port {self.port} was not ready within {STARTUP_SECONDS} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[list[Server], str]]:
    url = require_postgres()
    reset_postgres(url)
    started: list[Server] = []
    try:
        for n in range(2):
            started.append(Server(url, tmp_path / f"server-{n}.log"))
        deadline = time.monotonic() + STARTUP_SECONDS
        for server in started:
            server.wait_ready(deadline)
        yield started, url
    finally:
        for server in started:
            server.stop()


def test_two_servers_200_concurrent_pushes(servers: tuple[list[Server], str]) -> None:
    started, database_url = servers
    # one date per encounter: visits of one patient on one day would make the day's one Claim (issue 12)
    bodies = {n: orjson.dumps(visit_for(f"enc-c{n:02d}", day=f"2025-01-{n + 1:02d}")) for n in range(ENCOUNTERS)}
    # each encounter 10 times, alternating servers, the encounters interleaved
    plan = [(n, started[(rep + n) % 2]) for rep in range(REPEATS) for n in range(ENCOUNTERS)]
    assert len(plan) == ENCOUNTERS * REPEATS == 200

    limits = httpx.Limits(max_connections=THREADS * 2, max_keepalive_connections=THREADS * 2)
    with httpx.Client(timeout=120, limits=limits) as client:

        def push(job: tuple[int, Server]) -> tuple[int, int, str | None, str]:
            n, server = job
            try:
                response = client.post(
                    f"{server.url}{OPERATION}", content=bodies[n], headers={"Content-Type": FHIR_JSON}
                )
            except httpx.TransportError as error:  # reported with the server logs below, not raised here
                return n, -1, None, f"{server.url}: {type(error).__name__}: {error}"
            claim_ids = [
                e["resource"]["id"]
                for e in (response.json().get("entry", []) if response.status_code < 300 else [])
                if e["resource"]["resourceType"] == "Claim"
            ]
            return n, response.status_code, claim_ids[0] if claim_ids else None, response.text[:500]

        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            results = list(pool.map(push, plan))

        statuses = Counter(status for _, status, _, _ in results)
        failures = [r for r in results if r[1] not in (200, 201)]
        logs = "\n".join(s.output() for s in started)
        assert not failures, f"{statuses}; first failures: {failures[:3]}\nserver logs:\n{logs}"
        assert not [r for r in results if r[1] >= 500], statuses

        # one Claim per encounter, the same id in every answer, created (201) exactly once
        claim_of: dict[int, set[str | None]] = {}
        created = Counter()
        for n, status, claim_id, _ in results:
            claim_of.setdefault(n, set()).add(claim_id)
            created[n] += status == 201
        assert all(len(found) == 1 and None not in found for found in claim_of.values()), claim_of
        assert len({next(iter(found)) for found in claim_of.values()}) == ENCOUNTERS
        assert created == Counter(dict.fromkeys(range(ENCOUNTERS), 1)), created

        base = started[0].url
        search = client.get(f"{base}/fhir/Claim", params={"_count": 100}).json()
        assert search["total"] == ENCOUNTERS
        claims = [e["resource"] for e in search["entry"] if e["resource"]["resourceType"] == "Claim"]
        assert len(claims) == ENCOUNTERS
        for claim in claims:
            assert claim["meta"]["versionId"] == "1"
            other = started[1].url
            history = client.get(f"{other}/fhir/Claim/{claim['id']}/_history").json()
            assert len(history["entry"]) == 1, claim["id"]

    engine = create_engine(sqlalchemy_url(database_url))
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT max(version_id) FROM resource_current")).scalar_one() == 1
            versions = connection.execute(text("SELECT count(*) FROM resource_history")).scalar_one()
            current = connection.execute(text("SELECT count(*) FROM resource_current")).scalar_one()
            assert versions == current, "no resource got a second version"
            assert connection.execute(text("SELECT count(*) FROM submissions")).scalar_one() == len(plan)
    finally:
        engine.dispose()
