"""FHIR R4 search as the spec means it (issue 11): parameter forms, OR and AND, dates at every
precision and prefix, strict and lenient handling, _sort, _include / _revinclude, _summary,
_elements, _total, POST _search, stable pages, and a CapabilityStatement whose every entry works."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.api.conftest import Api, assert_outcome, entries, visit_for
from tests.api.test_rest import create, ids, local, search
from tests.conftest import validate_fhir, write_json

STATUS_SYSTEM = "http://hl7.org/fhir/fm-status"


def status_of(api: Api, params: Any, **kwargs: Any) -> int:
    return int(api.client.get("/fhir/Claim", params=params, **kwargs).status_code)


def test_reference_parameters_take_id_type_and_id_and_our_absolute_url(api: Api) -> None:
    a = create(api, "enc-a")
    b = create(api, "enc-b", patient="pat-2")
    base = str(api.client.base_url).rstrip("/") + "/fhir"
    for value in ("pat-1", "Patient/pat-1", f"{base}/Patient/pat-1", "Patient/pat-1/_history/3"):
        assert ids(search(api, "Claim", patient=value)) == {a["id"]}, value
    assert ids(search(api, "Claim", **{"patient:Patient": "pat-2"})) == {b["id"]}
    assert ids(search(api, "Claim", patient="pat-1,pat-2")) == {a["id"], b["id"]}
    assert ids(search(api, "Claim", patient="http://elsewhere.example.org/fhir/Patient/pat-1")) == set()
    assert ids(search(api, "Claim", encounter="enc-b")) == {b["id"]}
    assert ids(search(api, "Claim", provider="Organization/org-1")) == {a["id"], b["id"]}
    assert_outcome(api.client.get("/fhir/Claim", params={"patient:Encounter": "pat-1"}), 400)


def test_token_parameters_take_every_form_and_comma_is_or(api: Api) -> None:
    a = create(api, "enc-a")
    c = create(api, "enc-c", day="2025-01-10")  # another day: same-day visits make one Claim (issue 12)
    assert api.push(visit_for("enc-c", status="cancelled", day="2025-01-10")).status_code == 201
    everything = {a["id"], c["id"]}
    assert ids(search(api, "Claim", status="active,cancelled")) == everything
    assert ids(search(api, "Claim", status="cancelled")) == {c["id"]}
    assert ids(search(api, "Claim", status=f"{STATUS_SYSTEM}|cancelled")) == {c["id"]}
    assert ids(search(api, "Claim", status=f"{STATUS_SYSTEM}|")) == everything
    assert ids(search(api, "Claim", status="|cancelled")) == set(), "status has a system: |code asks for none"
    assert ids(search(api, "Claim", status="http://other.example.org|cancelled")) == set()
    assert ids(search(api, "Claim", **{"status:not": "cancelled"})) == {a["id"]}
    assert ids(search(api, "Claim", _id=f"{a['id']},{c['id']}")) == everything
    assert ids(search(api, "Claim", use="claim")) == everything
    identifier = a["identifier"][0] if a.get("identifier") else None
    if identifier:
        assert a["id"] in ids(search(api, "Claim", identifier=f"{identifier['system']}|{identifier['value']}"))


def test_a_repeated_parameter_is_and(api: Api) -> None:
    a = create(api, "enc-a")
    create(api, "enc-b", patient="pat-2")
    both = api.client.get("/fhir/Claim", params=[("patient", "pat-1"), ("patient", "pat-2")])
    assert both.status_code == 200
    assert ids(both.json()) == set()
    same = api.client.get("/fhir/Claim", params=[("patient", "pat-1"), ("status", "active,draft")])
    assert ids(same.json()) == {a["id"]}


def test_dates_at_every_precision_and_prefix(api: Api) -> None:
    claim = create(api, "enc-a")
    when = datetime.fromisoformat(claim["meta"]["lastUpdated"])
    year, month, day = f"{when:%Y}", f"{when:%Y-%m}", f"{when:%Y-%m-%d}"
    minute = f"{when:%Y-%m-%dT%H:%M}Z"
    hit, miss = {claim["id"]}, set()

    def found(value: str, name: str = "_lastUpdated") -> set[str]:
        return ids(search(api, "Claim", **{name: value}))

    for precise in (year, month, day, minute):
        assert found(precise) == hit, precise
        assert found(f"eq{precise}") == hit
        assert found(f"ne{precise}") == miss
        assert found(f"ge{precise}") == hit and found(f"le{precise}") == hit
        assert found(f"gt{precise}") == miss and found(f"lt{precise}") == miss
        assert found(f"sa{precise}") == miss and found(f"eb{precise}") == miss
        assert found(f"ap{precise}") == hit
    assert found(f"gt{int(year) - 1}") == hit and found(f"sa{int(year) - 1}") == hit
    assert found(f"lt{int(year) + 1}") == hit and found(f"eb{int(year) + 1}") == hit
    assert found(f"ap{int(year) - 30}") == miss
    assert found(f"gt{(when - timedelta(seconds=2)).isoformat()}") == hit
    assert found(f"lt{(when - timedelta(seconds=2)).isoformat()}") == miss
    # Claim.created is a date too (the service's decision clock, not the store's)
    created = claim["created"][:4]
    assert found(created, "created") == hit and found(f"lt{int(created) - 1}", "created") == miss
    for bad in ("yesterday", "2025-13", "gt2025-01-01T25:00:00Z", "xx2025", "2025-02-30"):
        body = assert_outcome(api.client.get("/fhir/Claim", params={"_lastUpdated": bad}), 400)
        assert "_lastUpdated" in body["issue"][0]["details"]["text"]


UNSUPPORTED = [
    ("bogus", "1"),
    ("subject", "Patient/pat-1"),
    ("status:exact", "active"),
    ("patient.identifier", "x"),
    ("patient:below", "pat-1"),
    ("_summary", "text"),
    ("_sort", "status"),
    ("_sort", "_lastUpdated,created"),
    ("_include", "Claim:bogus"),
    ("_include", "DetectedIssue:patient"),
    ("_revinclude", "Provenance:bogus"),
    ("_elements", "nonsense"),
    ("_total", "maybe"),
    ("_count", "many"),
    ("_cursor", "not-a-cursor"),
    ("_offset", "10"),
    ("created", "bogus"),
    ("_lastUpdated:missing", "maybe"),
]


@pytest.mark.parametrize(("name", "value"), UNSUPPORTED)
def test_what_is_not_supported_is_400_naming_it_unless_lenient(api: Api, name: str, value: str) -> None:
    create(api, "enc-a")
    body = assert_outcome(api.client.get("/fhir/Claim", params={name: value}), 400)
    assert name.split(".")[0] in body["issue"][0]["details"]["text"], body
    lenient = api.client.get("/fhir/Claim", params={name: value}, headers={"Prefer": "handling=lenient"})
    assert lenient.status_code == 200
    bundle = lenient.json()
    [outcome] = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert name.split(".")[0] in outcome["resource"]["issue"][0]["details"]["text"]
    self_link = next(link["url"] for link in bundle["link"] if link["relation"] == "self")
    assert name not in dict(parse_qsl(urlsplit(self_link).query)), self_link
    assert len(entries(bundle, "Claim")) == 1, "an ignored criterion does not filter"


def test_parameters_of_one_type_are_not_applied_to_another(api: Api) -> None:
    create(api, "enc-a")
    assert_outcome(api.client.get("/fhir/Patient", params={"status": "active"}), 400)
    assert_outcome(api.client.get("/fhir/Patient", params={"encounter": "enc-a"}), 400)
    assert_outcome(api.client.get("/fhir/Practitioner", params={"patient": "pat-1"}), 400)


def test_sort(api: Api) -> None:
    made = [create(api, f"enc-{n}", day=f"2025-01-{8 + n:02d}")["id"] for n in range(3)]  # one Claim per day
    assert [r["id"] for r in entries(search(api, "Claim", _sort="_lastUpdated"))] == made
    assert [r["id"] for r in entries(search(api, "Claim", _sort="-_lastUpdated"))] == made[::-1]
    assert [r["id"] for r in entries(search(api, "Claim", _sort="_id"))] == sorted(made)
    assert [r["id"] for r in entries(search(api, "Claim", _sort="-_id"))] == sorted(made, reverse=True)
    by_created = [r["created"] for r in entries(search(api, "Claim", _sort="-created"))]
    assert by_created == sorted(by_created, reverse=True)


def test_summary_elements_and_total(api: Api, tmp_path: Path) -> None:
    claim = create(api, "enc-a")
    create(api, "enc-b", day="2025-01-10")  # (on the same day it would join enc-a's Claim)
    counted = search(api, "Claim", _summary="count")
    assert counted["total"] == 2 and "entry" not in counted
    summary = entries(search(api, "Claim", _summary="true", _id=claim["id"]))[0]
    assert "item" not in summary and summary["status"] == claim["status"] and summary["patient"]
    assert {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"} in summary[
        "meta"
    ]["tag"]
    [chosen] = entries(search(api, "Claim", _elements="total", _id=claim["id"]))
    assert chosen["total"] == claim["total"] and "item" not in chosen and "careTeam" not in chosen
    assert chosen["patient"], "mandatory elements stay"
    assert "total" not in search(api, "Claim", _total="none")
    assert search(api, "Claim", _total="accurate")["total"] == 2
    validate_fhir([write_json(tmp_path / "summary.json", search(api, "Claim", _summary="true"))])


def test_empty_results_have_no_entry(api: Api, tmp_path: Path) -> None:
    create(api, "enc-a")
    bodies = {
        "none": search(api, "Claim", patient="nobody"),
        "count0": search(api, "Claim", _count=0),
        "empty-type": search(api, "Location"),
    }
    for body in bodies.values():
        assert "entry" not in body
    validate_fhir([write_json(tmp_path / f"{name}.json", body) for name, body in bodies.items()])


def test_post_search_takes_a_form_body(api: Api) -> None:
    a = create(api, "enc-a")
    create(api, "enc-b", patient="pat-2")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    response = api.client.post("/fhir/Claim/_search", content="patient=pat-1&_count=5", headers=form)
    assert response.status_code == 200, response.text
    assert ids(response.json()) == {a["id"]}
    assert_outcome(api.client.post("/fhir/Claim/_search", content="bogus=1", headers=form), 400)
    assert_outcome(
        api.client.post("/fhir/Claim/_search", content="{}", headers={"Content-Type": "application/json"}), 415
    )


def _walk(api: Api, first: dict[str, Any], between: Any = None) -> list[str]:
    seen = [r["id"] for r in entries(first, "Claim")]
    page = first
    if between is not None:
        between()
    for _ in range(20):
        next_url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
        if next_url is None:
            return seen
        response = api.client.get(local(api, next_url))
        assert response.status_code == 200, response.text
        page = response.json()
        seen += [r["id"] for r in entries(page, "Claim")]
    raise AssertionError("paging does not end")


@pytest.mark.parametrize("sort", ["_id", "_lastUpdated", "-_lastUpdated", "created"])
def test_pages_neither_repeat_nor_skip_when_resources_change(api: Api, sort: str) -> None:
    made = {create(api, f"enc-{n}", day=f"2025-01-{8 + n:02d}")["id"]: n for n in range(6)}  # one Claim per day
    first = search(api, "Claim", _count=2, _sort=sort)
    assert first["total"] == 6
    on_first = [r["id"] for r in entries(first)]

    def change() -> None:
        for claim_id in (on_first[0], next(i for i in made if i not in on_first)):
            n = made[claim_id]
            assert api.push(visit_for(f"enc-{n}", minutes=50, day=f"2025-01-{8 + n:02d}")).status_code == 201
        create(api, "enc-new", day="2025-01-07")

    seen = _walk(api, first, change)
    assert len(seen) == len(set(seen)), f"a Claim repeats: {seen}"
    assert set(seen) == set(made), "every Claim of the search's snapshot is seen once"


def test_include_and_revinclude(api: Api) -> None:
    claim = create(api, "enc-a")
    bundle = search(api, "Claim", _revinclude="Provenance:target")
    [provenance] = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Provenance"]
    assert provenance["search"]["mode"] == "include"
    assert provenance["resource"]["target"] == [{"reference": f"Claim/{claim['id']}/_history/1"}]
    back = search(api, "Provenance", target=f"Claim/{claim['id']}", _include="Provenance:target")
    assert {e["resource"]["resourceType"]: e["search"]["mode"] for e in back["entry"]} == {
        "Provenance": "match",
        "Claim": "include",
    }


def _sample(kind: str) -> str:
    return {"date": "ge2000-01-01", "reference": "Patient/pat-1", "token": "x"}[kind]


def test_every_capability_statement_entry_works(api: Api) -> None:
    """Each type's interactions, search parameters, includes and revincludes answer 200 with
    nothing ignored; operations are tried by their own tests (test_operation, test_rest)."""
    create(api, "enc-1")
    statement = api.client.get("/fhir/metadata").json()
    [rest] = statement["rest"]
    assert "operation" not in rest, "$from-encounter is type-level only (its OperationDefinition says system=false)"
    for resource in rest["resource"]:
        rtype = resource["type"]
        codes = {i["code"] for i in resource.get("interaction", [])}
        if "search-type" in codes:
            search(api, rtype)
            for param in resource["searchParam"]:
                bundle = search(api, rtype, **{param["name"]: _sample(param["type"])})
                assert all(e["search"]["mode"] != "outcome" for e in bundle.get("entry", [])), (rtype, param)
            for name in ("searchInclude", "searchRevInclude"):
                for value in resource.get(name, []):
                    key = "_include" if name == "searchInclude" else "_revinclude"
                    search(api, rtype, **{key: value})
        if "history-type" in codes:
            assert api.client.get(f"/fhir/{rtype}/_history").json()["type"] == "history"
        for code in codes & {"read", "vread", "history-instance"}:
            assert_outcome(
                api.client.get(f"/fhir/{rtype}/no-such-id" + ("/_history" if "history" in code else "")), 404
            )
    claim = entries(search(api, "Claim"))[0]
    for path in (f"Claim/{claim['id']}", f"Claim/{claim['id']}/_history/1", f"Claim/{claim['id']}/_history"):
        assert api.client.get(f"/fhir/{path}").status_code == 200
