"""Issue 9: SMART Backend Services tokens, scopes, tenants and the audit trail, over real HTTP.

Every test here talks to ``theraclaim serve`` in a process of its own, with RSA and EC keys made
in the test; the server's log is captured to prove it never holds patient data.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import OctKey

from tests import bundle_builder as bb
from tests.api.auth_support import Client, LiveServer, bearer, live_server, token_form, write_registry
from tests.api.conftest import find_resource, visit_for
from tests.conftest import validate_fhir, write_json

NPI_A = "1234567893"  # the builder's billing Organization
NPI_B = "1245319599"
OPERATION = "/fhir/Claim/$from-encounter"
WRITER = "system/*.cruds"  # $from-encounter writes the Claim, its DetectedIssues and Provenance and the visit's inputs


@pytest.fixture
def clients() -> dict[str, Client]:
    return {
        "ehr": Client.new("riverside-ehr", "ES384"),
        "engine": Client.new("mirth-engine", "RS384"),
        "tenant-b": Client.new("lakeside-ehr", "ES384"),
        "reader": Client.new("claims-reader", "RS384"),
        "auditor": Client.new("auditor", "ES384"),
    }


@pytest.fixture
def server(tmp_path: Path, clients: dict[str, Client]) -> Iterator[LiveServer]:
    """A live server on SQLite (starting processes is the cost here; the PostgreSQL half of the
    suite is exercised by the cross-worker tests and by every in-process API test)."""
    database_url = f"sqlite:///{tmp_path / 'theraclaim.sqlite3'}"
    registry = write_registry(
        tmp_path / "clients.yaml",
        [
            clients["ehr"].entry(WRITER, NPI_A),
            clients["engine"].entry("system/*.*"),  # a v1 operator
            clients["tenant-b"].entry("system/*.cruds", NPI_B),
            clients["reader"].entry("system/Claim.rs", NPI_A),
            clients["auditor"].entry("system/AuditEvent.rs"),
        ],
    )
    with live_server(tmp_path, database_url, registry) as live:
        yield live


def visit_of(npi: str, enc_id: str = "enc-1", **kwargs: Any) -> dict[str, Any]:
    """A visit billed by the Organization with ``npi``; another clinic's visit (NPI_B) has its own
    resource ids, since stored inputs are shared by id."""
    document = visit_for(enc_id, **kwargs)
    if npi == NPI_B:
        document = json.loads(json.dumps(document).replace('-1"', '-b"').replace("-1/", "-b/"))
    organization = find_resource(document, "Organization")
    organization["identifier"] = [{"system": "http://hl7.org/fhir/sid/us-npi", "value": npi}]
    return document


def push(server: LiveServer, token: str, document: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.base}{OPERATION}", content=json.dumps(document), headers=bearer(token))


def get(server: LiveServer, token: str | None, path: str, **params: Any) -> httpx.Response:
    headers = bearer(token) if token else {}
    return httpx.get(f"{server.base}{path}", params=params, headers=headers)


def refused(response: httpx.Response, error: str = "invalid_client") -> str:
    assert response.status_code in (400, 401), response.text
    body = response.json()
    assert body["error"] == error, body
    assert "Traceback" not in response.text
    return str(body["error_description"])


# --- the token flow ------------------------------------------------------------------------------


def test_discovery_and_the_capability_statement_say_smart(server: LiveServer, tmp_path: Path) -> None:
    config = httpx.get(f"{server.base}/fhir/.well-known/smart-configuration").json()
    assert config["token_endpoint"] == server.token_url
    assert config["grant_types_supported"] == ["client_credentials"]
    assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert set(config["token_endpoint_auth_signing_alg_values_supported"]) == {"RS384", "ES384"}
    assert {"client-confidential-asymmetric", "permission-v1", "permission-v2"} <= set(config["capabilities"])
    assert "system/Claim.cruds" in config["scopes_supported"]
    statement = httpx.get(f"{server.base}/fhir/metadata").json()
    security = statement["rest"][0]["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    [oauth] = security["extension"]
    assert oauth["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    assert oauth["extension"] == [{"url": "token", "valueUri": server.token_url}]
    claim = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Claim")
    assert {"code": "read", "documentation": "needs system/Claim.r"} in claim["interaction"]
    validate_fhir([write_json(tmp_path / "metadata.json", statement)])


@pytest.mark.parametrize("who", ["ehr", "engine"])  # EC P-384 / ES384 and RSA / RS384
def test_the_whole_token_flow(server: LiveServer, clients: dict[str, Client], who: str) -> None:
    client = clients[who]
    response = httpx.post(server.token_url, data=token_form(client.assertion(server.token_url), WRITER))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    granted = response.json()
    assert granted["token_type"] == "bearer"
    assert granted["expires_in"] == 300
    assert granted["scope"] == WRITER
    created = push(server, granted["access_token"], visit_of(NPI_A))
    assert created.status_code == 201, created.text
    claim_id = created.headers["location"].split("/Claim/")[1].split("/")[0]
    read = get(server, granted["access_token"], f"/fhir/Claim/{claim_id}")
    assert read.status_code == 200
    assert read.json()["id"] == claim_id


def test_a_token_works_on_every_worker(tmp_path: Path, database_url: str, clients: dict[str, Client]) -> None:
    """Two server processes on one database behind one public URL: a token of one is honoured by
    the other, and an assertion used at one is refused at the other (the jti is in the database)."""
    registry = write_registry(tmp_path / "clients.yaml", [clients["engine"].entry("system/*.rs")])
    public = {"THERACLAIM_PUBLIC_BASE_URL": "https://claims.example.org/fhir"}
    with (
        live_server(tmp_path, database_url, registry, **public) as first,
        live_server(tmp_path, database_url, registry, **public) as second,
    ):
        audience = "https://claims.example.org/auth/token"
        assertion = clients["engine"].assertion(audience)
        granted = httpx.post(first.token_url, data=token_form(assertion, "system/Claim.rs"))
        assert granted.status_code == 200, granted.text
        replay = httpx.post(second.token_url, data=token_form(assertion, "system/Claim.rs"))
        assert "already used" in refused(replay)
        token = granted.json()["access_token"]
        assert get(second, token, "/fhir/Claim").status_code == 200
        assert get(first, token, "/fhir/Claim").status_code == 200


def test_a_replayed_assertion_is_refused(server: LiveServer, clients: dict[str, Client]) -> None:
    assertion = clients["ehr"].assertion(server.token_url)
    assert httpx.post(server.token_url, data=token_form(assertion, "system/Claim.rs")).status_code == 200
    assert "already used" in refused(httpx.post(server.token_url, data=token_form(assertion, "system/Claim.rs")))


def _hs256_with_public_key(client: Client, url: str) -> str:
    """The classic algorithm-confusion attack: HMAC 'signed' with the client's public key."""
    public = json.dumps(client.public_jwks()["keys"][0]).encode()
    claims = {"iss": client.client_id, "sub": client.client_id, "aud": url, "exp": int(time.time()) + 60, "jti": "x1"}
    registry = jws.JWSRegistry(algorithms=["HS256"])
    return jws.serialize_compact(
        {"alg": "HS256", "kid": client.kid}, json.dumps(claims).encode(), OctKey.import_key(public), registry=registry
    )


def _unsigned(client: Client, url: str) -> str:
    import base64

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    claims = {"iss": client.client_id, "sub": client.client_id, "aud": url, "exp": int(time.time()) + 60, "jti": "n1"}
    return f"{part({'alg': 'none', 'kid': client.kid})}.{part(claims)}."


BAD_ASSERTIONS = {
    "expired": lambda c, url: c.assertion(url, exp=int(time.time()) - 120),
    "exp more than 5 minutes ahead": lambda c, url: c.assertion(url, exp=int(time.time()) + 3600),
    "no exp": lambda c, url: c.assertion(url, exp=None),
    "no jti": lambda c, url: c.assertion(url, jti=None),
    "wrong aud": lambda c, url: c.assertion("https://elsewhere.example.org/token"),
    "wrong iss": lambda c, url: c.assertion(url, iss="someone-else", sub="someone-else"),
    "sub differs from iss": lambda c, url: c.assertion(url, sub="someone-else"),
    "unknown kid": lambda c, url: c.assertion(url, header={"kid": "not-registered"}),
    "signed by another key": lambda c, url: Client(c.client_id, Client.new("x", c.alg).key, c.alg).assertion(url),
    "alg none": _unsigned,
    "HS256 with the public key": _hs256_with_public_key,
    "not a JWT": lambda c, url: "not.a.jwt",
}


@pytest.mark.parametrize("case", sorted(BAD_ASSERTIONS))
def test_bad_assertions_are_refused(server: LiveServer, clients: dict[str, Client], case: str) -> None:
    assertion = BAD_ASSERTIONS[case](clients["ehr"], server.token_url)
    refused(httpx.post(server.token_url, data=token_form(assertion, "system/Claim.rs")))


def test_bad_token_requests_get_rfc6749_errors(server: LiveServer, clients: dict[str, Client]) -> None:
    good = token_form(clients["ehr"].assertion(server.token_url), "system/Claim.rs")
    refused(httpx.post(server.token_url, data=good | {"grant_type": "password"}), "unsupported_grant_type")
    refused(httpx.post(server.token_url, data=good | {"client_assertion_type": "x"}), "invalid_request")
    refused(httpx.post(server.token_url, json=good), "invalid_request")
    refused(httpx.post(server.token_url, data={k: v for k, v in good.items() if k != "scope"}), "invalid_scope")


# --- scopes --------------------------------------------------------------------------------------


def test_scopes_are_never_escalated(server: LiveServer, clients: dict[str, Client]) -> None:
    reader = clients["reader"]  # allowed system/Claim.rs
    asked = httpx.post(server.token_url, data=token_form(reader.assertion(server.token_url), "system/*.cruds"))
    assert asked.status_code == 200
    assert asked.json()["scope"] == "system/Claim.rs"
    token = asked.json()["access_token"]
    forbidden = push(server, token, visit_of(NPI_A))
    assert forbidden.status_code == 403
    assert "system/Claim.c" in forbidden.json()["issue"][0]["details"]["text"]
    assert forbidden.json()["resourceType"] == "OperationOutcome"
    assert get(server, token, "/fhir/Claim").status_code == 200
    assert get(server, token, "/fhir/DetectedIssue").status_code == 403
    nothing = httpx.post(server.token_url, data=token_form(reader.assertion(server.token_url), "system/Patient.rs"))
    refused(nothing, "invalid_scope")


def test_v1_scopes_are_understood(server: LiveServer, clients: dict[str, Client]) -> None:
    token = server.token(clients["engine"], "system/Claim.read")
    assert get(server, token, "/fhir/Claim").status_code == 200
    assert push(server, token, visit_of(NPI_A)).status_code == 403
    writer = server.token(clients["engine"], "system/*.write system/Claim.read")
    assert push(server, writer, visit_of(NPI_A)).status_code == 201


@pytest.mark.parametrize("header", [None, "Bearer", "Basic abc", "Bearer not-a-token", "Bearer a.b.c"])
def test_missing_and_malformed_tokens_get_401(server: LiveServer, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = httpx.get(f"{server.base}/fhir/Claim", headers=headers)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.json()["resourceType"] == "OperationOutcome"


def test_an_expired_token_gets_401(tmp_path: Path, clients: dict[str, Client]) -> None:
    database_url = f"sqlite:///{tmp_path / 'theraclaim.sqlite3'}"
    registry = write_registry(tmp_path / "clients.yaml", [clients["engine"].entry("system/*.rs")])
    with live_server(tmp_path, database_url, registry, THERACLAIM_TOKEN_LIFETIME="4") as live:
        issued = time.monotonic()
        token = live.token(clients["engine"], "system/Claim.rs")
        assert get(live, token, "/fhir/Claim").status_code == 200  # within 4 s, even on a loaded machine
        time.sleep(max(0.0, issued + 5.2 - time.monotonic()))
        expired = get(live, token, "/fhir/Claim")
        assert expired.status_code == 401
        assert "expired" in expired.json()["issue"][0]["details"]["text"]


def test_a_token_of_another_server_is_refused(tmp_path: Path, clients: dict[str, Client]) -> None:
    """A token signed with another database's key (another deployment) is foreign."""
    database_url = f"sqlite:///{tmp_path / 'theraclaim.sqlite3'}"
    registry = write_registry(tmp_path / "clients.yaml", [clients["engine"].entry("system/*.rs")])
    with live_server(tmp_path, f"sqlite:///{tmp_path / 'other.sqlite3'}", registry) as other:
        foreign = other.token(clients["engine"], "system/Claim.rs")
    with live_server(tmp_path, database_url, registry) as live:
        assert get(live, foreign, "/fhir/Claim").status_code == 401


# --- tenants -------------------------------------------------------------------------------------


def test_two_tenants_cannot_see_or_touch_each_others_claims(server: LiveServer, clients: dict[str, Client]) -> None:
    a = server.token(clients["ehr"], WRITER)
    b = server.token(clients["tenant-b"], "system/*.cruds")
    operator = server.token(clients["engine"], "system/*.read")
    created = push(server, a, visit_of(NPI_A, dvt=True))
    assert created.status_code == 201, created.text
    claim_id = created.headers["location"].split("/Claim/")[1].split("/")[0]
    issues = [e["resource"] for e in created.json()["entry"] if e["resource"]["resourceType"] == "DetectedIssue"]
    assert issues
    # B: reads, history and vread are "not found"; searches find nothing
    for path in (
        f"/fhir/Claim/{claim_id}",
        f"/fhir/Claim/{claim_id}/_history",
        f"/fhir/Claim/{claim_id}/_history/1",
        f"/fhir/DetectedIssue/{issues[0]['id']}",
    ):
        assert get(server, b, path).status_code == 404, path
    for resource_type in ("Claim", "DetectedIssue", "Provenance"):
        assert not get(server, b, f"/fhir/{resource_type}").json().get("entry")
    assert not get(server, b, "/fhir/Claim", patient="Patient/pat-1").json().get("entry")
    for resource_type, include in (("Claim", "Claim:patient"), ("Provenance", "Provenance:target")):
        assert not get(server, b, f"/fhir/{resource_type}", _include=include).json().get("entry")
        assert not get(server, b, "/fhir/Claim", _revinclude="Provenance:target").json().get("entry")
    assert get(server, b, "/fhir/Claim/_history").json().get("entry") is None
    # B cannot push a visit billed by A's organization, nor cancel A's Claim that way
    before = get(server, operator, f"/fhir/Claim/{claim_id}").json()["meta"]["versionId"]
    assert push(server, b, visit_of(NPI_A, minutes=45)).status_code == 403
    cancelled = visit_of(NPI_A)
    find_resource(cancelled, "Encounter")["status"] = "cancelled"
    assert push(server, b, cancelled).status_code == 403
    # ... nor reach A's Claim (or A's stored inputs) through a visit of its own organization
    find_resource(cancelled, "Organization")["identifier"][0]["value"] = NPI_B
    assert push(server, b, cancelled).status_code == 403
    after = get(server, operator, f"/fhir/Claim/{claim_id}").json()
    assert after["meta"]["versionId"] == before and after["status"] != "cancelled"
    # A sees its own; B's own push works and A cannot see it
    assert get(server, a, f"/fhir/Claim/{claim_id}").status_code == 200
    included = get(server, a, "/fhir/Claim", _include="Claim:patient").json()["entry"]
    assert {e["resource"]["resourceType"] for e in included} == {"Claim", "Patient"}
    mine = push(server, b, visit_of(NPI_B, "enc-b"))
    assert mine.status_code == 201, mine.text
    b_claim = mine.headers["location"].split("/Claim/")[1].split("/")[0]
    assert get(server, a, f"/fhir/Claim/{b_claim}").status_code == 404
    assert {e["resource"]["id"] for e in get(server, a, "/fhir/Claim").json()["entry"]} == {claim_id}
    # the operator sees both
    assert {e["resource"]["id"] for e in get(server, operator, "/fhir/Claim").json()["entry"]} == {claim_id, b_claim}


def test_a_tenant_cannot_push_a_visit_without_an_npi(server: LiveServer, clients: dict[str, Client]) -> None:
    token = server.token(clients["ehr"], WRITER)
    document = visit_of(NPI_A)
    find_resource(document, "Organization").pop("identifier")
    response = push(server, token, document)
    assert response.status_code == 403
    assert "no NPI" in response.json()["issue"][0]["details"]["text"]


# --- the audit trail -----------------------------------------------------------------------------


def audit_events(server: LiveServer, token: str, **params: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    url: str | None = f"{server.base}/fhir/AuditEvent"
    query: dict[str, Any] | None = {"_count": 500, **params}
    while url:
        page = httpx.get(url, params=query, headers=bearer(token)).json()
        events += [e["resource"] for e in page.get("entry", [])]
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
        query = None
    return events


def test_n_requests_leave_n_audit_events(server: LiveServer, clients: dict[str, Client], tmp_path: Path) -> None:
    auditor = server.token(clients["auditor"], "system/AuditEvent.rs")
    a = server.token(clients["ehr"], WRITER)
    reader = server.token(clients["reader"], "system/Claim.rs")
    start = len(audit_events(server, auditor))  # this search itself leaves one more
    created = push(server, a, visit_of(NPI_A))
    claim_id = created.headers["location"].split("/Claim/")[1].split("/")[0]
    requests = [
        lambda: push(server, a, visit_of(NPI_A)),  # identical push: 200
        lambda: get(server, a, f"/fhir/Claim/{claim_id}"),
        lambda: get(server, a, "/fhir/Claim", patient="Patient/pat-1"),
        lambda: get(server, a, "/fhir/Claim/nope"),  # 404
        lambda: get(server, None, "/fhir/Claim"),  # 401
        lambda: get(server, reader, "/fhir/DetectedIssue"),  # 403: no DetectedIssue scope
    ]
    statuses = [request().status_code for request in requests]
    assert statuses == [200, 200, 200, 404, 401, 403]
    events = audit_events(server, auditor)
    # 1 push + the 6 requests + the first audit search itself
    assert len(events) == start + 1 + 1 + len(requests)
    recent = events[-(len(requests) + 1) : -0 or None]
    assert [e["outcome"] for e in recent[-len(requests) :]] == ["0", "0", "0", "4", "4", "4"]
    push_event = recent[0]
    assert push_event["subtype"][0]["code"] == "operation"
    assert push_event["subtype"][1]["code"] == "from-encounter"
    assert push_event["agent"][0]["who"]["identifier"]["value"] == "riverside-ehr"
    assert push_event["agent"][0]["network"]["address"] == "127.0.0.1"
    assert any(e["what"]["reference"].startswith(f"Claim/{claim_id}/_history/") for e in push_event["entity"])
    search_event = recent[3]
    assert search_event["subtype"][0]["code"] == "search-type"
    assert any("query" in e for e in search_event["entity"])
    # searchable by agent, entity, outcome and date; every AuditEvent is valid FHIR
    assert all(
        e["agent"][0]["who"].get("identifier", {}).get("value") == "riverside-ehr"
        for e in audit_events(server, auditor, agent="riverside-ehr")
    )
    assert audit_events(server, auditor, entity=f"Claim/{claim_id}")
    assert {e["outcome"] for e in audit_events(server, auditor, outcome="4")} == {"4"}
    assert audit_events(server, auditor, date="ge2020-01-01")
    assert not audit_events(server, auditor, date="lt2020-01-01")
    paths = [write_json(tmp_path / f"audit-{i}.json", e) for i, e in enumerate(audit_events(server, auditor))]
    validate_fhir(paths)


def test_audit_pages_see_the_trail_of_their_first_page(server: LiveServer, clients: dict[str, Client]) -> None:
    """The trail grows while an auditor pages it (every page and every request between leaves an
    event): the pages still hold exactly the events of the first page's time, each once, in order."""
    auditor = server.token(clients["auditor"], "system/AuditEvent.rs")
    for _ in range(4):
        assert get(server, None, "/fhir/Claim").status_code == 401  # audited all the same
    page = get(server, auditor, "/fhir/AuditEvent", _count=2).json()
    total, seen = page["total"], [e["resource"]["id"] for e in page["entry"]]
    assert total >= 4
    while url := next((link["url"] for link in page["link"] if link["relation"] == "next"), None):
        assert get(server, None, "/fhir/Claim").status_code == 401  # one more event between two pages
        page = httpx.get(url, headers=bearer(auditor)).json()
        assert page["total"] == total and len(page["entry"]) <= 2
        seen += [e["resource"]["id"] for e in page["entry"]]
    assert len(seen) == len(set(seen)) == total
    now = [e["id"] for e in audit_events(server, auditor)]
    assert len(now) > total and now[:total] == seen, "later events come after the snapshot's"
    body = get(server, auditor, "/fhir/AuditEvent", _offset=2).json()
    assert body["issue"][0]["expression"] == ["_offset"]


# --- every door is locked ------------------------------------------------------------------------


def test_protected_mode_without_a_registry(tmp_path: Path) -> None:
    with live_server(tmp_path, f"sqlite:///{tmp_path / 'theraclaim.sqlite3'}", None) as live:
        response = httpx.post(
            f"{live.base}{OPERATION}",
            content=json.dumps(visit_of(NPI_A)),
            headers={"Content-Type": "application/fhir+json"},
        )
        assert response.status_code == 201
        for answer in (response, httpx.get(f"{live.base}/healthz"), httpx.get(f"{live.base}/fhir/Claim")):
            assert answer.headers["x-theraclaim-authentication"] == "disabled"
            assert answer.headers["cache-control"] == "no-store"
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert "server" not in answer.headers
        assert "authentication is DISABLED" in live.logs()


def test_a_secure_server_answers_with_safe_headers(server: LiveServer) -> None:
    for answer in (httpx.get(f"{server.base}/fhir/metadata"), httpx.get(f"{server.base}/fhir/Claim")):
        assert "x-theraclaim-authentication" not in answer.headers
        assert answer.headers["cache-control"] == "no-store"
        assert "server" not in answer.headers
        assert "access-control-allow-origin" not in answer.headers


# --- no PHI in the logs --------------------------------------------------------------------------

NAME, BIRTH_DATE, SSN = "Zebulon Quartermaine", "1931-02-29", "987-65-4329"


def distinctive_visit() -> dict[str, Any]:
    document = visit_of(NPI_A)
    patient = find_resource(document, "Patient")
    patient["name"] = [{"family": "Quartermaine", "given": ["Zebulon"], "text": NAME}]
    patient["birthDate"] = "1931-02-28"
    patient["identifier"] = [{"system": "http://hl7.org/fhir/sid/us-ssn", "value": SSN}]
    return document


def test_patient_data_never_reaches_the_log(server: LiveServer, clients: dict[str, Client]) -> None:
    token = server.token(clients["ehr"], WRITER)
    good = distinctive_visit()
    assert push(server, token, good).status_code == 201
    bad = copy.deepcopy(good)
    find_resource(bad, "Patient")["birthDate"] = BIRTH_DATE  # not a calendar date: echoed in the 422 body only
    find_resource(bad, "Encounter")["status"] = NAME  # an invalid code holding the name
    assert push(server, token, bad).status_code == 422
    get(server, token, "/fhir/Claim", patient=f"Patient/{SSN}", identifier=NAME)
    get(server, token, f"/fhir/Patient/{SSN}")
    httpx.post(f"{server.base}{OPERATION}", content=f'{{"name": "{NAME}", "ssn": "{SSN}"', headers=bearer(token))
    logs = server.logs()
    assert "route=" in logs, "the server logs one line per request"
    for secret in (NAME, "Quartermaine", BIRTH_DATE, "1931-02-28", SSN):
        assert secret not in logs, secret


def test_an_unhandled_error_logs_no_patient_data(caplog: pytest.LogCaptureFixture, api: Any) -> None:
    """A 500 on the way: the log names the exception's type, never its text (which quotes input)."""
    import adapter.service.claims as claims_module

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise ValueError(f"cannot bill {NAME}, born {BIRTH_DATE}, SSN {SSN}")

    original = claims_module.run
    claims_module.run = broken
    try:
        response = api.push(bb.visit(bb.procedure("97124", 20)))
    finally:
        claims_module.run = original
    assert response.status_code == 500
    for secret in (NAME, BIRTH_DATE, SSN):
        assert secret not in caplog.text
        assert secret not in response.text
    assert "ValueError" in caplog.text


def test_the_log_formatter_withholds_exception_text() -> None:
    import logging

    from adapter.service.logs import PhiSafeFormatter

    try:
        raise KeyError(f"{NAME} {SSN}")
    except KeyError:
        import sys

        record = logging.LogRecord(
            "uvicorn.error", logging.ERROR, __file__, 1, "Exception in ASGI application", None, sys.exc_info()
        )
    text = PhiSafeFormatter().format(record)
    assert "KeyError" in text and "test_auth.py" in text
    assert NAME not in text and SSN not in text


# --- keys by jwks_url --------------------------------------------------------------------------


class _JwksServer:
    """A client's JWKS endpoint on loopback; its key set can be rotated and its hits counted."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.keys: dict[str, Any] = {"keys": []}
        self.hits = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits += 1
                body = json.dumps(owner.keys).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()  # the listening socket too (a leaked one fails a later test at GC)


def test_keys_from_a_jwks_url_are_fetched_cached_and_rotated(tmp_path: Path) -> None:
    first, rotated = Client.new("url-client", "ES384"), Client.new("url-client", "RS384")
    rotated.key = Client.new("url-client-2", "RS384").key  # a new kid
    jwks = _JwksServer()
    jwks.keys = first.public_jwks()
    try:
        entry = {"client_id": "url-client", "jwks_url": jwks.url, "scope": "system/Claim.rs"}
        registry = write_registry(tmp_path / "clients.yaml", [entry])
        with live_server(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}", registry) as live:
            live.token(first, "system/Claim.rs")
            live.token(first, "system/Claim.rs")
            assert jwks.hits == 1, "the key set is cached"
            jwks.keys = {"keys": first.public_jwks()["keys"] + rotated.public_jwks()["keys"]}
            token = live.token(rotated, "system/Claim.rs")  # an unknown kid: refetched once
            assert jwks.hits == 2
            assert get(live, token, "/fhir/Claim").status_code == 200
            unknown = Client("url-client", Client.new("x", "ES384").key, "ES384")
            for _ in range(3):  # unknown kids do not hammer the URL: at most one refetch a minute
                refused(
                    httpx.post(live.token_url, data=token_form(unknown.assertion(live.token_url), "system/Claim.rs"))
                )
            assert jwks.hits == 2
    finally:
        jwks.close()


def test_a_bad_registry_stops_the_server_naming_the_entry(tmp_path: Path) -> None:
    import subprocess
    import sys

    registry = tmp_path / "clients.yaml"
    registry.write_text(
        "clients:\n  - client_id: ok\n    scope: system/Claim.rs\n    jwks: {keys: [{kty: oct, kid: a, k: c2VjcmV0}]}\n"
    )
    env = {**__import__("os").environ, "THERACLAIM_CLIENTS": str(registry), "THERACLAIM_DATABASE_URL": "sqlite://"}
    done = subprocess.run(
        [sys.executable, "-m", "adapter.cli", "serve"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 3
    assert "clients[0] (ok).jwks" in done.stderr
    check = subprocess.run(
        [sys.executable, "-m", "adapter.cli", "clients", "check", str(registry)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 3 and "clients[0] (ok).jwks" in check.stderr


def test_without_a_registry_only_loopback_binds(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "THERACLAIM_CLIENTS"} | {"THERACLAIM_DATABASE_URL": "sqlite://"}
    done = subprocess.run(
        [sys.executable, "-m", "adapter.cli", "serve", "--host", "0.0.0.0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3
    assert "refusing to listen on 0.0.0.0" in done.stderr and "THERACLAIM_CLIENTS" in done.stderr


@pytest.mark.parametrize("trusted", [False, True])
def test_forwarded_headers_count_only_from_trusted_proxies(
    tmp_path: Path, clients: dict[str, Client], trusted: bool
) -> None:
    """The audit trail records the caller's address: X-Forwarded-For is believed only from a proxy
    listed in THERACLAIM_TRUSTED_PROXIES (here the test itself, on 127.0.0.1)."""
    registry = write_registry(tmp_path / "clients.yaml", [clients["auditor"].entry("system/*.rs")])
    env = {"THERACLAIM_TRUSTED_PROXIES": "127.0.0.1"} if trusted else {}
    with live_server(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite3'}", registry, **env) as live:
        token = live.token(clients["auditor"], "system/*.rs")
        forwarded = {**bearer(token), "X-Forwarded-For": "203.0.113.7"}
        assert httpx.get(f"{live.base}/fhir/Claim", headers=forwarded).status_code == 200
        [event] = [e for e in audit_events(live, token) if e["subtype"][0]["code"] == "search-type"][:1]
        assert event["agent"][0]["network"]["address"] == ("203.0.113.7" if trusted else "127.0.0.1")
