"""The REST surface (issue 4): metadata, reads, history, searches with paging, content negotiation,
errors as OperationOutcomes, bad input that must store nothing, ``$validate``, health checks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest

from adapter.rules.catalog import Rules
from adapter.service.capability import VALIDATE_TYPES
from tests import bundle_builder as bb
from tests.api.conftest import (
    FHIR_JSON,
    OPERATION,
    Api,
    assert_outcome,
    entries,
    find_resource,
    make_api,
    visit_for,
)
from tests.conftest import validate_fhir, write_json

OPERATION_URL = "https://theraclaim.org/fhir/OperationDefinition/claim-from-encounter"


def create(api: Api, enc_id: str, **kwargs: Any) -> dict[str, Any]:
    """Push a visit and return the Claim made."""
    response = api.push(visit_for(enc_id, **kwargs))
    assert response.status_code == 201, response.text
    [claim] = entries(response.json(), "Claim")
    return claim


def search(api: Api, resource_type: str, **params: Any) -> dict[str, Any]:
    response = api.client.get(f"/fhir/{resource_type}", params=params)
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "searchset"
    return dict(bundle)


def ids(bundle: dict[str, Any], resource_type: str = "Claim") -> set[str]:
    return {r["id"] for r in entries(bundle, resource_type)}


def local(api: Api, url: str) -> str:
    """A link of the server as a path the test client can follow."""
    base = str(api.client.base_url).rstrip("/")
    assert url.startswith(base), url
    return url.removeprefix(base)


# --- metadata -------------------------------------------------------------------------------------


def test_capability_statement(api: Api, tmp_path: Path) -> None:
    response = api.client.get("/fhir/metadata")  # no Authorization header: served without authentication
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(FHIR_JSON)
    statement = response.json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["kind"] == "instance"
    assert not any("xml" in f for f in statement["format"]), "XML is answered with 406, so it is not announced"
    assert any(f in ("json", FHIR_JSON) for f in statement["format"])
    [rest] = statement["rest"]
    assert rest["mode"] == "server"
    assert {"transaction", "batch"} <= {i["code"] for i in rest["interaction"]}
    by_type = {r["type"]: r for r in rest["resource"]}
    claim = by_type["Claim"]
    operations = {o["name"]: o["definition"] for o in claim["operation"]}
    assert operations["from-encounter"] == OPERATION_URL
    assert {p["name"] for p in claim["searchParam"]} >= {"encounter", "patient", "status", "_lastUpdated"}
    assert {p["name"] for p in by_type["DetectedIssue"]["searchParam"]} >= {"patient"}
    for resource_type in VALIDATE_TYPES:
        assert "validate" in {o["name"] for o in by_type[resource_type].get("operation", [])}, resource_type
    definition = api.client.get("/fhir/OperationDefinition/claim-from-encounter")
    assert definition.status_code == 200
    operation = definition.json()
    assert operation["resourceType"] == "OperationDefinition"
    assert operation["url"] == OPERATION_URL
    assert operation["code"] == "from-encounter"
    assert operation["resource"] == ["Claim"]
    assert {p["name"] for p in operation["parameter"] if p["use"] == "in"} == {"bundle", "payer"}
    validate_fhir([write_json(tmp_path / "metadata.json", statement), write_json(tmp_path / "opdef.json", operation)])


# --- read, vread, history -------------------------------------------------------------------------


def test_read_vread_and_history(api: Api) -> None:
    claim = create(api, "enc-1", minutes=30)
    assert api.push(visit_for("enc-1", minutes=45)).status_code == 201
    read = api.client.get(f"/fhir/Claim/{claim['id']}")
    assert read.status_code == 200
    assert read.headers["etag"] == 'W/"2"'
    assert read.headers["last-modified"].endswith("GMT")
    assert read.json()["meta"]["versionId"] == "2"
    first = api.client.get(f"/fhir/Claim/{claim['id']}/_history/1")
    assert first.status_code == 200
    assert first.json() == claim
    history = api.client.get(f"/fhir/Claim/{claim['id']}/_history").json()
    assert history["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2", "1"]
    assert [e["response"]["etag"] for e in history["entry"]] == ['W/"2"', 'W/"1"']
    assert_outcome(api.client.get(f"/fhir/Claim/{claim['id']}/_history/9"), 404)
    assert_outcome(api.client.get(f"/fhir/Claim/{claim['id']}/_history/x"), 404)
    assert_outcome(api.client.get("/fhir/Claim/no-such-claim/_history"), 404)
    assert_outcome(api.client.get("/fhir/Claim/no-such-claim/_history/1"), 404)


# --- content negotiation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "accept",
    [
        FHIR_JSON,
        "application/json",
        "*/*",
        f"{FHIR_JSON}; fhirVersion=4.0",
        "application/fhir+xml;q=0.9, application/fhir+json",
    ],
)
def test_accepted_formats(api: Api, accept: str) -> None:
    response = api.client.get("/fhir/metadata", headers={"Accept": accept})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    assert response.json()["resourceType"] == "CapabilityStatement"


@pytest.mark.parametrize("value", ["json", FHIR_JSON, "application/json"])
def test_format_parameter_json(api: Api, value: str) -> None:
    response = api.client.get("/fhir/metadata", params={"_format": value}, headers={"Accept": "text/html"})
    assert response.status_code == 200, "_format wins over Accept"
    assert response.json()["resourceType"] == "CapabilityStatement"


@pytest.mark.parametrize("typed", ["application/fhir+json", "application/json+fhir"])
def test_format_typed_into_a_url_unencoded(api: Api, typed: str) -> None:
    """An unencoded "+" in a query string reads as a space; the media type is still recognised."""
    response = api.client.get(f"/fhir/metadata?_format={typed}", headers={"Accept": "text/html"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("headers", "params"),
    [
        ({"Accept": "application/fhir+xml"}, {}),
        ({"Accept": "application/xml"}, {}),
        ({"Accept": "text/html"}, {}),
        ({}, {"_format": "xml"}),
        ({}, {"_format": "application/fhir+xml"}),
    ],
)
def test_unsupported_formats_are_406(api: Api, headers: dict[str, str], params: dict[str, str]) -> None:
    assert_outcome(api.client.get("/fhir/metadata", headers=headers, params=params), 406)
    response = api.post(OPERATION, visit_for(), headers=headers, params=params)
    assert_outcome(response, 406)
    assert api.count("resource_current") == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/fhir+xml", None])
def test_unsupported_body_types_are_415(api: Api, content_type: str | None) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    body = json.dumps(visit_for()).encode()
    for path in (OPERATION, "/fhir", "/fhir/Bundle/$validate"):
        assert_outcome(api.client.post(path, content=body, headers=headers), 415)
    assert api.count("resource_current") == 0


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", FHIR_JSON])
def test_json_bodies_are_accepted(api: Api, content_type: str) -> None:
    response = api.client.post(
        OPERATION, content=json.dumps(visit_for()).encode(), headers={"Content-Type": content_type}
    )
    assert response.status_code == 201, response.text


# --- errors are OperationOutcomes -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nowhere", 404),
        ("GET", "/fhir/Claim/a/b/c/d", 404),
        ("GET", "/fhir/Claim/no-such-claim", 404),
        ("GET", "/fhir/Claim/" + "x" * 200, 404),
        ("GET", "/fhir/Claim/bad%20id", 404),
        ("GET", "/fhir/NoSuchType", 404),
        ("GET", "/fhir/NoSuchType/1", 404),
        ("GET", "/fhir/Patient/pat-1", 404),
        ("DELETE", "/fhir/metadata", 405),
        ("DELETE", "/fhir/Claim/x", 405),
        ("PUT", "/fhir/Claim/x", 405),
        ("POST", "/fhir/metadata", 405),
        ("GET", "/fhir/Claim/$from-encounter", (404, 405)),
        ("POST", "/fhir/Patient/$validate", 404),
    ],
)
def test_errors_are_operation_outcomes(api: Api, method: str, path: str, status: int | tuple[int, ...]) -> None:
    response = api.client.request(method, path, content=b"{}", headers={"Content-Type": FHIR_JSON})
    body = assert_outcome(response, status)
    assert body["issue"][0]["severity"] in ("error", "fatal")


def test_an_unexpected_failure_is_a_500_operation_outcome(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "Quixotewhistle 1937-11-29"

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(secret)

    monkeypatch.setattr(api.store, "history", broken)
    response = api.client.get("/fhir/Claim/_history")
    body = assert_outcome(response, 500)
    assert secret not in response.text, "the exception text may quote PHI and must not be answered"
    assert body["issue"][0]["code"] == "exception"
    api.assert_alive()


# --- bad input: right status, OperationOutcome, server up, nothing stored ---------------------------


@pytest.fixture
def small_api(database_url: str, rules: Rules) -> Iterator[Api]:
    with make_api(database_url, rules, max_bytes=2048) as made:
        yield made


@pytest.mark.parametrize("path", [OPERATION, "/fhir", "/fhir/Bundle/$validate"])
def test_a_body_over_the_limit_is_413(small_api: Api, path: str) -> None:
    body = json.dumps(visit_for()).encode()
    assert len(body) > small_api.settings.max_bytes
    assert_outcome(small_api.client.post(path, content=body, headers={"Content-Type": FHIR_JSON}), 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while reading
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    assert_outcome(small_api.client.post(path, content=chunks(), headers={"Content-Type": FHIR_JSON}), 413)
    small_api.assert_alive()
    assert small_api.stored_counts() == (0, 0, 0)
    small = json.dumps({"resourceType": "Parameters"}).encode()
    assert small_api.client.post(path, content=small, headers={"Content-Type": FHIR_JSON}).status_code < 500


def deep_json(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


def deep_array(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


BAD_BODIES = {
    "not-json": b"{this is not json",
    "empty": b"",
    "truncated": json.dumps(visit_for()).encode()[:-10],
    "nested-objects": deep_json(10_000),
    "nested-arrays": deep_array(10_000),
    "nested-resource": b'{"resourceType":"Bundle","type":"collection","entry":' + deep_array(10_000) + b"}",
    "nested-within-orjson-limit": deep_json(1000),
    "not-an-object": b"[1, 2, 3]",
    "a-string": b'"Bundle"',
    "invalid-utf8": b'{"resourceType":"Bundle","type":"\xff\xfe"}',
}


@pytest.mark.parametrize("name", sorted(BAD_BODIES))
def test_bad_bodies(api: Api, name: str) -> None:
    body = BAD_BODIES[name]
    for path in (OPERATION, "/fhir"):
        response = api.client.post(path, content=body, headers={"Content-Type": FHIR_JSON})
        outcome = assert_outcome(response, (400, 413, 422))
        assert outcome["issue"][0]["severity"] in ("error", "fatal")
    validated = api.client.post("/fhir/Bundle/$validate", content=body, headers={"Content-Type": FHIR_JSON})
    outcome = assert_outcome(validated, 200)
    assert any(issue["severity"] in ("error", "fatal") for issue in outcome["issue"])
    api.assert_alive()
    assert api.count("resource_current") == api.count("resource_history") == 0


def huge_bundle(n: int, kind: str) -> bytes:
    """``n`` entries without building ``n`` dicts: one entry's JSON repeated."""
    entry = {"resource": {"resourceType": "Patient", "active": True}}
    if kind in ("transaction", "batch"):
        entry["request"] = {"method": "POST", "url": "Patient"}
    one = json.dumps(entry).encode()
    return b'{"resourceType":"Bundle","type":"%s","entry":[' % kind.encode() + b",".join([one] * n) + b"]}"


@pytest.mark.parametrize(("path", "kind"), [(OPERATION, "collection"), ("/fhir", "transaction"), ("/fhir", "batch")])
def test_a_bundle_with_100000_entries_is_refused(api: Api, path: str, kind: str) -> None:
    body = huge_bundle(100_000, kind)
    assert len(body) < api.settings.max_bytes, "the size limit must not be what refuses it"
    response = api.client.post(path, content=body, headers={"Content-Type": FHIR_JSON})
    outcome = assert_outcome(response, (400, 413, 422))
    codes = [c["code"] for issue in outcome["issue"] for c in issue.get("details", {}).get("coding", [])]
    assert "too-many-entries" in codes, outcome
    api.assert_alive()
    assert api.count("resource_current") == api.count("resource_history") == 0


def test_a_batch_of_distinct_entries_over_the_limit_stores_nothing(database_url: str, rules: Rules) -> None:
    """Distinct entries (which would each be stored) over max_entries: refused before anything is written."""
    with make_api(database_url, rules, max_entries=50) as api:
        batch = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {
                    "fullUrl": f"urn:uuid:00000000-0000-0000-0000-{n:012d}",
                    "resource": {"resourceType": "Patient", "active": True},
                    "request": {"method": "POST", "url": "Patient"},
                }
                for n in range(51)
            ],
        }
        outcome = assert_outcome(api.post("/fhir", batch), (400, 413, 422))
        assert "too-many-entries" in json.dumps(outcome)
        assert api.count("resource_current") == 0


@pytest.mark.parametrize("path", [OPERATION, "/fhir"])
def test_wrong_resource_type_for_the_endpoint(api: Api, path: str) -> None:
    for document in (
        {"resourceType": "Patient", "id": "pat-1"},
        {"resourceType": "Bundle", "type": "searchset" if path == "/fhir" else "document-nope"},
        {"resourceType": "NotAType"},
        {"no": "resourceType"},
    ):
        assert_outcome(api.post(path, document), (400, 422))
    api.assert_alive()
    assert api.count("resource_current") == 0


def duplicate_full_urls(kind: str) -> dict[str, Any]:
    document = bb.bundle(*visit_entries(), bundle_type=kind)
    procedure = next(e for e in document["entry"] if e["resource"]["resourceType"] == "Procedure")
    twin = json.loads(json.dumps(procedure))
    twin["resource"]["id"] = "proc-twin"
    if "request" in twin:
        twin["request"]["url"] = "Procedure/proc-twin"
    document["entry"].append(twin)  # same fullUrl as the first Procedure
    return document


def visit_entries() -> list[dict[str, Any]]:
    return [e["resource"] for e in visit_for()["entry"]]


def unresolved_reference(kind: str) -> dict[str, Any]:
    document = bb.bundle(*visit_entries(), bundle_type=kind)
    procedure = next(e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == "Procedure")
    procedure["encounter"] = {"reference": "Encounter/enc-missing"}
    return document


def unresolved_urn() -> dict[str, Any]:
    document = bb.urn_transaction(visit_entries())
    procedure = next(e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == "Procedure")
    procedure["encounter"] = {"reference": "urn:uuid:5a1c0e1e-0000-4000-8000-000000000000"}
    return document


@pytest.mark.parametrize(
    ("path", "build"),
    [
        (OPERATION, lambda: duplicate_full_urls("collection")),
        ("/fhir", lambda: duplicate_full_urls("transaction")),
        (OPERATION, lambda: unresolved_reference("collection")),
        ("/fhir", lambda: unresolved_reference("transaction")),
        ("/fhir", unresolved_urn),
    ],
    ids=["dup-op", "dup-transaction", "unresolved-op", "unresolved-transaction", "unresolved-urn-transaction"],
)
def test_inconsistent_bundles_store_nothing(api: Api, path: str, build: Any) -> None:
    outcome = assert_outcome(api.post(path, build()), (400, 422))
    codes = {c["code"] for issue in outcome["issue"] for c in issue.get("details", {}).get("coding", [])}
    assert codes & {"duplicate-fullurl", "unresolved-reference"}, outcome
    api.assert_alive()
    assert api.count("resource_current") == api.count("resource_history") == 0
    assert search(api, "Claim")["total"] == 0


# --- $validate ------------------------------------------------------------------------------------


def valid_claim(api: Api) -> dict[str, Any]:
    claim = create(api, "enc-1")
    return {k: v for k, v in claim.items() if k != "meta"}


VALID = {
    "Bundle": lambda api: visit_for(),
    "Claim": valid_claim,
    "Encounter": lambda api: find_resource(visit_for(), "Encounter"),
    "Procedure": lambda api: find_resource(visit_for(), "Procedure"),
    "Condition": lambda api: find_resource(visit_for(), "Condition"),
}
INVALID = {
    "Bundle": {"resourceType": "Bundle", "type": "nonsense", "entry": [{"resource": {"resourceType": "Encounter"}}]},
    "Claim": {"resourceType": "Claim", "status": "active"},
    "Encounter": {"resourceType": "Encounter", "status": "bogus"},
    "Procedure": {"resourceType": "Procedure", "status": "completed", "performedDateTime": "2025-02-30"},
    "Condition": {"resourceType": "Condition", "clinicalStatus": {"coding": [{"code": "sort-of"}]}},
}


@pytest.mark.parametrize("resource_type", VALIDATE_TYPES)
def test_validate(api: Api, resource_type: str) -> None:
    path = f"/fhir/{resource_type}/$validate"
    document = VALID[resource_type](api)
    counts = api.stored_counts()
    valid = assert_outcome(api.post(path, document), 200)
    assert all(issue["severity"] in ("information", "warning") for issue in valid["issue"]), valid
    wrapped = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": document}]}
    assert assert_outcome(api.post(path, wrapped), 200) == valid
    invalid = assert_outcome(api.post(path, INVALID[resource_type]), 200)
    assert any(issue["severity"] in ("error", "fatal") for issue in invalid["issue"]), invalid
    wrong_type = {"resourceType": "Patient"} if resource_type != "Patient" else {"resourceType": "Claim"}
    wrong = assert_outcome(api.post(path, wrong_type), 200)
    assert any(issue["severity"] in ("error", "fatal") for issue in wrong["issue"])
    assert api.stored_counts() == counts, "$validate stores nothing"


def test_validate_lists_every_problem(api: Api) -> None:
    encounter = {"resourceType": "Encounter", "status": "bogus", "period": {"start": "2025-02-30"}}
    outcome = assert_outcome(api.post("/fhir/Encounter/$validate", encounter), 200)
    assert len([i for i in outcome["issue"] if i["severity"] == "error"]) >= 2, outcome


# --- health ---------------------------------------------------------------------------------------


def test_healthz_and_readyz(api: Api) -> None:
    health = api.client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    ready = api.client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert body["database"] == api.store.dialect
    assert body["rules"]


def test_readyz_is_503_when_the_database_is_down(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def down() -> bool:
        raise ConnectionError("database down")

    monkeypatch.setattr(api.store, "ping", down)
    assert_outcome(api.client.get("/readyz"), 503)
    assert api.client.get("/healthz").status_code == 200, "liveness does not depend on the database"


def test_the_openapi_document_is_served(api: Api) -> None:
    response = api.client.get("/openapi.json")
    assert response.status_code == 200
    assert OPERATION in response.json()["paths"]


def test_dates_in_headers_are_http_dates(api: Api) -> None:
    claim = create(api, "enc-1")
    read = api.client.get(f"/fhir/Claim/{claim['id']}")
    when = parsedate_to_datetime(read.headers["last-modified"])
    stored = datetime.fromisoformat(claim["meta"]["lastUpdated"])
    assert abs(when - stored) < timedelta(seconds=1)


def test_a_nul_character_in_a_search_parameter_is_400(api: Api) -> None:
    """Found by the search fuzz: PostgreSQL refuses NUL in a query, so it must never reach the database."""
    for params in ({"patient": "\x00"}, {"_id": "a\x00b"}, {"status": "active\x00"}):
        body = assert_outcome(api.client.get("/fhir/Claim", params=params), 400)
        assert body["issue"][0]["details"]["coding"][0]["code"] == "invalid-search"
    api.assert_alive()
