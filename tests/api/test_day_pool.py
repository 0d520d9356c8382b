"""The day's pool across pushes (issue 12, item 1): a later visit of the same patient, billing provider
and date of service gives a new version of the day's Claim, never a second Claim with the same code
and day (Pub 100-04 ch. 5 §20.2; adapter/service/daypool.py)."""

from __future__ import annotations

from typing import Any

from tests import bundle_builder as bb
from tests.api.conftest import Api, entries


def visit(enc_id: str, code: str, minutes: int, start: str, *, status: str = "finished") -> dict[str, Any]:
    """One visit of pat-1 at org-1; the Procedures' ids are unique per visit."""
    procedures = bb.back_to_back((code, minutes), start=start, encounter=f"Encounter/{enc_id}", id_prefix=enc_id)
    return bb.bundle(
        *bb.base_resources("medicare"), bb.encounter(enc_id, start=start, status=status), *procedures, bb.plan_of_care()
    )


def claims(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in entries(bundle) if r["resourceType"] == "Claim"]


def lines(claim: dict[str, Any]) -> list[tuple[str, int]]:
    return [(i["productOrService"]["coding"][0]["code"], i["quantity"]["value"]) for i in claim["item"]]


MORNING, AFTERNOON, NEXT_DAY = "2025-01-14T09:00:00-05:00", "2025-01-14T14:00:00-05:00", "2025-01-15T09:00:00-05:00"


def test_a_later_visit_that_day_makes_a_new_version_of_the_days_claim(api: Api) -> None:
    first = api.push(visit("enc-1", "97140", 10, MORNING))
    assert first.status_code == 201, first.text
    (morning,) = claims(first.json())
    assert lines(morning) == [("97140", 1)]
    second = api.push(visit("enc-2", "97140", 10, AFTERNOON))
    assert second.status_code == 201, second.text
    (day,) = claims(second.json())
    assert day["id"] == morning["id"]
    assert day["meta"]["versionId"] == "2"
    assert lines(day) == [("97140", 1)]  # 20 pooled minutes: still one unit, on one line
    assert [e["reference"] for e in day["item"][0]["encounter"]] == ["Encounter/enc-2", "Encounter/enc-1"]
    found = api.client.get("/fhir/Claim", params={"patient": "Patient/pat-1"}).json()
    assert found["total"] == 1 if "total" in found else len(claims(found)) == 1


def test_pooled_minutes_across_pushes_earn_the_unit_a_visit_alone_would_lose(api: Api) -> None:
    api.push(visit("enc-1", "97140", 20, MORNING))
    second = api.push(visit("enc-2", "97124", 5, AFTERNOON))
    (day,) = claims(second.json())
    assert lines(day) == [("97140", 2)]  # 25 pooled minutes earn 2 units


def test_the_same_later_visit_again_changes_nothing(api: Api) -> None:
    api.push(visit("enc-1", "97140", 10, MORNING))
    api.push(visit("enc-2", "97140", 10, AFTERNOON))
    again = api.push(visit("enc-2", "97140", 10, AFTERNOON))
    assert again.status_code == 200, again.text
    assert claims(again.json())[0]["meta"]["versionId"] == "2"


def test_a_corrected_visit_replaces_its_earlier_version_in_the_pool(api: Api) -> None:
    api.push(visit("enc-1", "97140", 10, MORNING))
    api.push(visit("enc-2", "97140", 10, AFTERNOON))
    corrected = api.push(visit("enc-1", "97140", 30, MORNING))  # 30 + 10, not 10 + 30 + 10
    (day,) = claims(corrected.json())
    assert lines(day) == [("97140", 3)]


def test_cancelling_one_visit_keeps_the_other_on_the_days_claim(api: Api) -> None:
    api.push(visit("enc-1", "97140", 20, MORNING))
    api.push(visit("enc-2", "97124", 20, AFTERNOON))
    cancelled = api.push(visit("enc-2", "97124", 20, AFTERNOON, status="cancelled"))
    assert cancelled.status_code == 201, cancelled.text
    (day,) = claims(cancelled.json())
    assert day["status"] == "active"
    assert lines(day) == [("97140", 1)]


def test_another_date_is_another_claim(api: Api) -> None:
    first = claims(api.push(visit("enc-1", "97140", 10, MORNING)).json())[0]
    other = claims(api.push(visit("enc-2", "97140", 10, NEXT_DAY)).json())[0]
    assert other["id"] != first["id"]
    assert other["meta"]["versionId"] == "1"
    assert lines(other) == [("97140", 1)]
