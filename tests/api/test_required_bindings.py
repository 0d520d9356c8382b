"""Required code bindings of every element are checked before anything is stored and in $validate,
at both validation levels (issue 11)."""

from __future__ import annotations

import pytest

from tests import bundle_builder as bb
from tests.api.conftest import Api, assert_outcome, find_resource, visit_for


def test_validate_reports_claim_codes_outside_their_value_sets(api: Api) -> None:
    claim = {"resourceType": "Claim", "status": "nonsense", "use": "nonsense"}
    body = assert_outcome(api.post("/fhir/Claim/$validate", claim), 200)
    places = {e for issue in body["issue"] for e in issue.get("expression", [])}
    assert {"Claim.status", "Claim.use"} <= places


@pytest.mark.parametrize("level", ["fields", "full"])
def test_an_input_with_a_bad_code_is_not_stored(api: Api, level: str) -> None:
    document = visit_for("enc-a")
    find_resource(document, "Patient")["gender"] = "bogus"
    body = assert_outcome(api.push(document, params={"validation": level}), 422)
    assert any("gender" in e for issue in body["issue"] for e in issue.get("expression", [])), body
    assert api.count("resource_current") == 0


def test_a_batch_refuses_the_entry_with_a_bad_code(api: Api) -> None:
    patient = {"resourceType": "Patient", "id": "pat-9", "gender": "bogus"}
    batch = bb.bundle(
        *bb.base_resources(), bb.encounter(), bb.procedure("97124", 30), bb.plan_of_care(), bundle_type="batch"
    )
    batch["entry"].append({"resource": patient, "request": {"method": "PUT", "url": "Patient/pat-9"}})
    response = api.post("/fhir", batch)
    assert response.status_code == 200
    assert response.json()["entry"][-1]["response"]["status"].startswith("400")
    assert api.client.get("/fhir/Patient/pat-9").status_code == 404
