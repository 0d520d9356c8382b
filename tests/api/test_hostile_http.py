"""Hostile input over HTTP (issue 10): never a 500, always a 4xx OperationOutcome naming the path.

Mutated Bundles go to ``$from-encounter`` and ``$validate``; numbers in headers, query parameters
and paths are ASCII digits within range, or the request is refused with 400 (404 for a path).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.api.conftest import FHIR_JSON, OPERATION, Api, assert_outcome, entries
from tests.mutations import SEEDS, assert_clear_outcome, mutated
from tests.test_hostile_input import REPORTED


def post_bytes(api: Api, path: str, body: bytes, **headers: str) -> Any:
    return api.client.post(path, content=body, headers={"Content-Type": FHIR_JSON, **headers})


def changed(change: Any) -> dict[str, Any]:
    document = copy.deepcopy(SEEDS["rich"])
    change(document)
    return document


@pytest.mark.parametrize(("change", "where"), [c[1:] for c in REPORTED], ids=[c[0] for c in REPORTED])
def test_each_reported_crash_is_a_422_naming_the_path(api: Api, change: Any, where: str) -> None:
    body = assert_outcome(api.push(changed(change)), 422)
    assert_clear_outcome(body)
    assert any(e.endswith(where) for i in body["issue"] for e in i.get("expression", [])), body
    assert api.count("resource_current") == 0


@pytest.mark.parametrize(("change", "where"), [c[1:] for c in REPORTED], ids=[c[0] for c in REPORTED])
def test_validate_lists_each_reported_crash(api: Api, change: Any, where: str) -> None:
    body = assert_outcome(api.post("/fhir/Bundle/$validate", changed(change)), 200)
    assert any(e.endswith(where) for i in body["issue"] for e in i.get("expression", [])), body


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=mutated())
def test_any_value_anywhere_is_a_claim_or_a_clear_4xx(api: Api, case: tuple[str, Any, bytes]) -> None:
    _, _, body = case
    response = post_bytes(api, OPERATION, body)
    assert response.status_code in (200, 201, 400, 422), response.text[:500]  # 400: the text is not a document
    if response.status_code >= 400:
        assert_clear_outcome(response.json())
    else:
        assert entries(response.json(), "Claim")
    checked = post_bytes(api, "/fhir/Bundle/$validate", body)
    assert checked.status_code == 200, checked.text[:500]
    assert checked.json()["resourceType"] == "OperationOutcome"


# --- numbers on the wire ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "etag", ['W/"' + "9" * 5000 + '"', 'W/"٣"', 'W/"²"', 'W/"-1"', 'W/"1.0"', 'W/""', "3", 'W/"' + "9" * 19 + '"']
)
def test_if_match_takes_ascii_digits_in_range(api: Api, etag: str) -> None:
    body = assert_outcome(api.push(SEEDS["rich"], headers={"If-Match": etag.encode()}), 400)  # UTF-8 bytes
    assert body["issue"][0]["details"]["coding"][0]["code"] == "invalid-if-match"
    assert api.count("resource_current") == 0


@pytest.mark.parametrize("value", ["9" * 5000, "٣", "²", "-1", "1e3", " 3", "9" * 19])
@pytest.mark.parametrize("name", ["_count", "_offset"])
def test_paging_numbers_take_ascii_digits_in_range(api: Api, name: str, value: str) -> None:
    body = assert_outcome(api.client.get("/fhir/Claim", params={name: value}), 400)
    assert body["issue"][0]["expression"] == [name]


def test_a_large_count_is_capped_not_refused(api: Api) -> None:
    response = api.client.get("/fhir/Claim", params={"_count": "999999999"})
    assert response.status_code == 200
    assert response.json()["resourceType"] == "Bundle"


@pytest.mark.parametrize("version", ["999999999999999999999999999999", "²", "٣", "9" * 5000, "0"])
def test_history_versions_out_of_range_are_not_found(api: Api, version: str) -> None:
    claim = entries(api.push(SEEDS["rich"]).json(), "Claim")[0]
    response = api.client.get(f"/fhir/Claim/{claim['id']}/_history/{version}")
    body = assert_outcome(response, 404)
    assert len(response.text) < 1000, "the refusal does not echo a huge path"
    assert body["issue"][0]["details"]["coding"][0]["code"] == "not-found"
    assert api.client.get(f"/fhir/Claim/{claim['id']}/_history/1").status_code == 200


def test_a_procedure_of_another_patient_is_refused_with_its_path(api: Api) -> None:
    from tests.test_referential_integrity import procedure_of_other_patient, visit_with_other_patient

    document = visit_with_other_patient()
    where = procedure_of_other_patient(document)
    body = assert_outcome(api.push(document), 422)
    assert [where] in [i.get("expression") for i in body["issue"]], body
    assert api.count("resource_current") == 0
