"""Property-based requests generated from the app's own OpenAPI document (issue 4): whatever the
request, no 5xx, and every error body is a FHIR OperationOutcome.  Runs on both databases, with a
bounded number of examples per operation so the module stays well under a minute."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.rules.catalog import Rules
from adapter.service.api import create_app
from adapter.service.settings import Settings
from tests.api.conftest import Api, visit_for

MAX_EXAMPLES = 50
OAUTH_ERRORS = {"invalid_request", "invalid_client", "invalid_grant", "invalid_scope", "unsupported_grant_type"}


@schemathesis.serializer("x-application/hl7-v2+er7")
def _er7(ctx: Any, value: Any) -> bytes:
    """POST /hl7v2 takes HL7 v2 ER7 text: the generated string, as it is."""
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else repr(value).encode()


# The OpenAPI document does not depend on the database: read it from an app on in-memory SQLite.
# Each test then sends its cases to an app on the database under test (``case.call(app=...)``).
schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(Settings(database_url="sqlite://")))


@pytest.fixture
def app_under_test(database_url: str, rules: Rules) -> Iterator[FastAPI]:
    app = create_app(Settings(database_url=database_url), rules)
    yield app
    app.state.store.engine.dispose()


def test_the_schema_lists_the_fhir_operations() -> None:
    paths = {operation.path for operation in schema.get_all_operations() for operation in [operation.ok()]}
    assert {"/fhir/metadata", "/fhir/Claim/$from-encounter", "/fhir", "/fhir/{resource_type}/$validate"} <= paths


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_server_errors_and_errors_are_operation_outcomes(case: Any, app_under_test: FastAPI) -> None:
    response = case.call(app=app_under_test)
    where = f"{case.method} {case.formatted_path}"
    assert response.status_code < 500, (where, response.status_code, response.text[:500])
    if response.status_code >= 400 and (case.method, case.path) == ("POST", "/auth/token"):  # RFC 6749 §5.2
        assert response.json().get("error") in OAUTH_ERRORS, (where, response.status_code, response.text[:500])
    elif response.status_code >= 400:
        content_type = response.headers.get("content-type", [""])
        content_type = content_type[0] if isinstance(content_type, list) else content_type
        assert content_type.startswith("application/fhir+json"), (where, response.status_code, content_type)
        body = response.json()
        assert body.get("resourceType") == "OperationOutcome", (where, body)
        assert body.get("issue"), body


# The search parameters are read from the query string, so the OpenAPI document does not list them
# and schemathesis never generates them: fuzz them here.
DATES = st.from_regex(r"\A(gt|ge|lt|le|eq)?\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2}))?\Z")
VALUES = st.one_of(DATES, st.text(max_size=40), st.integers(-5, 10**12).map(str))
PARAMS = st.sampled_from(["_lastUpdated", "_count", "_offset", "patient", "encounter", "status", "_id", "_format"])


@settings(
    max_examples=MAX_EXAMPLES * 2,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(query=st.lists(st.tuples(PARAMS, VALUES), max_size=4), resource_type=st.sampled_from(["Claim", "DetectedIssue"]))
def test_search_parameters_never_fail_the_server(api: Api, query: list[tuple[str, str]], resource_type: str) -> None:
    if api.count("resource_current") == 0:  # something to find (once: the fixture lives for all examples)
        for enc_id in ("enc-1", "enc-2"):
            assert api.push(visit_for(enc_id, dvt=True)).status_code == 201
    response = api.client.get(f"/fhir/{resource_type}", params=query)
    assert response.status_code < 500, (query, response.text[:500])
    body = response.json()
    if response.status_code >= 400:
        assert body["resourceType"] == "OperationOutcome", body
    else:
        assert body["resourceType"] == "Bundle"
        assert body["type"] == "searchset"
        links = {link["relation"]: link["url"] for link in body.get("link", [])}
        assert links.get("next") != links["self"], "a next link that is the same page never ends"
        assert links.get("previous") != links["self"]
