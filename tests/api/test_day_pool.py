"""The day's pool across pushes (issue 12, item 1): a later visit of the same patient, billing provider
and date of service gives a new version of the day's Claim, never a second Claim with the same code
and day (Pub 100-04 ch. 5 §20.2; adapter/service/daypool.py)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import text

from adapter.rules.catalog import Rules, default_mappings_dir, load_rules
from tests import bundle_builder as bb
from tests.api.conftest import Api, entries, make_api


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
    assert day["status"] == "active"  # the morning's Procedure is checked against its own visit, not the afternoon's


def test_the_same_later_visit_again_changes_nothing(api: Api) -> None:
    api.push(visit("enc-1", "97140", 10, MORNING))
    api.push(visit("enc-2", "97140", 10, AFTERNOON))
    again = api.push(visit("enc-2", "97140", 10, AFTERNOON))
    assert again.status_code == 200, again.text
    assert claims(again.json())[0]["meta"]["versionId"] == "2"


def test_a_day_visit_is_written_again_only_when_it_changed(api: Api) -> None:
    def stored() -> list[tuple[Any, ...]]:
        with api.store.engine.connect() as connection:
            return [
                tuple(r) for r in connection.execute(text("SELECT visit_hash, updated_at, source_hash FROM day_visits"))
            ]

    api.push(visit("enc-1", "97140", 10, MORNING))
    first = stored()
    api.push(visit("enc-1", "97140", 10, MORNING))  # the same visit again (a retry): its row stays as it was
    assert stored() == first
    api.push(visit("enc-1", "97140", 30, MORNING))  # corrected: the same row, rewritten
    (corrected,) = stored()
    assert corrected[0] == first[0][0] and corrected[1] > first[0][1] and corrected[2] != first[0][2]
    assert sources(api) == [corrected[2]]  # the earlier Bundle went with the visit that named it


def sources(api: Api) -> list[str]:
    with api.store.engine.connect() as connection:
        return [r[0] for r in connection.execute(text("SELECT content_hash FROM day_sources ORDER BY content_hash"))]


def test_a_bundle_of_several_visits_is_stored_once(api: Api) -> None:
    """One Bundle bringing visits of two days (and two visits of one of them): one stored copy."""
    both = bb.bundle(
        *bb.base_resources("medicare"),
        bb.encounter("enc-1", start=MORNING),
        bb.encounter("enc-2", start=AFTERNOON),
        bb.encounter("enc-3", start=NEXT_DAY),
        *(
            bb.procedure("97140", 10, start=start, proc_id=f"p-{enc}", encounter=f"Encounter/{enc}")
            for enc, start in (("enc-1", MORNING), ("enc-2", AFTERNOON), ("enc-3", NEXT_DAY))
        ),
        bb.plan_of_care(),
    )
    pushed = api.push(both)
    assert pushed.status_code == 201, pushed.text
    with api.store.engine.connect() as connection:
        visits = connection.execute(text("SELECT source_hash, content FROM day_visits")).all()
        (stored,) = connection.execute(text("SELECT content_hash, content FROM day_sources")).all()
    assert len(visits) == 3 and {tuple(v) for v in visits} == {(stored[0], None)}
    assert orjson.loads(stored[1]) == both
    assert len(claims(pushed.json())) == 2  # one Claim per day


def test_a_visit_stored_before_day_sources_is_still_pooled(database_url: str, rules: Rules) -> None:
    """A row an earlier version wrote holds its Bundle itself (and no facts of this version)."""
    with make_api(database_url, rules) as api:
        api.push(visit("enc-1", "97140", 20, MORNING))
        with api.store.engine.begin() as connection:
            connection.execute(
                text(
                    "UPDATE day_visits SET facts = NULL, facts_format = NULL, source_hash = NULL, content = "
                    "(SELECT content FROM day_sources WHERE content_hash = day_visits.source_hash)"
                )
            )
            connection.execute(text("DELETE FROM day_sources"))
        pushed = api.push(visit("enc-2", "97124", 5, AFTERNOON))
        (day,) = claims(pushed.json())
        assert lines(day) == [("97140", 2)]  # the morning's 20 minutes, read from the row's own copy
        assert "day-visit-not-converted" not in findings(pushed.json())
        api.push(visit("enc-1", "97140", 20, MORNING))  # pushed again: its row takes the shared copy
        with api.store.engine.connect() as connection:
            rows = connection.execute(text("SELECT content, source_hash FROM day_visits")).all()
        assert all(content is None and source in sources(api) for content, source in rows), rows


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


# --- stored visits the current rules read differently (issue 12: the pool never loses a visit silently) ------


def evaluation_visit(enc_id: str, start: str) -> dict[str, Any]:
    """A visit billing 97161 (an untimed PT evaluation: a performedDateTime, no period)."""
    evaluation = bb.procedure("97161", None, performed=start, proc_id=f"{enc_id}-eval")
    evaluation["encounter"] = {"reference": f"Encounter/{enc_id}"}
    return bb.bundle(*bb.base_resources("medicare"), bb.encounter(enc_id, start=start), evaluation, bb.plan_of_care())


def rules_with_97161_timed(tmp_path: Path) -> Rules:
    """Rule data under which the stored evaluation no longer converts (a timed code needs a performedPeriod)."""
    root = tmp_path / "mappings"
    shutil.copytree(default_mappings_dir(), root)
    catalog = root / "procedures" / "therapy.yaml"
    text = catalog.read_text(encoding="utf-8")
    entry = '{cpt: "97161", display: "PT evaluation, low complexity (untimed)", timed: false'
    assert entry in text
    catalog.write_text(text.replace(entry, entry.replace("timed: false", "timed: true")), encoding="utf-8")
    return load_rules(root)


def findings(bundle: dict[str, Any]) -> dict[str, str]:
    """Finding code -> its text, from the OperationOutcome."""
    outcomes = [r for r in entries(bundle) if r["resourceType"] == "OperationOutcome"]
    issues = [i for o in outcomes for i in o["issue"]]
    return {c["code"]: i["details"].get("text", "") for i in issues for c in i.get("details", {}).get("coding", [])}


def test_a_stored_visit_the_current_rules_refuse_holds_the_days_claim_with_a_finding(
    database_url: str, rules: Rules, tmp_path: Path
) -> None:
    with make_api(database_url, rules) as before:
        assert before.push(evaluation_visit("enc-1", MORNING)).status_code == 201
    with make_api(database_url, rules_with_97161_timed(tmp_path)) as after:
        pushed = after.push(visit("enc-2", "97140", 20, AFTERNOON))
    assert pushed.status_code == 201, pushed.text
    (day,) = claims(pushed.json())
    assert lines(day) == [("97140", 1)]  # the refused visit's minutes are left out ...
    assert day["status"] == "draft"  # ... and the Claim is held, never sent without it
    why = findings(pushed.json())["day-visit-not-converted"]
    assert "Encounter/enc-1" in why and "missing-performed-period" in why


def test_a_stored_visit_of_an_older_version_is_read_again_from_its_bundle(database_url: str, rules: Rules) -> None:
    with make_api(database_url, rules) as api:
        api.push(visit("enc-1", "97140", 20, MORNING))
        with api.store.engine.begin() as connection:  # as a row an earlier adapter version wrote
            connection.execute(text("UPDATE day_visits SET facts = NULL, facts_format = NULL"))
        pushed = api.push(visit("enc-2", "97124", 5, AFTERNOON))
    (day,) = claims(pushed.json())
    assert lines(day) == [("97140", 2)]  # pooled as before: 25 minutes earn 2 units
    assert day["status"] == "active"
    assert "day-visit-not-converted" not in findings(pushed.json())


def test_a_refused_visit_stored_by_an_older_version_is_named_too(
    database_url: str, rules: Rules, tmp_path: Path
) -> None:
    with make_api(database_url, rules) as before:
        before.push(evaluation_visit("enc-1", MORNING))
        with before.store.engine.begin() as connection:
            connection.execute(text("UPDATE day_visits SET facts = NULL, facts_format = NULL"))
    with make_api(database_url, rules_with_97161_timed(tmp_path)) as after:
        pushed = after.push(visit("enc-2", "97140", 20, AFTERNOON))
    (day,) = claims(pushed.json())
    assert (lines(day), day["status"]) == ([("97140", 1)], "draft")
    assert "Encounter/enc-1" in findings(pushed.json())["day-visit-not-converted"]
