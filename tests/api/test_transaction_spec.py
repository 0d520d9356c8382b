"""Transactions and batches per the FHIR R4 spec (issue 11): POST entries with relative references
rewritten, ifNoneExist and ifMatch, GET entries after the writes, every failed entry reported."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from adapter.service.claims import ClaimService
from tests.api.conftest import Api, assert_outcome, visit_for
from tests.api.test_transaction import post, responses, transaction


def all_posted(enc_id: str = "enc-1") -> dict[str, Any]:
    """Every entry POSTed with its absolute fullUrl and the sender's ids: references stay relative."""
    document = visit_for(enc_id)
    entries = [
        {
            "fullUrl": e["fullUrl"],
            "resource": e["resource"],
            "request": {"method": "POST", "url": e["resource"]["resourceType"]},
        }
        for e in document["entry"]
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def test_post_entries_with_relative_references_are_rewritten(api: Api) -> None:
    response = post(api, all_posted())
    assert response.status_code == 200, response.text
    locations = [r["location"] for r in responses(response.json())]
    assert all(r["status"].startswith("201") for r in responses(response.json()))
    claim = api.client.get("/fhir/Claim").json()["entry"][0]["resource"]
    patient_ref = claim["patient"]["reference"]
    assert patient_ref != "Patient/pat-1" and any(loc.startswith(patient_ref + "/") for loc in locations)
    assert api.client.get(f"/fhir/{patient_ref}").status_code == 200


def test_if_none_exist_reuses_the_match_and_if_match_checks_the_version(api: Api) -> None:
    assert post(api, transaction()).status_code == 200
    document = transaction()
    for entry in document["entry"]:
        if entry["resource"]["resourceType"] == "Encounter":
            entry["request"]["ifNoneExist"] = "identifier=" + entry["resource"]["identifier"][0]["value"]
        if entry["resource"]["resourceType"] == "Patient":
            entry["request"]["ifMatch"] = 'W/"1"'
    response = post(api, document)
    assert response.status_code == 200, response.text
    assert api.count("resource_history") == api.count("resource_current")  # nothing new was written
    for entry in document["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            entry["request"]["ifMatch"] = 'W/"7"'
    body = assert_outcome(post(api, document), 412)
    assert any("ifMatch" in e for issue in body["issue"] for e in issue.get("expression", []))


def test_get_entries_see_the_writes_of_the_same_transaction(api: Api) -> None:
    document = transaction()
    document["entry"].insert(0, {"request": {"method": "GET", "url": "Claim?patient=pat-1"}})
    document["entry"].append({"request": {"method": "GET", "url": "Patient/pat-1"}})
    response = post(api, document)
    assert response.status_code == 200, response.text
    first, last = response.json()["entry"][0], response.json()["entry"][-1]
    assert first["response"]["status"] == "200 OK" and first["resource"]["total"] == 1  # GET runs last
    assert last["resource"]["resourceType"] == "Patient"


def test_a_failed_transaction_reports_every_failed_entry(api: Api) -> None:
    document = transaction()
    document["entry"][1]["resource"] = document["entry"][1]["resource"] | {"gender": "bogus"}
    document["entry"].append({"resource": {"resourceType": "Basic"}, "request": {"method": "DELETE", "url": "Basic/1"}})
    body = assert_outcome(post(api, document), 400)
    places = {e for issue in body["issue"] for e in issue.get("expression", [])}
    assert any(p.startswith("Bundle.entry[1]") for p in places), places
    assert any(p.startswith(f"Bundle.entry[{len(document['entry']) - 1}]") for p in places), places
    assert api.count("resource_current") == 0


def test_a_failing_get_entry_rolls_the_transaction_back(api: Api) -> None:
    document = transaction()
    document["entry"].append({"request": {"method": "GET", "url": "Patient/nobody"}})
    body = assert_outcome(post(api, document), 404)
    places = {e for issue in body["issue"] for e in issue.get("expression", [])}
    assert f"Bundle.entry[{len(document['entry']) - 1}].request.url" in places, places
    assert api.count("resource_current") == 0  # the writes before the read were undone
    assert api.count("submissions") == 0


def test_a_failing_get_entry_of_a_batch_fails_alone(api: Api) -> None:
    document = transaction(kind="batch")
    document["entry"].append({"request": {"method": "GET", "url": "Patient/nobody"}})
    response = post(api, document)
    assert response.status_code == 200, response.text
    answers = responses(response.json())
    assert answers[-1]["status"].startswith("404")
    assert all(a["status"].startswith("201") for a in answers[:-1])


def _with_if_match(kind: str, version: str) -> tuple[dict[str, Any], int]:
    document = transaction(kind=kind)
    index = next(i for i, e in enumerate(document["entry"]) if e["resource"]["resourceType"] == "Patient")
    document["entry"][index]["request"]["ifMatch"] = version
    return document, index


def test_if_match_is_checked_in_the_write_transaction(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer changes the Patient after the Bundle was read and checked, before it is written
    (during the conversion): the ifMatch still fails, and nothing of the transaction is stored."""
    assert post(api, transaction()).status_code == 200
    patient = api.client.get("/fhir/Patient/pat-1").json()
    convert = ClaimService.convert

    def convert_while_another_writes(self: ClaimService, *args: Any, **kwargs: Any) -> Any:
        with api.store.transaction() as connection:
            changed = {k: v for k, v in patient.items() if k != "meta"} | {"birthDate": "1961-02-03"}
            api.store.put(connection, changed, datetime.now(UTC))
        monkeypatch.setattr(ClaimService, "convert", convert)  # once
        return convert(self, *args, **kwargs)

    monkeypatch.setattr(ClaimService, "convert", convert_while_another_writes)
    document, _ = _with_if_match("transaction", 'W/"1"')
    before = api.count("resource_history")
    body = assert_outcome(post(api, document), 412)
    assert any(e.endswith(".request.ifMatch") for issue in body["issue"] for e in issue.get("expression", []))
    assert api.count("resource_history") == before + 1  # the other writer's version only
    assert api.client.get("/fhir/Patient/pat-1").json()["birthDate"] == "1961-02-03"


def test_a_stale_if_match_fails_its_batch_entry_alone(api: Api) -> None:
    assert post(api, transaction()).status_code == 200
    changed, _ = _with_if_match("transaction", 'W/"1"')
    for entry in changed["entry"]:
        if entry["resource"]["resourceType"] == "Patient":
            entry["resource"] = entry["resource"] | {"birthDate": "1961-02-03"}
    assert post(api, changed).status_code == 200  # Patient now at version 2
    batch, index = _with_if_match("batch", 'W/"1"')
    answers = responses(post(api, batch).json())
    assert answers[index]["status"].startswith("412")
    assert all(a["status"][:3] in ("200", "201") for i, a in enumerate(answers) if i != index)
    malformed, index = _with_if_match("transaction", "yesterday")
    body = assert_outcome(post(api, malformed), 400)
    assert {f"Bundle.entry[{index}].request.ifMatch"} <= {e for i in body["issue"] for e in i.get("expression", [])}


def test_if_none_exist_is_matched_again_in_the_write_transaction(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer stores a matching Encounter after the Bundle's ifNoneExist missed, before it is
    written (during the conversion): the transaction uses that Encounter instead of creating a second."""
    document = transaction()
    index, encounter = next(
        (i, e) for i, e in enumerate(document["entry"]) if e["resource"]["resourceType"] == "Encounter"
    )
    identifier = encounter["resource"]["identifier"][0]["value"]
    encounter["request"]["ifNoneExist"] = f"identifier={identifier}"
    convert = ClaimService.convert

    def convert_while_another_writes(self: ClaimService, *args: Any, **kwargs: Any) -> Any:
        with api.store.transaction() as connection:
            elsewhere = encounter["resource"] | {"id": "enc-elsewhere"}
            api.store.put(connection, elsewhere, datetime.now(UTC))
        monkeypatch.setattr(ClaimService, "convert", convert)  # once
        return convert(self, *args, **kwargs)

    monkeypatch.setattr(ClaimService, "convert", convert_while_another_writes)
    response = post(api, document)
    assert response.status_code == 200, response.text
    assert responses(response.json())[index]["location"].startswith("Encounter/enc-elsewhere/")
    found = api.client.get("/fhir/Encounter", params={"identifier": identifier}).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == ["enc-elsewhere"]
    procedure = api.client.get("/fhir/Procedure").json()["entry"][0]["resource"]
    assert procedure["encounter"]["reference"] == "Encounter/enc-elsewhere"
