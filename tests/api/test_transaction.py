"""``POST /fhir`` with transaction and batch Bundles (issue 4): response entries in request order,
stored inputs with rewritten references, the Claims made, retries, all-or-nothing transactions and
per-entry batch outcomes."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import FHIR_JSON, Api, assert_outcome, entries, visit_for
from tests.conftest import validate_fhir, write_json

POSTED = ("Encounter", "Procedure")  # sent as POST with urn:uuid fullUrls; the rest as PUT Type/id


def urn(name: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, name)}"


def transaction(enc_id: str = "enc-1", minutes: int = 30, kind: str = "transaction") -> dict[str, Any]:
    """A visit as an EHR posts it: existing resources PUT with ids, the new Encounter and Procedure
    POSTed without ids, the Procedure naming the Encounter by its urn:uuid fullUrl."""
    document = visit_for(enc_id, minutes)
    encounter_url, procedure_url = urn(f"{enc_id}/encounter"), urn(f"{enc_id}/procedure")
    out = []
    for entry in document["entry"]:
        resource = entry["resource"]
        rtype = resource["resourceType"]
        if rtype in POSTED:
            body = {k: v for k, v in resource.items() if k != "id"}
            if rtype == "Procedure":
                body["encounter"] = {"reference": encounter_url}
            url = encounter_url if rtype == "Encounter" else procedure_url
            out.append({"fullUrl": url, "resource": body, "request": {"method": "POST", "url": rtype}})
        else:
            out.append(
                {
                    "fullUrl": entry["fullUrl"],
                    "resource": resource,
                    "request": {"method": "PUT", "url": f"{rtype}/{resource['id']}"},
                }
            )
    return {"resourceType": "Bundle", "type": kind, "entry": out}


def post(api: Api, document: dict[str, Any]) -> Any:
    return api.post("/fhir", document)


def responses(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["response"] for e in bundle["entry"]]


def location_of(response: dict[str, Any]) -> tuple[str, str, str]:
    """``Type/id/_history/vid`` as its parts."""
    rtype, rid, history, vid = response["location"].split("/")
    assert history == "_history"
    return rtype, rid, vid


def test_transaction_stores_the_visit_and_claims_it(api: Api, tmp_path: Path) -> None:
    document = transaction()
    response = post(api, document)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "transaction-response"
    answers = responses(bundle)
    assert len(answers) == len(document["entry"])
    for sent, answer in zip(document["entry"], answers, strict=True):
        rtype, rid, vid = location_of(answer)
        assert rtype == sent["resource"]["resourceType"], "entries answer in request order"
        assert answer["status"].startswith("201"), answer
        assert vid == "1"
        assert answer["etag"] == 'W/"1"'
        assert answer["lastModified"]
        if sent["request"]["method"] == "PUT":
            assert rid == sent["resource"]["id"]
        read = api.client.get(f"/fhir/{rtype}/{rid}")
        assert read.status_code == 200, f"stored input {rtype}/{rid} is not readable"
        assert read.headers["etag"] == 'W/"1"'
        assert read.json()["id"] == rid
    by_type = {location_of(a)[0]: location_of(a)[1] for a in answers}
    encounter_id, procedure_id = by_type["Encounter"], by_type["Procedure"]
    # urn:uuid references now name the stored resources
    procedure = api.client.get(f"/fhir/Procedure/{procedure_id}").json()
    assert procedure["encounter"] == {"reference": f"Encounter/{encounter_id}"}
    assert "urn:uuid" not in str(procedure)
    encounter_answer = next(a for a in answers if location_of(a)[0] == "Encounter")
    assert encounter_answer["outcome"]["resourceType"] == "OperationOutcome"
    # a Claim was made for the Encounter
    claims = api.client.get("/fhir/Claim", params={"encounter": f"Encounter/{encounter_id}"}).json()
    assert claims["total"] == 1
    [claim] = entries(claims, "Claim")
    assert claim["meta"]["versionId"] == "1"
    assert claim["patient"] == {"reference": "Patient/pat-1"}
    # inputs are searchable too
    found = api.client.get("/fhir/Procedure", params={"encounter": f"Encounter/{encounter_id}"}).json()
    assert [r["id"] for r in entries(found)] == [procedure_id]
    assert api.store.submission_count() == 1
    assert api.rows("submissions")[0]["operation"] == "transaction"
    validate_fhir([write_json(tmp_path / "response.json", bundle), write_json(tmp_path / "claim.json", claim)])


def test_retrying_a_transaction_stores_nothing_new(api: Api) -> None:
    first = post(api, transaction())
    assert first.status_code == 200
    counts = api.count("resource_current"), api.count("resource_history")
    second = post(api, transaction())
    assert second.status_code == 200, second.text
    before, after = responses(first.json()), responses(second.json())
    assert [a["location"] for a in after] == [b["location"] for b in before], "same ids, same versions"
    assert all(a["status"].startswith("200") for a in after), after
    assert (api.count("resource_current"), api.count("resource_history")) == counts
    claims = api.client.get("/fhir/Claim").json()
    assert claims["total"] == 1
    [claim] = entries(claims, "Claim")
    assert len(entries(api.client.get(f"/fhir/Claim/{claim['id']}/_history").json())) == 1


def test_a_corrected_transaction_makes_new_versions(api: Api) -> None:
    post(api, transaction(minutes=30))
    response = post(api, transaction(minutes=45))
    assert response.status_code == 200, response.text
    answers = {location_of(a)[0]: a for a in responses(response.json())}
    assert location_of(answers["Procedure"])[2] == "2"
    assert answers["Procedure"]["etag"] == 'W/"2"'
    assert answers["Procedure"]["status"].startswith("200")
    assert location_of(answers["Patient"])[2] == "1", "unchanged inputs keep their version"
    [claim] = entries(api.client.get("/fhir/Claim").json(), "Claim")
    assert claim["meta"]["versionId"] == "2"
    assert claim["item"][0]["quantity"]["value"] == 3


def test_transaction_and_operation_make_the_same_claim(api: Api) -> None:
    """The Claim id comes from the Encounter's identifier, so both entry points converge."""
    post(api, transaction())
    pushed = api.push(visit_for("enc-1"))
    assert pushed.status_code in (200, 201), pushed.text
    assert api.client.get("/fhir/Claim").json()["total"] == 1


def test_two_encounters_in_one_transaction(api: Api) -> None:
    one, two = transaction("enc-1"), transaction("enc-2")
    shared = {e["request"]["url"] for e in one["entry"] if e["request"]["method"] == "PUT"}
    extra = [e for e in two["entry"] if e["request"]["method"] == "POST" or e["request"]["url"] not in shared]
    document = {"resourceType": "Bundle", "type": "transaction", "entry": one["entry"] + extra}
    response = post(api, document)
    assert response.status_code == 200, response.text
    # two visits of one patient with one billing provider on one date make the day's one Claim (issue 12)
    found = api.client.get("/fhir/Claim").json()
    assert found["total"] == 1
    visits = {e["reference"] for item in found["entry"][0]["resource"]["item"] for e in item["encounter"]}
    assert len(visits) == 2


INVALID_ENTRIES = {
    "bad-code": lambda entry: entry["resource"].__setitem__("status", "bogus"),
    "bad-date": lambda entry: entry["resource"]["performedPeriod"].__setitem__("start", "2025-02-30T09:00:00Z"),
    "delete": lambda entry: entry["request"].__setitem__("method", "DELETE"),
    "put-url-mismatch": lambda entry: entry.__setitem__("request", {"method": "PUT", "url": "Patient/other"}),
    "no-resource": lambda entry: entry.pop("resource"),
}


@pytest.mark.parametrize("breakage", sorted(INVALID_ENTRIES))
def test_an_invalid_entry_fails_the_whole_transaction(api: Api, breakage: str) -> None:
    document = transaction()
    procedure = next(e for e in document["entry"] if e["request"]["url"] == "Procedure")
    INVALID_ENTRIES[breakage](procedure)
    outcome = assert_outcome(post(api, document), 400)
    assert outcome["issue"][0]["severity"] == "error"
    api.assert_alive()
    assert api.stored_counts()[:2] == (0, 0), "a failed transaction stores nothing"
    assert api.client.get("/fhir/Patient/pat-1").status_code == 404


def test_an_unsupported_resource_type_fails_the_transaction(api: Api) -> None:
    document = transaction()
    document["entry"].append(
        {
            "fullUrl": urn("basic"),
            "resource": {"resourceType": "Basic", "code": {"text": "note"}},
            "request": {"method": "POST", "url": "Basic"},
        }
    )
    assert_outcome(post(api, document), 400)
    assert api.count("resource_current") == 0


def test_a_transaction_whose_visit_cannot_be_claimed_stores_nothing(api: Api) -> None:
    """Each entry is valid on its own, but the Procedure names an Encounter that is not there."""
    document = transaction()
    procedure = next(e for e in document["entry"] if e["request"]["url"] == "Procedure")
    procedure["resource"]["encounter"] = {"reference": "Encounter/not-in-the-bundle"}
    assert_outcome(post(api, document), 400)
    assert api.count("resource_current") == 0


def test_a_batch_answers_each_entry(api: Api) -> None:
    document = transaction(kind="batch")
    broken = {
        "fullUrl": urn("bad-observation"),
        "resource": {"resourceType": "Observation", "status": "bogus", "code": {"text": "pain"}},
        "request": {"method": "POST", "url": "Observation"},
    }
    document["entry"].insert(2, broken)
    response = post(api, document)
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "batch-response"
    answers = responses(bundle)
    assert len(answers) == len(document["entry"])
    bad = answers[2]
    assert bad["status"].startswith("400"), bad
    assert bad["outcome"]["resourceType"] == "OperationOutcome"
    assert "location" not in bad
    for sent, answer in zip(document["entry"], answers, strict=True):
        if sent is broken:
            continue
        rtype, rid, _ = location_of(answer)
        assert rtype == sent["resource"]["resourceType"]
        assert answer["status"].startswith("201"), answer
        assert api.client.get(f"/fhir/{rtype}/{rid}").status_code == 200
    assert api.client.get("/fhir/Observation").json()["total"] == 0
    assert api.client.get("/fhir/Claim").json()["total"] == 1, "the Claim is made from the entries stored"
    # the Claim outcome's paths name the request's entries, not those of the stored subset
    encounter_index = next(i for i, e in enumerate(document["entry"]) if e["request"]["url"] == "Encounter")
    outcome = answers[encounter_index]["outcome"]
    [summary] = [i for i in outcome["issue"] if i["details"]["coding"][0]["code"] == "encounter-outcome"]
    assert summary["expression"] == [f"Bundle.entry[{encounter_index}].resource"]


def test_a_batch_reads_get_entries_and_refuses_delete(api: Api) -> None:
    document = transaction(kind="batch")
    document["entry"].append({"request": {"method": "GET", "url": "Patient/pat-1"}})
    document["entry"].append(
        {
            "fullUrl": urn("deleted"),
            "resource": {"resourceType": "Patient", "active": True},
            "request": {"method": "DELETE", "url": "Patient/pat-9"},
        }
    )
    response = post(api, document)
    assert response.status_code == 200, response.text
    answers = responses(response.json())
    assert answers[-2]["status"] == "200 OK", answers[-2]  # a GET entry is read after the writes
    assert response.json()["entry"][-2]["resource"]["id"] == "pat-1"
    assert answers[-1]["status"][:3] == "405", answers[-1]
    assert api.client.get("/fhir/Patient/pat-9").status_code == 404
    assert api.client.get("/fhir/Claim").json()["total"] == 1


@pytest.mark.parametrize("kind", ["collection", "searchset", "document", None])
def test_other_bundle_types_are_refused(api: Api, kind: str | None) -> None:
    document = transaction()
    if kind is None:
        del document["type"]
    else:
        document["type"] = kind
    assert_outcome(post(api, document), 400)
    assert api.count("resource_current") == 0


def test_entry_must_be_a_list(api: Api) -> None:
    assert_outcome(post(api, {"resourceType": "Bundle", "type": "batch", "entry": {"x": 1}}), 400)
    response = post(api, {"resourceType": "Bundle", "type": "batch", "entry": ["x", 1, None]})
    assert response.status_code == 200, response.text
    assert [a["status"][:3] for a in responses(response.json())] == ["400"] * 3
    assert_outcome(post(api, {"resourceType": "Bundle", "type": "transaction", "entry": ["x"]}), 400)
    assert api.count("resource_current") == 0
    api.assert_alive()


def test_a_put_url_with_an_invalid_id_is_refused(api: Api) -> None:
    """An id taken from request.url must be a FHIR id (a NUL in it once reached PostgreSQL)."""
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": {"resourceType": "Patient"}, "request": {"method": "PUT", "url": "Patient/a\x00b"}}],
    }
    response = api.post("/fhir", bundle)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
    assert api.count("resource_current") == 0
