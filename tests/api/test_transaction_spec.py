"""Transactions and batches per the FHIR R4 spec (issue 11): POST entries with relative references
rewritten, ifNoneExist and ifMatch, GET entries after the writes, every failed entry reported."""

from __future__ import annotations

from typing import Any

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
