"""Delivery downstream through the transactional outbox, against a real FHIR destination on loopback.

Every test runs on SQLite and on PostgreSQL; the destination fails on purpose (503 with
Retry-After, a dropped connection, a slow answer, 400 with an OperationOutcome, nobody listening).
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from adapter.rules.catalog import Rules
from adapter.service.delivery.send import idempotency_key
from adapter.service.store import PutBatch
from bench.receiver import TOKEN, Receiver
from tests.api.auth_support import Client, token_form, write_registry
from tests.api.conftest import (
    Api,
    assert_outcome,
    entries,
    find_resource,
    make_api,
    require_postgres,
    reset_postgres,
    visit_for,
)
from tests.api.delivery_helpers import destinations_file, drain, fhir_destination, states, worker_for
from tests.conftest import validate_fhir, write_json
from tests.x12_support import validate_x12, with_demographics

OUTCOME_400 = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "invalid", "expression": ["Claim.insurance[0]"]}],
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


def api_with(database_url: str, rules: Rules, tmp_path: Path, *entries_: dict[str, Any], **settings: Any) -> Any:
    return make_api(database_url, rules, destinations=destinations_file(tmp_path, *entries_), **settings)


@pytest.fixture
def delivering(database_url: str, rules: Rules, tmp_path: Path, receiver: Receiver) -> Iterator[Api]:
    with api_with(database_url, rules, tmp_path, fhir_destination(receiver.base)) as made:
        yield made


def claim_id_of(response: Any) -> str:
    assert response.status_code in (200, 201), response.text
    return str(next(r["id"] for r in entries(response.json(), "Claim")))


def tasks(api: Api, query: str) -> list[dict[str, Any]]:
    response = api.client.get(f"/fhir/Task?{query}")
    assert response.status_code == 200, response.text
    return [e["resource"] for e in response.json().get("entry", [])]


def test_every_claim_change_reaches_the_destination_once_and_in_order(
    delivering: Api, receiver: Receiver, tmp_path: Path
) -> None:
    claim_id = claim_id_of(delivering.push(visit_for("enc-1", 30)))
    assert claim_id_of(delivering.push(visit_for("enc-1", 45))) == claim_id  # version 2
    assert claim_id_of(delivering.push(visit_for("enc-1", 45, status="cancelled"))) == claim_id  # version 3
    # the outbox rows committed with the Claim versions, one per version
    assert states(delivering) == [(claim_id, v, "requested") for v in (1, 2, 3)]
    receiver.plan.extend(
        [(503, {"Retry-After": "1"}, None), "drop", ("slow", 1.5), "drop", (429, {}, None), (500, {}, None)]
    )
    with worker_for(delivering) as worker:
        attempts = drain(delivering, worker)
    assert attempts == 9  # 6 failures, 3 successes
    assert receiver.effects == [(claim_id, 1, "active"), (claim_id, 2, "active"), (claim_id, 3, "cancelled")]
    assert {r.path for r in receiver.requests} == {f"/fhir/Claim/{claim_id}"}
    # every resend of a version carried the same request: the same key, the same PUT
    for version in (1, 2, 3):
        keys = {r.key for r in receiver.requests if r.version == version}
        assert keys == {idempotency_key("billing", claim_id, version)}
    assert states(delivering) == [(claim_id, v, "completed") for v in (1, 2, 3)]
    found = tasks(delivering, f"focus=Claim/{claim_id}&status=completed")
    assert [t["focus"]["reference"] for t in found] == [f"Claim/{claim_id}/_history/{v}" for v in (1, 2, 3)]
    validate_fhir([write_json(tmp_path / f"task-{n}.json", t) for n, t in enumerate(found)])


def test_version_two_waits_for_version_one(delivering: Api, receiver: Receiver) -> None:
    claim_id = claim_id_of(delivering.push(visit_for("enc-1", 30)))
    claim_id_of(delivering.push(visit_for("enc-1", 45)))
    receiver.plan.append((503, {"Retry-After": "3600"}, None))
    with worker_for(delivering) as worker:
        assert worker.run_once()  # version 1: 503, retry in an hour
        assert worker.run_once() == []  # version 2 is not due while version 1 waits
    assert receiver.effects == []
    assert states(delivering) == [(claim_id, 1, "requested"), (claim_id, 2, "requested")]


def test_retry_after_is_honoured(delivering: Api, receiver: Receiver) -> None:
    claim_id = claim_id_of(delivering.push(visit_for("enc-1", 30)))
    receiver.plan.append((503, {"Retry-After": "120"}, None))
    before = datetime.now(UTC)
    with worker_for(delivering) as worker:
        worker.run_once()
        assert worker.run_once() == []  # not due again before the Retry-After
    (task,) = tasks(delivering, f"focus=Claim/{claim_id}")
    assert task["status"] == "requested"
    assert task["businessStatus"]["text"] == "HTTP 503"
    assert datetime.fromisoformat(task["restriction"]["period"]["start"]) >= before + timedelta(seconds=119)


def test_a_refusal_is_a_dead_letter_with_the_outcome_and_can_be_retried(
    delivering: Api, receiver: Receiver, tmp_path: Path
) -> None:
    claim_id = claim_id_of(delivering.push(visit_for("enc-1", 30)))
    receiver.plan.append((400, {}, OUTCOME_400))
    with worker_for(delivering) as worker:
        assert drain(delivering, worker) == 1  # no retry after a 400
        (task,) = tasks(delivering, f"focus=Claim/{claim_id}&status=failed")
        assert task["status"] == "failed"
        outputs = {o["type"]["coding"][0]["code"]: o for o in task["output"]}
        assert outputs["http-status"]["valueUnsignedInt"] == 400
        answer = json.loads(base64.b64decode(outputs["response"]["valueAttachment"]["data"]))
        assert answer == OUTCOME_400
        validate_fhir([write_json(tmp_path / "failed-task.json", task)])
        assert tasks(delivering, "status=completed") == []
        again = delivering.client.post(f"/fhir/Task/{task['id']}/$retry")
        assert again.status_code == 200, again.text
        assert again.json()["status"] == "requested"
        assert drain(delivering, worker) == 1
    assert receiver.effects == [(claim_id, 1, "active")]
    assert delivering.client.get(f"/fhir/Task/{task['id']}").json()["status"] == "completed"
    # only a dead letter is sent again
    refused = delivering.client.post(f"/fhir/Task/{task['id']}/$retry")
    assert refused.status_code == 409, refused.text


def test_a_destination_that_is_down_is_retried_then_given_up(database_url: str, rules: Rules, tmp_path: Path) -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    destination = fhir_destination(f"http://127.0.0.1:{port}/fhir", retry={"max_attempts": 3, "initial_seconds": 0.01})
    with api_with(database_url, rules, tmp_path, destination) as api, worker_for(api) as worker:
        claim_id = claim_id_of(api.push(visit_for("enc-1", 30)))
        assert drain(api, worker) == 3
        (task,) = tasks(api, f"focus=Claim/{claim_id}")
    assert task["status"] == "failed"
    assert task["statusReason"]["text"] == "no answer: ConnectError; gave up after 3 attempts"


def test_no_claim_change_without_its_deliveries(delivering: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    flush = PutBatch.flush

    def flush_then_fail(batch: PutBatch) -> None:  # the push's rows are inserted, then its transaction fails
        flush(batch)
        raise RuntimeError("the transaction fails after the Claim and its delivery were written")

    monkeypatch.setattr(PutBatch, "flush", flush_then_fail)
    assert delivering.push(visit_for("enc-1", 30)).status_code == 500
    monkeypatch.undo()
    assert delivering.count("resource_current") == 0
    assert delivering.count("deliveries") == 0


def test_filters_choose_the_changes_each_destination_gets(
    database_url: str, rules: Rules, tmp_path: Path, receiver: Receiver
) -> None:
    chosen = [
        fhir_destination(receiver.base, id="medicare-active", filter={"payers": ["medicare"], "statuses": ["active"]}),
        fhir_destination(receiver.base, id="commercial", filter={"payers": ["commercial"]}),
        fhir_destination(receiver.base, id="org-1", filter={"tenants": ["1234567893"]}),
        fhir_destination(receiver.base, id="other-org", filter={"tenants": ["1245319599"]}),
    ]
    with api_with(database_url, rules, tmp_path, *chosen) as api:
        claim_id = claim_id_of(api.push(visit_for("enc-1", 30)))  # medicare, billed by NPI 1234567893
        api.push(visit_for("enc-1", 30, status="cancelled"))
        # other dates: visits of one patient on one day make the day's one Claim (issue 12)
        claim_id_of(api.push(visit_for("enc-2", 30, dvt=True, day="2025-01-10")))  # held (draft): not ready to bill
        api.push(visit_for("enc-3", 30, status="cancelled", day="2025-01-09"))  # a cancellation of nothing delivered
        rows = sorted((r["destination"], r["claim_id"], r["claim_version"]) for r in api.rows("deliveries"))
    assert rows == [("medicare-active", claim_id, 1), ("org-1", claim_id, 1), ("org-1", claim_id, 2)]


def test_submit_sends_one_idempotency_key_per_version(
    database_url: str, rules: Rules, tmp_path: Path, receiver: Receiver
) -> None:
    with api_with(database_url, rules, tmp_path, fhir_destination(receiver.base, method="submit")) as api:
        claim_id = claim_id_of(api.push(visit_for("enc-1", 30)))
        receiver.plan.append("drop")  # applied, but the answer never came: sent again with the same key
        with worker_for(api) as worker:
            assert drain(api, worker) == 2
    assert [(r.method, r.path) for r in receiver.requests] == [("POST", "/fhir/Claim/$submit")] * 2
    assert len({r.key for r in receiver.requests}) == 1
    assert receiver.effects == [(claim_id, 1, "active")]


def test_smart_backend_services_authentication(
    database_url: str, rules: Rules, tmp_path: Path, receiver: Receiver
) -> None:
    key = RSAKey.generate_key(2048, private=True)
    key_file = tmp_path / "client.jwk"
    key_file.write_text(json.dumps(key.as_dict(private=True) | {"kid": "k1"}), encoding="utf-8")
    token_url = receiver.base.removesuffix("/fhir") + "/token"
    auth = {"kind": "smart", "token_url": token_url, "client_id": "theraclaim", "key_file": str(key_file)}
    with api_with(database_url, rules, tmp_path, fhir_destination(receiver.base, auth=auth)) as api:
        claim_id_of(api.push(visit_for("enc-1", 30)))
        claim_id_of(api.push(visit_for("enc-2", 30, day="2025-01-10")))  # another day: another Claim
        with worker_for(api) as worker:
            assert drain(api, worker) == 2
    assert [r.authorization for r in receiver.requests] == [f"Bearer {TOKEN}"] * 2
    (form,) = receiver.token_forms  # one token for both sends
    assert form["grant_type"] == ["client_credentials"]
    assert form["client_assertion_type"] == ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"]
    assertion = jwt.decode(form["client_assertion"][0], key, algorithms=["RS384"])
    assert assertion.header["kid"] == "k1"
    claims = assertion.claims
    assert claims["iss"] == claims["sub"] == "theraclaim"
    assert claims["aud"] == token_url
    assert 0 < claims["exp"] - claims["iat"] <= 300
    assert claims["jti"]


def test_task_search_and_read_refuse_what_they_cannot_answer(delivering: Api) -> None:
    claim_id = claim_id_of(delivering.push(visit_for("enc-1", 30)))
    (task,) = tasks(delivering, f"focus={claim_id}")
    assert tasks(delivering, f"_id={task['id']}&status=requested,failed") == [task]
    assert tasks(delivering, f"focus=Claim/{claim_id}/_history/1") == [task]
    assert tasks(delivering, f"focus=Claim/{claim_id}/_history/2") == []
    assert tasks(delivering, "status=no-such-status") == []  # a code no Task has matches nothing
    assert tasks(delivering, "focus=Patient/pat-1") == []
    for query, expression in (
        ("colour=red", None),
        ("focus=Claim/a/b", "focus"),
        ("focus=Claim/x/_history/%D9%A3", "focus"),
        ("status=%00", "status"),
        ("_count=-1", "_count"),
    ):
        body = assert_outcome(delivering.client.get(f"/fhir/Task?{query}"), 400)
        assert body["issue"][0].get("expression", [None])[0] == expression, query
    assert_outcome(delivering.client.get("/fhir/Task/no-such-task"), 404)
    assert_outcome(delivering.client.post("/fhir/Task/no-such-task/$retry"), 404)
    assert_outcome(delivering.client.post(f"/fhir/Task/{task['id']}/$retry"), 409)  # not a dead letter


def test_task_pages_neither_repeat_nor_skip_a_task_when_others_arrive(delivering: Api) -> None:
    """The Task search pages like every search: a keyset cursor on the first page's snapshot."""
    for number, day in enumerate(("2025-01-06", "2025-01-07", "2025-01-08"), start=1):
        claim_id_of(delivering.push(visit_for(f"enc-{number}", 30, day=day)))
    first = delivering.client.get("/fhir/Task?_count=2").json()
    claim_id_of(delivering.push(visit_for("enc-4", 30, day="2025-01-09")))  # a Task created between the pages
    following = next(link["url"] for link in first["link"] if link["relation"] == "next")
    assert "_offset" not in following and "_cursor=" in following
    second = delivering.client.get("/fhir/" + following.split("/fhir/", 1)[1]).json()
    seen = [e["resource"]["id"] for page in (first, second) for e in page.get("entry", [])]
    assert len(seen) == 3 == len(set(seen)) and first["total"] == second["total"] == 3
    assert not any(link["relation"] == "next" for link in second["link"])
    assert len(tasks(delivering, "_count=10")) == 4  # a new search sees the fourth
    for query, expression in (("_offset=2", None), ("_cursor=not-a-cursor", "_cursor")):
        body = assert_outcome(delivering.client.get(f"/fhir/Task?{query}"), 400)
        assert body["issue"][0].get("expression", [None])[0] == expression, query


def test_a_folder_gets_one_837p_file_per_export_written_whole(
    database_url: str, rules: Rules, tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop_folder = tmp_path / "outbound"
    drop_folder.mkdir()
    folder = {"id": "clearinghouse", "kind": "folder", "path": str(drop_folder)}
    with api_with(database_url, rules, tmp_path, fhir_destination(receiver.base), folder) as api:
        for number in (1, 2):
            claim_id_of(
                api.push(with_demographics(visit_for(f"enc-{number}", 30, day=None if number == 1 else "2025-01-10")))
            )
        with worker_for(api) as worker:
            (exporter,) = worker.folders
            first = exporter.export()
            assert first.control_number is not None and len(first.sent) == 2
            assert exporter.export().control_number is None  # nothing new: no file
            claim_id_of(api.push(with_demographics(visit_for("enc-1", 45))))  # version 2: a replacement

            def full_disk(*_: Any) -> None:
                raise OSError(28, "No space left on device")

            monkeypatch.setattr("adapter.service.delivery.folder.os.replace", full_disk)
            with pytest.raises(OSError):
                exporter.export()  # the export rolls back: nothing marked exported, no file, no temporary
            monkeypatch.undo()
            second = exporter.export()
            assert second.control_number == first.control_number + 1  # the numbers rolled back too
            assert [(s.version_id, s.frequency) for s in second.sent] == [(2, "7")]
            assert drain(api, worker) == 3  # the FHIR destination got its three changes meanwhile
    files = sorted(drop_folder.iterdir())
    assert [f.name for f in files] == [
        f"clearinghouse-{number:09d}.x12" for number in (first.control_number, second.control_number)
    ]
    assert files[0].read_bytes() == first.content and files[1].read_bytes() == second.content
    validate_x12(files)


def test_a_committed_change_wakes_an_idle_worker_on_postgresql(
    rules: Rules, tmp_path: Path, receiver: Receiver
) -> None:
    url = require_postgres()
    reset_postgres(url)
    # polling every 10 minutes: only the NOTIFY sent at commit can bring the change within the wait below
    with (
        api_with(url, rules, tmp_path, fhir_destination(receiver.base), delivery_poll_seconds=600) as api,
        worker_for(api) as worker,
    ):
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,))
        thread.start()
        try:
            time.sleep(0.5)  # the worker is idle, listening
            claim_id = claim_id_of(api.push(visit_for("enc-1", 30)))
            deadline = time.monotonic() + 120
            while not receiver.effects and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            thread.join(30)
        assert not thread.is_alive()  # a stop is seen within a second, whatever the poll interval
    assert receiver.effects == [(claim_id, 1, "active")]


NPI_A, NPI_B = "1234567893", "1245319599"  # the builder's billing Organization, and another


def visit_billed_by(npi: str, enc_id: str) -> dict[str, Any]:
    document = visit_for(enc_id, 30)
    if npi == NPI_B:  # another clinic's visit has its own resource ids (stored inputs are shared by id)
        document = json.loads(json.dumps(document).replace('-1"', '-b"').replace("-1/", "-b/"))
    find_resource(document, "Organization")["identifier"] = [{"system": "http://hl7.org/fhir/sid/us-npi", "value": npi}]
    return document


def test_tasks_go_through_the_auth_policy_and_tenants_see_their_own(
    database_url: str, rules: Rules, tmp_path: Path, receiver: Receiver
) -> None:
    clients = {name: Client.new(name) for name in ("clinic-a", "clinic-b", "operator", "claims-only")}
    registry = write_registry(
        tmp_path / "clients.yaml",
        [
            clients["clinic-a"].entry("system/*.cruds", NPI_A),
            clients["clinic-b"].entry("system/*.cruds", NPI_B),
            clients["operator"].entry("system/*.cruds"),
            clients["claims-only"].entry("system/Claim.rs"),
        ],
    )
    chosen = fhir_destination(receiver.base)
    with api_with(database_url, rules, tmp_path, chosen, clients=str(registry)) as api:
        token_url = "http://testserver/auth/token"

        def token(name: str, scope: str = "system/*.cruds") -> dict[str, str]:
            form = token_form(clients[name].assertion(token_url), scope)
            answer = api.client.post("/auth/token", data=form)
            assert answer.status_code == 200, answer.text
            return {"Authorization": f"Bearer {answer.json()['access_token']}"}

        a, b, operator = token("clinic-a"), token("clinic-b"), token("operator")
        pushed = api.push(visit_billed_by(NPI_A, "enc-1"), headers=a)
        claim_a = claim_id_of(pushed)
        claim_b = claim_id_of(api.push(visit_billed_by(NPI_B, "enc-b"), headers=b))
        assert sorted(r["tenant"] for r in api.rows("deliveries")) == [NPI_A, NPI_B]

        def seen(headers: dict[str, str]) -> set[str]:
            answer = api.client.get("/fhir/Task", headers=headers)
            assert answer.status_code == 200, answer.text
            return {e["resource"]["focus"]["reference"].split("/")[1] for e in answer.json()["entry"]}

        assert seen(a) == {claim_a} and seen(b) == {claim_b} and seen(operator) == {claim_a, claim_b}
        (task_a,) = (r["task_id"] for r in api.rows("deliveries") if r["claim_id"] == claim_a)
        assert api.client.get(f"/fhir/Task/{task_a}", headers=a).status_code == 200
        assert_outcome(api.client.get(f"/fhir/Task/{task_a}", headers=b), 404)  # another tenant's: not found
        assert_outcome(api.client.post(f"/fhir/Task/{task_a}/$retry", headers=b), 404)
        assert_outcome(api.client.get("/fhir/Task"), 401)
        assert_outcome(api.client.get("/fhir/Task", headers=token("claims-only", "system/Claim.rs")), 403)
        assert_outcome(api.client.post(f"/fhir/Task/{task_a}/$retry", headers=token("operator", "system/Task.rs")), 403)
        # $retry of A's (not failed) Task by A: refused (409), and audited like every request
        assert_outcome(api.client.post(f"/fhir/Task/{task_a}/$retry", headers=a), 409)
        events = api.rows("audit_event")
        assert any(f"Task/{task_a}" in e["entity"] for e in events)
