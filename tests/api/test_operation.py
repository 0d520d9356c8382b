"""``POST /fhir/Claim/$from-encounter``: status codes, idempotency, versions, cancellation, payer,
``Prefer``, ``If-None-Exist``, ``If-Match``, 422s, the submission record (without PHI) and the
FHIR validity of what is answered and stored (issue 4)."""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapter.pipeline import run
from adapter.rules.catalog import Rules
from adapter.service import claims as claims_module
from adapter.service.claims import MAX_ATTEMPTS, ClaimService
from adapter.service.conditional import IfNoneExist, MatchChanged
from adapter.service.store import WriteConflict
from tests import bundle_builder as bb
from tests.api.conftest import FHIR_JSON, Api, assert_outcome, entries, service_clock, visit_for
from tests.conftest import validate_fhir, write_json

NAME_FAMILY = "Quixotewhistle"
NAME_GIVEN = "Marmaduke"
BIRTH_DATE = "1937-11-29"
MRN = "MRN-77341-SECRET"
PHI = (NAME_FAMILY, NAME_GIVEN, BIRTH_DATE, MRN)


def phi_visit(*procedures: dict[str, Any], **encounter_args: Any) -> dict[str, Any]:
    """A visit whose Patient carries distinctive PHI, so its absence elsewhere can be checked."""
    document = bb.visit(*procedures, **encounter_args)
    patient = document["entry"][0]["resource"]
    assert patient["resourceType"] == "Patient"
    patient["name"] = [{"family": NAME_FAMILY, "given": [NAME_GIVEN]}]
    patient["birthDate"] = BIRTH_DATE
    patient["identifier"] = [{"system": "urn:example:mrn", "value": MRN}]
    return document


def massage(minutes: int = 30) -> dict[str, Any]:
    return bb.procedure("97124", minutes)


def only_claim(bundle: dict[str, Any]) -> dict[str, Any]:
    [claim] = entries(bundle, "Claim")
    return claim


def units(claim: dict[str, Any]) -> dict[str, int]:
    return {item["productOrService"]["coding"][0]["code"]: item["quantity"]["value"] for item in claim["item"]}


def history(api: Api, claim_id: str) -> list[dict[str, Any]]:
    response = api.client.get(f"/fhir/Claim/{claim_id}/_history")
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "history"
    return entries(bundle)


def dvt_visit() -> dict[str, Any]:
    """A visit with an acute DVT diagnosis: the Claim is held and a DetectedIssue is made."""
    return visit_for("enc-1", dvt=True)


# --- create, retry, new version -------------------------------------------------------------------


def test_first_push_creates_the_claim(api: Api) -> None:
    response = api.push(bb.visit(massage()))
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    assert response.headers["etag"] == 'W/"1"'
    assert response.headers["last-modified"].endswith("GMT")
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "collection"
    kinds = {r["resourceType"] for r in entries(bundle)}
    assert {"Claim", "OperationOutcome"} <= kinds
    claim = only_claim(bundle)
    assert claim["meta"]["versionId"] == "1"
    assert response.headers["location"].endswith(f"/fhir/Claim/{claim['id']}/_history/1")
    # the Location can be followed
    location = response.headers["location"].removeprefix(str(api.client.base_url))
    followed = api.client.get(location)
    assert followed.status_code == 200
    assert followed.json()["id"] == claim["id"]
    read = api.client.get(f"/fhir/Claim/{claim['id']}")
    assert read.status_code == 200
    assert read.headers["etag"] == 'W/"1"'
    assert read.json() == claim


def test_the_answer_is_what_convert_makes(api: Api, rules: Rules) -> None:
    document = bb.visit(*bb.back_to_back(("97124", 24), ("97140", 23)))
    response = api.push(document)
    assert response.status_code == 201
    converted = run(json.dumps(document).encode(), rules=rules, now=service_clock())
    expected = only_claim(converted.bundle)
    answered = only_claim(response.json())
    volatile = ("meta", "created")
    assert {k: v for k, v in answered.items() if k not in volatile} == {
        k: v for k, v in expected.items() if k not in volatile
    }
    assert [r["resourceType"] for r in entries(response.json())] == [
        r["resourceType"] for r in entries(converted.bundle)
    ]


def test_the_same_push_again_answers_200_with_the_same_claim(api: Api) -> None:
    first = api.push(bb.visit(massage()))
    assert first.status_code == 201
    claim_id = only_claim(first.json())["id"]
    counts = api.count("resource_current"), api.count("resource_history")
    again = api.push(bb.visit(massage()))
    assert again.status_code == 200, again.text
    claim = only_claim(again.json())
    assert claim["id"] == claim_id
    assert claim["meta"]["versionId"] == "1"
    assert again.headers["etag"] == 'W/"1"'
    assert (api.count("resource_current"), api.count("resource_history")) == counts
    assert len(history(api, claim_id)) == 1


def test_changed_content_makes_a_new_version(api: Api) -> None:
    first = api.push(bb.visit(massage(30)))
    assert first.status_code == 201
    claim_id = only_claim(first.json())["id"]
    corrected = api.push(bb.visit(massage(45)))
    assert corrected.status_code == 201, corrected.text
    claim = only_claim(corrected.json())
    assert claim["id"] == claim_id
    assert claim["meta"]["versionId"] == "2"
    assert corrected.headers["etag"] == 'W/"2"'
    assert corrected.headers["location"].endswith(f"/fhir/Claim/{claim_id}/_history/2")
    assert units(claim) == {"97124": 3}
    versions = history(api, claim_id)
    assert [v["meta"]["versionId"] for v in versions] == ["2", "1"]
    one = api.client.get(f"/fhir/Claim/{claim_id}/_history/1")
    two = api.client.get(f"/fhir/Claim/{claim_id}/_history/2")
    assert one.status_code == two.status_code == 200
    assert one.headers["etag"] == 'W/"1"'
    assert two.headers["etag"] == 'W/"2"'
    assert units(one.json()) == {"97124": 2}
    assert units(two.json()) == {"97124": 3}
    assert api.client.get(f"/fhir/Claim/{claim_id}").json() == two.json()
    assert_outcome(api.client.get(f"/fhir/Claim/{claim_id}/_history/3"), 404)


def test_a_new_diagnosis_makes_a_new_version(api: Api) -> None:
    first = api.push(bb.visit(massage()))
    claim_id = only_claim(first.json())["id"]
    document = bb.bundle(
        *bb.base_resources(),
        bb.condition("dx-2", "M62.830", "Muscle spasm of back"),
        bb.encounter(diagnoses=("Condition/dx-1", "Condition/dx-2")),
        massage(),
    )
    second = api.push(document)
    assert second.status_code == 201, second.text
    claim = only_claim(second.json())
    assert claim["id"] == claim_id
    assert claim["meta"]["versionId"] == "2"
    assert len(claim["diagnosis"]) == 2


@pytest.mark.parametrize("status", ["cancelled", "entered-in-error"])
def test_a_cancelled_encounter_cancels_the_claim(api: Api, status: str) -> None:
    first = api.push(bb.visit(massage()))
    claim_id = only_claim(first.json())["id"]
    cancelled = api.push(bb.visit(massage(), status=status))
    assert cancelled.status_code == 201, cancelled.text
    assert cancelled.headers["etag"] == 'W/"2"'
    claim = api.client.get(f"/fhir/Claim/{claim_id}").json()
    assert claim["status"] == "cancelled"
    assert claim["meta"]["versionId"] == "2"
    assert [v["status"] for v in history(api, claim_id)] == ["cancelled", "active"]
    # the same cancellation again changes nothing
    again = api.push(bb.visit(massage(), status=status))
    assert again.status_code == 200, again.text
    assert len(history(api, claim_id)) == 2


# --- payer, Parameters ----------------------------------------------------------------------------


def eight_plus_eight() -> dict[str, Any]:
    """Medicare pools 16 minutes into 1 unit; the commercial pack bills 1 unit per code."""
    return bb.visit(*bb.back_to_back(("97124", 8), ("97140", 8)))


def test_payer_query_parameter_changes_the_units(api: Api) -> None:
    medicare = api.push(eight_plus_eight())
    assert medicare.status_code == 201
    assert units(only_claim(medicare.json())) == {"97124": 1}
    commercial = api.push(eight_plus_eight(), params={"payer": "commercial"})
    assert commercial.status_code == 201, commercial.text
    claim = only_claim(commercial.json())
    assert units(claim) == {"97124": 1, "97140": 1}
    assert claim["meta"]["versionId"] == "2"


@pytest.mark.parametrize("value_type", ["valueString", "valueCode"])
def test_parameters_body_with_bundle_and_payer(api: Api, value_type: str) -> None:
    plain = {"resourceType": "Parameters", "parameter": [{"name": "bundle", "resource": eight_plus_eight()}]}
    response = api.push(plain)
    assert response.status_code == 201, response.text
    assert units(only_claim(response.json())) == {"97124": 1}
    with_payer = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "bundle", "resource": eight_plus_eight()},
            {"name": "payer", value_type: "commercial"},
        ],
    }
    response = api.push(with_payer)
    assert response.status_code == 201, response.text
    assert units(only_claim(response.json())) == {"97124": 1, "97140": 1}


def test_parameters_without_a_bundle_is_refused(api: Api) -> None:
    before = api.stored_counts()
    body = assert_outcome(api.push({"resourceType": "Parameters", "parameter": [{"name": "payer"}]}), (400, 422))
    assert body["issue"][0]["severity"] == "error"
    assert api.count("resource_current") == before[0]


# --- Prefer ---------------------------------------------------------------------------------------


def test_prefer_return_minimal(api: Api) -> None:
    response = api.push(bb.visit(massage()), headers={"Prefer": "return=minimal"})
    assert response.status_code == 201
    assert response.content == b""
    assert response.headers["etag"] == 'W/"1"'
    assert "/fhir/Claim/" in response.headers["location"]
    assert response.headers["last-modified"]
    assert api.client.get("/fhir/Claim").json()["total"] == 1
    again = api.push(bb.visit(massage()), headers={"Prefer": "return=minimal"})
    assert again.status_code == 200
    assert again.content == b""
    assert again.headers["location"] == response.headers["location"]


def test_prefer_return_operation_outcome(api: Api) -> None:
    response = api.push(bb.visit(massage()), headers={"Prefer": "return=OperationOutcome"})
    assert response.status_code == 201
    assert response.json()["resourceType"] == "OperationOutcome"
    assert response.headers["etag"] == 'W/"1"'
    assert "/fhir/Claim/" in response.headers["location"]


def test_prefer_return_representation_is_the_bundle(api: Api) -> None:
    response = api.push(bb.visit(massage()), headers={"Prefer": "return=representation"})
    assert response.status_code == 201
    assert response.json()["resourceType"] == "Bundle"


# --- If-None-Exist --------------------------------------------------------------------------------


def test_if_none_exist_with_an_existing_claim_is_a_no_op(api: Api) -> None:
    first = api.push(bb.visit(massage(30)))
    claim = only_claim(first.json())
    counts = api.count("resource_current"), api.count("resource_history")
    # changed content, but the condition matches: nothing is processed
    response = api.push(bb.visit(massage(45)), headers={"If-None-Exist": "encounter=Encounter/enc-1"})
    assert response.status_code == 200, response.text
    answered = only_claim(response.json())
    assert answered["id"] == claim["id"]
    assert answered["meta"]["versionId"] == "1"
    assert units(answered) == {"97124": 2}
    assert response.headers["etag"] == 'W/"1"'
    assert (api.count("resource_current"), api.count("resource_history")) == counts
    assert len(history(api, claim["id"])) == 1
    # ... but it is a submission all the same, recorded with the Claim it matched
    (_, matched) = sorted(api.rows("submissions"), key=lambda row: row["received_at"])
    assert matched["http_status"] == 200 and f"Claim/{claim['id']}/_history/1" in matched["outcome"]


def test_if_none_exist_without_a_match_is_processed(api: Api) -> None:
    response = api.push(bb.visit(massage()), headers={"If-None-Exist": "encounter=Encounter/enc-1"})
    assert response.status_code == 201, response.text
    claim = only_claim(response.json())
    assert api.client.get(f"/fhir/Claim/{claim['id']}").status_code == 200
    # a condition naming another encounter does not stop a second, different encounter either
    # (on another date: a second visit on the same date would be pooled into the day's Claim)
    later = bb.procedure("97124", 30, start="2025-01-16T09:00:00-05:00", encounter="Encounter/enc-2")
    other = bb.visit(later, enc_id="enc-2", start="2025-01-16T08:55:00-05:00")
    response = api.push(other, headers={"If-None-Exist": "encounter=Encounter/enc-2"})
    assert response.status_code == 201, response.text
    assert api.client.get("/fhir/Claim").json()["total"] == 2


def test_if_none_exist_is_matched_again_as_the_claim_is_written(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another push stores the Claim after this push's If-None-Exist missed, before this one writes
    (during its conversion): this push answers the other's Claim and stores nothing."""
    convert = ClaimService.convert

    def convert_while_another_pushes(self: ClaimService, *args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(ClaimService, "convert", convert)  # once
        assert self.from_encounter(bb.visit(massage(30)), None).http_status == 201
        return convert(self, *args, **kwargs)

    monkeypatch.setattr(ClaimService, "convert", convert_while_another_pushes)
    response = api.push(bb.visit(massage(45)), headers={"If-None-Exist": "encounter=Encounter/enc-1"})
    assert response.status_code == 200, response.text
    answered = only_claim(response.json())
    assert answered["meta"]["versionId"] == "1" and units(answered) == {"97124": 2}, "the other push's Claim"
    assert len(history(api, answered["id"])) == 1


def test_if_none_exist_with_an_unknown_parameter_is_refused(api: Api) -> None:
    assert_outcome(api.push(bb.visit(massage()), headers={"If-None-Exist": "bogus=1"}), 400)
    assert api.count("resource_current") == 0


# --- If-Match -------------------------------------------------------------------------------------


def test_if_match_with_the_current_version_updates(api: Api) -> None:
    claim_id = only_claim(api.push(bb.visit(massage(30))).json())["id"]
    response = api.push(bb.visit(massage(45)), headers={"If-Match": 'W/"1"'})
    assert response.status_code == 201, response.text
    assert response.headers["etag"] == 'W/"2"'
    assert len(history(api, claim_id)) == 2


def test_if_match_with_a_stale_version_is_412_and_stores_nothing(api: Api) -> None:
    claim_id = only_claim(api.push(bb.visit(massage(30))).json())["id"]
    assert api.push(bb.visit(massage(45)), headers={"If-Match": 'W/"1"'}).status_code == 201
    counts = api.count("resource_current"), api.count("resource_history")
    response = api.push(bb.visit(massage(60)), headers={"If-Match": 'W/"1"'})
    body = assert_outcome(response, 412)
    assert body["issue"][0]["severity"] == "error"
    assert (api.count("resource_current"), api.count("resource_history")) == counts
    current = api.client.get(f"/fhir/Claim/{claim_id}").json()
    assert current["meta"]["versionId"] == "2"
    assert units(current) == {"97124": 3}
    assert [row["http_status"] for row in sorted(api.rows("submissions"), key=lambda r: r["received_at"])] == [
        201,
        201,
        412,
    ]


def test_if_match_when_no_claim_exists_is_412(api: Api) -> None:
    assert_outcome(api.push(bb.visit(massage()), headers={"If-Match": 'W/"1"'}), 412)
    assert api.count("resource_current") == 0


def test_if_match_that_is_not_an_etag_is_400(api: Api) -> None:
    assert_outcome(api.push(bb.visit(massage()), headers={"If-Match": "yesterday"}), 400)
    assert api.count("resource_current") == 0


# --- 422 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("breakage", ["status-code", "date", "no-encounter"])
def test_invalid_fhir_is_422_and_stores_no_resource(api: Api, breakage: str) -> None:
    document = bb.visit(massage())
    encounter = next(e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == "Encounter")
    procedure = next(e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == "Procedure")
    if breakage == "status-code":
        encounter["status"] = "bogus"
    elif breakage == "date":
        procedure["performedPeriod"]["start"] = "2025-02-30T09:00:00-05:00"
    else:
        document["entry"] = [e for e in document["entry"] if e["resource"] is not encounter]
    response = api.push(document)
    body = assert_outcome(response, 422)
    assert any(issue["severity"] in ("error", "fatal") for issue in body["issue"]), body
    assert api.count("resource_current") == 0
    assert api.count("resource_history") == 0
    assert api.client.get("/fhir/Claim").json()["total"] == 0


def test_nothing_billable_is_422(api: Api) -> None:
    response = api.push(bb.visit(massage(7)))
    body = assert_outcome(response, 422)
    codes = [c["code"] for issue in body["issue"] for c in issue.get("details", {}).get("coding", [])]
    assert "timed-code-not-billed" in codes
    assert body["issue"][0]["severity"] == "error" and codes[0] == "nothing-billable"
    assert "location" not in response.headers
    assert api.count("resource_current") == 0


def test_get_on_the_operation_is_405(api: Api) -> None:
    response = api.client.get("/fhir/Claim/$from-encounter")
    assert_outcome(response, 405)
    assert response.headers["allow"] == "POST"


def test_a_database_that_is_down_is_503_not_a_conflict(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    def down(*_: Any, **__: Any) -> Any:
        raise OperationalError("connect", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(api.store, "transaction", down)
    body = assert_outcome(api.push(bb.visit(massage(30))), 503)
    assert body["issue"][0]["details"]["coding"][0]["code"] == "database-unavailable"


def test_wrong_resource_type_is_refused(api: Api) -> None:
    response = api.push({"resourceType": "Patient", "id": "pat-1"})
    assert_outcome(response, (400, 422))
    assert api.count("resource_current") == 0


# --- the submission record ------------------------------------------------------------------------


def test_every_push_is_recorded_without_phi(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    pushes = [
        (phi_visit(massage(30)), 201),
        (phi_visit(massage(30)), 200),
        (phi_visit(massage(45)), 201),
        (phi_visit(massage(7)), 422),
        (phi_visit(massage(30), status="cancelled"), 201),
    ]
    for count, (document, status) in enumerate(pushes, 1):
        response = api.push(document)
        assert response.status_code == status, response.text
        assert api.store.submission_count() == count
    rows = api.rows("submissions")
    assert sorted(row["http_status"] for row in rows) == sorted(status for _, status in pushes)
    for row in rows:
        assert row["operation"] == "Claim/$from-encounter"
        assert len(row["payload_sha256"]) == 64
        assert row["received_at"] is not None
        assert row["rule_fingerprint"]
        json.loads(row["outcome"])
    dump = json.dumps(rows, default=str)
    for secret in PHI:
        assert secret not in dump, f"{secret!r} is stored in the submissions table"
        assert secret not in caplog.text, f"{secret!r} is in the logs"
    claim_id = only_claim(api.push(phi_visit(massage(30))).json())["id"]
    assert any(claim_id in row["outcome"] for row in rows), "the record names the Claim"
    # an identical payload has the same hash, so a decision can be matched to its input later
    hashes = [row["payload_sha256"] for row in sorted(rows, key=lambda r: r["received_at"])]
    assert hashes[0] == hashes[1]
    assert hashes[0] != hashes[2]


# --- validity -------------------------------------------------------------------------------------


def test_answers_and_stored_resources_are_valid_fhir(api: Api, tmp_path: Path) -> None:
    response = api.push(dvt_visit())
    assert response.status_code == 201, response.text
    bundle = response.json()
    issues = entries(bundle, "DetectedIssue")
    assert issues, "an acute DVT makes a DetectedIssue"
    assert only_claim(bundle)["status"] == "draft"
    files = [write_json(tmp_path / "response.json", bundle)]
    for resource_type in ("Claim", "DetectedIssue"):
        search = api.client.get(f"/fhir/{resource_type}", params={"patient": "Patient/pat-1"})
        assert search.status_code == 200
        found = entries(search.json(), resource_type)
        assert found, f"no stored {resource_type}"
        files.append(write_json(tmp_path / f"search-{resource_type}.json", search.json()))
        for resource in found:
            read = api.client.get(f"/fhir/{resource_type}/{resource['id']}")
            assert read.status_code == 200
            files.append(write_json(tmp_path / f"{resource_type}-{resource['id']}.json", read.json()))
    assert {i["id"] for i in issues} == {
        r["id"] for r in entries(api.client.get("/fhir/DetectedIssue").json(), "DetectedIssue")
    }
    history_bundle = api.client.get(f"/fhir/Claim/{only_claim(bundle)['id']}/_history").json()
    files.append(write_json(tmp_path / "history.json", history_bundle))
    validate_fhir(files)


# --- conflicts ------------------------------------------------------------------------------------


def test_writes_that_keep_conflicting_end_in_503(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lost race is retried; when every attempt loses, the answer is 503 (transient, not the
    client's fault: 409/412 are for a real If-Match mismatch) and nothing is stored."""
    attempts = []

    def always_conflicting(_connection: Any, resources: list[dict[str, Any]], _now: Any, **_checks: Any) -> Any:
        attempts.append(resources[0]["resourceType"])
        raise WriteConflict(resources[0]["resourceType"])

    monkeypatch.setattr(api.store, "put_many", always_conflicting)
    response = api.push(bb.visit(massage()))
    body = assert_outcome(response, 503)
    assert body["issue"][0]["code"] == "transient"
    assert response.headers["Retry-After"]
    assert len(attempts) == MAX_ATTEMPTS
    monkeypatch.undo()
    assert api.count("resource_current") == api.count("resource_history") == 0
    assert api.push(bb.visit(massage())).status_code == 201, "the server recovers"


def test_a_lost_race_is_retried(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    real_put = api.store.put_many
    lost = []

    def lose_once(connection: Any, resources: list[dict[str, Any]], now: Any, **checks: Any) -> Any:
        if not lost:
            lost.append(resources[0]["resourceType"])
            raise WriteConflict(resources[0]["resourceType"])
        return real_put(connection, resources, now, **checks)

    monkeypatch.setattr(api.store, "put_many", lose_once)
    response = api.push(bb.visit(massage()))
    assert response.status_code == 201, response.text
    assert lost
    assert api.store.submission_count() == 1, "the failed attempt is rolled back with its record"


def test_concurrent_pushes_with_one_if_none_exist_create_one_claim(
    api: Api, rules: Rules, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two pushes that share no day, Claim or changed input (other patients, the clinic already
    stored) and one condition: the condition's own lock makes the second wait, match the first's
    Claim and create none.  PostgreSQL (SQLite's write lock serializes every writer anyway)."""
    if api.store.dialect != "postgresql":
        pytest.skip("the advisory lock is PostgreSQL's")
    first = visit_for("enc-1")
    text = orjson.dumps(first).decode()
    for old, new in (("pat-1", "pat-2"), ("dx-1", "dx-2"), ("cov-1", "cov-2"), ("enc-1", "enc-2"), ("poc-1", "poc-2")):
        text = text.replace(old, new)
    second = orjson.loads(text)
    with api.store.transaction() as connection:  # the clinic, as both pushes carry it: unchanged by them
        for entry in first["entry"]:
            if entry["resource"]["resourceType"] in ("Organization", "Practitioner"):
                api.store.put(connection, entry["resource"], datetime.now(UTC))
    match_again = claims_module.match_again

    def matched_then_slow(*args: Any) -> None:
        match_again(*args)
        time.sleep(0.5)  # both would have missed within this window without the lock

    monkeypatch.setattr(claims_module, "match_again", matched_then_slow)
    service = ClaimService(api.store, rules, api.settings, clock=service_clock)
    condition = IfNoneExist("Claim", "provider=Organization/org-1", None)

    def push(document: dict[str, Any]) -> str:
        try:
            return str(service.from_encounter(document, None, if_none_exist=condition).http_status)
        except MatchChanged:
            return "matched"

    with ThreadPoolExecutor(2) as pool:
        answers = sorted(pool.map(push, [first, second]))
    assert answers == ["201", "matched"]
    assert api.client.get("/fhir/Claim").json()["total"] == 1
