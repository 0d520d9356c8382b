"""Every reference of what ``$from-encounter`` stores resolves on this server (issue 11): the visit's
inputs are stored, versioned, beside the Claim; the Provenance names the Claim version it explains."""

from __future__ import annotations

from typing import Any

from tests import bundle_builder as bb
from tests.api.conftest import Api, entries, visit_for
from tests.api.test_rest import search


def references(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["reference"]] if isinstance(node.get("reference"), str) else []
        return found + [r for value in node.values() for r in references(value)]
    if isinstance(node, list):
        return [r for value in node for r in references(value)]
    return []


def assert_all_resolve(api: Api, resources: list[dict[str, Any]]) -> None:
    for resource in resources:
        for reference in references(resource):
            response = api.client.get(f"/fhir/{reference}")
            assert response.status_code == 200, (resource["resourceType"], reference)


def test_every_reference_of_the_stored_output_resolves(api: Api) -> None:
    response = api.push(visit_for("enc-a", dvt=True))
    assert response.status_code == 201, response.text
    made = [r for r in entries(response.json()) if r["resourceType"] != "OperationOutcome"]
    assert {r["resourceType"] for r in made} >= {"Claim", "Provenance", "DetectedIssue"}
    assert_all_resolve(api, made)
    [claim] = [r for r in made if r["resourceType"] == "Claim"]
    [provenance] = [r for r in made if r["resourceType"] == "Provenance"]
    assert provenance["target"] == [{"reference": f"Claim/{claim['id']}/_history/{claim['meta']['versionId']}"}]
    patient = api.client.get("/fhir/Patient/pat-1")
    assert patient.status_code == 200 and patient.headers["etag"] == 'W/"1"'


def test_inputs_are_versioned_and_an_identical_push_changes_nothing(api: Api) -> None:
    assert api.push(visit_for("enc-a")).status_code == 201
    counts = api.stored_counts()[:2]
    assert api.push(visit_for("enc-a")).status_code == 200
    assert api.stored_counts()[:2] == counts
    assert api.push(visit_for("enc-a", minutes=45)).status_code == 201
    assert api.client.get("/fhir/Procedure/proc-enc-a").headers["etag"] == 'W/"2"'
    assert api.client.get("/fhir/Patient/pat-1").headers["etag"] == 'W/"1"'


def test_a_visit_without_ids_gets_ids_and_resolvable_references(api: Api) -> None:
    transaction = bb.urn_transaction(e["resource"] for e in visit_for("enc-a")["entry"])
    collection = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": e["fullUrl"], "resource": e["resource"]} for e in transaction["entry"]],
    }
    response = api.push(collection)
    assert response.status_code == 201, response.text
    made = [r for r in entries(response.json()) if r["resourceType"] in ("Claim", "Provenance")]
    assert all(not ref.startswith("urn:") for r in made for ref in references(r)), made
    assert_all_resolve(api, made)


def test_include_follows_the_stored_references(api: Api) -> None:
    api.push(visit_for("enc-a", dvt=True))
    bundle = search(api, "Claim", _include=["Claim:patient", "Claim:encounter", "Claim:provider"])
    included = {(e["resource"]["resourceType"], e["search"]["mode"]) for e in bundle["entry"]}
    assert included == {
        ("Claim", "match"),
        ("Patient", "include"),
        ("Encounter", "include"),
        ("Organization", "include"),
    }
    issues = search(api, "DetectedIssue", _include="DetectedIssue:implicated")
    kinds = {e["resource"]["resourceType"] for e in issues["entry"] if e["search"]["mode"] == "include"}
    assert {"Condition", "Procedure"} <= kinds
    implicated = search(api, "Condition", _id="dx-dvt", _revinclude="DetectedIssue:implicated")
    assert {e["resource"]["resourceType"] for e in implicated["entry"]} == {"Condition", "DetectedIssue"}
    assert search(api, "Encounter", patient="pat-1")["total"] == 1
    assert search(api, "Patient", _id="pat-1")["total"] == 1
