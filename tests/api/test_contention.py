"""Contention waits, it never fails (issue 10): concurrent pushes of different content for one
Encounter, across two real server processes on one database (SQLite file or PostgreSQL), all
succeed and commit one after the other; only an If-Match that names an old version is refused."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from adapter.service import claims
from adapter.service.hl7v2.routes import ER7
from tests.api.conftest import FHIR_JSON, OPERATION, Api, visit_for
from tests.api.test_concurrency import STARTUP_SECONDS, Server
from tests.api.test_crash_recovery import rows
from tests.api.test_transaction import transaction
from tests.hl7v2.messages import visit as v2_visit

PUSHES = 200
THREADS = 24


@pytest.fixture
def two_servers(database_url: str, tmp_path: Path) -> Iterator[list[Server]]:
    started: list[Server] = []
    try:
        first = Server(database_url, tmp_path / "server-0.log")
        started.append(first)
        first.wait_ready(time.monotonic() + STARTUP_SECONDS)  # the first one migrates the schema alone
        started.append(Server(database_url, tmp_path / "server-1.log"))
        started[1].wait_ready(time.monotonic() + STARTUP_SECONDS)
        yield started
    finally:
        for server in started:
            server.stop()


def variant(n: int) -> bytes:
    """The one Encounter with content of its own: another code or another number of minutes."""
    return orjson.dumps(visit_for("enc-busy", minutes=10 + n // 2, code=("97124", "97140")[n % 2]))


def claim_of(response: httpx.Response) -> dict[str, Any]:
    return next(e["resource"] for e in response.json()["entry"] if e["resource"]["resourceType"] == "Claim")


def without_meta(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in ("meta", "created")}


def post(client: httpx.Client, server: Server, body: bytes, **headers: str) -> httpx.Response:
    return client.post(f"{server.url}{OPERATION}", content=body, headers={"Content-Type": FHIR_JSON, **headers})


def test_concurrent_pushes_of_one_encounter_commit_in_turn(database_url: str, two_servers: list[Server]) -> None:
    limits = httpx.Limits(max_connections=THREADS * 2, max_keepalive_connections=THREADS * 2)
    with httpx.Client(timeout=180, limits=limits) as client:
        with ThreadPoolExecutor(THREADS) as pool:
            responses = list(pool.map(lambda n: post(client, two_servers[n % 2], variant(n)), range(PUSHES)))
        statuses = Counter(r.status_code for r in responses)
        logs = "\n".join(s.output() for s in two_servers)
        refused = [r.text[:300] for r in responses if r.status_code != 201][:3]
        assert statuses == Counter({201: PUSHES}), f"{statuses}: {refused}\n{logs}"

        claims = [claim_of(r) for r in responses]
        assert len({c["id"] for c in claims}) == 1, "one Encounter, one day: one Claim"
        claim_id = claims[0]["id"]
        # every push is a change, so each got its own version: 1..200, in the order they committed
        answered = {int(c["meta"]["versionId"]): without_meta(c) for c in claims}
        assert sorted(answered) == list(range(1, PUSHES + 1))

        history = client.get(f"{two_servers[1].url}/fhir/Claim/{claim_id}/_history", params={"_count": 1000}).json()
        stored = {int(e["resource"]["meta"]["versionId"]): without_meta(e["resource"]) for e in history["entry"]}
        assert stored == answered, "each answer is the version its push committed"

    provenances = rows(database_url, "SELECT content FROM resource_history WHERE resource_type = 'Provenance'")
    provenance_targets = {target["reference"] for (content,) in provenances for target in json.loads(content)["target"]}
    expected = {f"Claim/{claim_id}/_history/{v}" for v in range(1, PUSHES + 1)}
    assert expected <= provenance_targets, f"versions without a Provenance: {sorted(expected - provenance_targets)[:5]}"
    assert rows(database_url, "SELECT count(*) FROM submissions")[0][0] == PUSHES


def test_only_a_stale_if_match_is_refused(two_servers: list[Server]) -> None:
    """Ten concurrent pushes all expecting version 1: the first to commit makes version 2, every
    other one then finds version 2 and is refused with 412 (FHIR: a version mismatch is 412)."""
    with httpx.Client(timeout=120) as client:
        first = post(client, two_servers[0], variant(0))
        assert first.status_code == 201, first.text
        claim_id = claim_of(first)["id"]
        with ThreadPoolExecutor(10) as pool:
            responses = list(
                pool.map(lambda n: post(client, two_servers[n % 2], variant(n), **{"If-Match": 'W/"1"'}), range(1, 11))
            )
        statuses = Counter(r.status_code for r in responses)
        assert statuses == Counter({201: 1, 412: 9}), [r.text[:300] for r in responses]
        for refused in (r for r in responses if r.status_code == 412):
            codes = [c["code"] for i in refused.json()["issue"] for c in i.get("details", {}).get("coding", [])]
            assert "version-mismatch" in codes, refused.text[:300]
        current = client.get(f"{two_servers[1].url}/fhir/Claim/{claim_id}").json()
        assert current["meta"]["versionId"] == "2"


def push_by(door: str, api: Api, n: int) -> httpx.Response:
    """Push n of one day's visits (three Encounters, each content its own) through a door."""
    enc_id, minutes = f"enc-w{n % 3}", 10 + n
    if door == "operation":
        return api.push(visit_for(enc_id, minutes=minutes, code=("97124", "97140")[n % 2]))
    if door == "transaction":
        return api.post("/fhir", transaction(enc_id, minutes))
    message = v2_visit(f"MSG-W{n}", visit_number=f"V-W{n % 3}", units=(str(1 + n % 2), "1"))
    return api.client.post("/hl7v2", content=message, headers={"Content-Type": ER7})


@pytest.mark.parametrize("door", ["operation", "transaction", "hl7v2"])
def test_writers_of_one_day_wait_instead_of_retrying(door: str, api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """In process, with no retry allowed and a pause between the day's reads and the writes (where a
    race would be lost): every push of one day still succeeds, whichever door it comes by, because
    they wait for each other.  Different Encounters of the same day too: the lock is the day's."""
    real_pool = claims.pool_across_pushes

    def slow_pool(*args: Any) -> Any:
        pooled = real_pool(*args)
        time.sleep(0.05)
        return pooled

    monkeypatch.setattr(claims, "MAX_ATTEMPTS", 1)
    monkeypatch.setattr(claims, "pool_across_pushes", slow_pool)
    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda n: push_by(door, api, n), range(12)))
    assert [r.status_code for r in responses] == [201 if door == "operation" else 200] * 12, [
        r.text[:300] for r in responses
    ]
    if door == "hl7v2":
        assert all("MSA|AA|" in r.text for r in responses), [r.text[:300] for r in responses]
    claim_versions = [r for r in api.rows("resource_history") if r["resource_type"] == "Claim"]
    assert len({r["id"] for r in claim_versions}) == 1, "one day, one Claim"
    versions = sorted(int(r["version_id"]) for r in claim_versions)
    assert versions == list(range(1, len(versions) + 1)) and len(versions) >= 3, "one day's Claim, versions in turn"
    if door == "operation":
        assert len(versions) == 12, "every push changed the day's Claim"
