"""Database faults (issue 10), against a real PostgreSQL behind a TCP proxy the test cuts:
every route answers 503 + Retry-After + OperationOutcome while the database is unreachable, the
service recovers by itself, and it starts while the database is down (not ready until it is up).
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import make_url
from sqlalchemy.exc import OperationalError

from adapter.rules.catalog import Rules
from adapter.service import faults
from tests import bundle_builder as bb
from tests.api.conftest import (
    OPERATION,
    Api,
    assert_outcome,
    entries,
    make_api,
    require_postgres,
    reset_postgres,
    visit_for,
)
from tests.api.tcp_proxy import TcpProxy

RECOVERY_SECONDS = 60  # the schema retry backs off up to 30 s between attempts


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    reset_postgres(require_postgres())  # the app migrates an empty database, through the proxy
    url = make_url(require_postgres())
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as started:
        yield started


def through(proxy: TcpProxy) -> str:
    return make_url(require_postgres()).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


def assert_unavailable(response: Any) -> None:
    body = assert_outcome(response, 503)
    assert body["issue"][0]["details"]["coding"][0]["code"] == "database-unavailable"
    assert int(response.headers["retry-after"]) > 0


def wait_ready(api: Api) -> None:
    deadline = time.monotonic() + RECOVERY_SECONDS
    while api.client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the service did not recover when the database came back"
        time.sleep(0.2)


def transaction_of(document: dict[str, Any]) -> dict[str, Any]:
    resources = [e["resource"] for e in document["entry"]]
    return bb.bundle(*resources, bundle_type="transaction")


def requests_of_every_kind(api: Api, claim_id: str) -> dict[str, Any]:
    visit = visit_for("enc-9")
    return {
        "read": lambda: api.client.get(f"/fhir/Claim/{claim_id}"),
        "vread": lambda: api.client.get(f"/fhir/Claim/{claim_id}/_history/1"),
        "history": lambda: api.client.get(f"/fhir/Claim/{claim_id}/_history"),
        "search": lambda: api.client.get("/fhir/Claim", params={"patient": "Patient/pat-1"}),
        "push": lambda: api.push(visit),
        "if-none-exist": lambda: api.push(visit, headers={"If-None-Exist": "encounter=Encounter/enc-9"}),
        "invalid input": lambda: api.push({"resourceType": "Bundle", "type": "collection", "entry": [{}]}),
        "transaction": lambda: api.post("/fhir", transaction_of(visit_for("enc-8"))),
        "readyz": lambda: api.client.get("/readyz"),
    }


def test_every_route_answers_503_while_the_database_is_down_and_recovers(proxy: TcpProxy, rules: Rules) -> None:
    with make_api(through(proxy), rules) as api:
        claim = entries(api.push(visit_for("enc-1")).json(), "Claim")[0]
        proxy.cut()
        for name, request in requests_of_every_kind(api, claim["id"]).items():
            response = request()
            assert response.status_code == 503, (name, response.status_code, response.text[:300])
            assert_unavailable(response)
        assert api.client.get("/healthz").status_code == 200, "liveness does not depend on the database"
        proxy.restore()
        wait_ready(api)
        assert api.client.get(f"/fhir/Claim/{claim['id']}").status_code == 200
        assert api.push(visit_for("enc-2")).status_code == 201


def test_the_service_starts_while_the_database_is_down(proxy: TcpProxy, rules: Rules) -> None:
    proxy.cut()
    with make_api(through(proxy), rules) as api:
        assert api.client.get("/healthz").status_code == 200
        assert_unavailable(api.client.get("/readyz"))
        assert_unavailable(api.push(visit_for("enc-1")))
        assert_unavailable(api.client.get("/fhir/Claim"))
        proxy.restore()
        wait_ready(api)
        response = api.post(OPERATION, visit_for("enc-1"))
        assert response.status_code == 201, response.text[:300]


def test_sqlite_checkpoints_its_write_ahead_log_at_shutdown(tmp_path: Any, rules: Rules) -> None:
    database = tmp_path / "theraclaim.sqlite3"
    wal = database.with_name(database.name + "-wal")
    with make_api(f"sqlite:///{database}", rules) as api:
        assert api.push(visit_for("enc-1")).status_code == 201
        reader = sqlite3.connect(database)  # another process has the file open: no checkpoint on close
        reader.execute("SELECT COUNT(*) FROM resource_current").fetchone()
        assert wal.stat().st_size > 0  # the write is in the log while serving
    try:
        assert wal.stat().st_size == 0, "the shutdown did not checkpoint the log into the database"
        assert reader.execute("SELECT COUNT(*) FROM resource_current WHERE resource_type = 'Claim'").fetchone() == (1,)
    finally:
        reader.close()


def test_retry_after_follows_the_start_up_backoff(tmp_path: Any, rules: Rules, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the schema upgrade is retried with backoff, a 503 says when the next attempt comes."""
    attempts: list[float] = []

    def database_down(_store: Any) -> None:
        attempts.append(time.monotonic())
        raise OperationalError("SELECT 1", None, ConnectionRefusedError())

    monkeypatch.setattr(faults, "upgrade", database_down)
    with make_api(f"sqlite:///{tmp_path / 'down.sqlite3'}", rules) as api:
        deadline = time.monotonic() + RECOVERY_SECONDS
        while len(attempts) < 4:  # the start, then after 0.5, 1 and 2 s; the next one comes 4 s later
            assert time.monotonic() < deadline, attempts
            time.sleep(0.05)
        asked = time.monotonic()
        response = api.client.get("/fhir/Claim")
        answered = time.monotonic()
        assert_unavailable(response)
        backoff = faults.FIRST_DELAY * 8  # the wait after the fourth failure
        next_attempt = attempts[-1] + backoff
        retry_after = int(response.headers["retry-after"])
        assert math.ceil(next_attempt - answered) <= retry_after <= math.ceil(next_attempt - asked), retry_after
        monkeypatch.undo()
        wait_ready(api)
