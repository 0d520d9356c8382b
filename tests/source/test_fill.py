"""Fill: a pushed Bundle gets what it lacks from the source, and only that."""

from __future__ import annotations

from typing import Any

from adapter.pipeline import run
from adapter.rules.catalog import Rules
from adapter.source.client import SourceClient
from adapter.sourcing import amend, fill
from tests.conftest import NOW
from tests.source.conftest import of_type, server_view
from tests.source.double import Double
from tests.source.test_pull import claim_of

SCREENED = ("Condition", "MedicationRequest", "MedicationStatement", "Observation", "Coverage")


def _without(bundle: dict[str, Any], *types: str) -> dict[str, Any]:
    return {**bundle, "entry": [e for e in bundle["entry"] if e["resource"]["resourceType"] not in types]}


def test_fill_adds_exactly_the_missing_categories(
    double: Double, client: SourceClient, rules: Rules, visit: tuple[dict[str, Any], str]
) -> None:
    complete = server_view(double)
    pushed = _without(complete, "Condition", "Coverage")
    filled, report = fill(client, rules, pushed, "missing")
    added = filled["entry"][len(pushed["entry"]) :]
    assert {e["resource"]["resourceType"] for e in added} == {"Condition", "Coverage"}
    assert len(of_type({"entry": added}, "Condition")) == len(of_type(complete, "Condition"))
    assert double.count("/MedicationRequest?") == double.count("/Observation?") == 0
    encounter_id = visit[1]
    expected = claim_of(run(complete, rules=rules, now=NOW), encounter_id)
    result = amend(run(filled, rules=rules, now=NOW), report)
    assert claim_of(result, encounter_id) == expected
    outcome = of_type(result.bundle, "OperationOutcome")[0]
    texts = [i["details"]["text"] for i in outcome["issue"] if i["details"]["coding"][0]["code"] == "source-fill"]
    assert any(t.startswith("filled from the source: ") and "conditions" in t and "coverage" in t for t in texts)


def test_a_complete_push_asks_nothing_of_the_screened_categories(
    double: Double, client: SourceClient, rules: Rules
) -> None:
    pushed = server_view(double)
    filled, _ = fill(client, rules, pushed, "missing")
    assert filled is pushed
    assert not any(double.count(f"/{t}?") for t in SCREENED)


def test_always_fetches_but_never_duplicates(double: Double, client: SourceClient, rules: Rules) -> None:
    pushed = server_view(double)
    filled, _ = fill(client, rules, pushed, "always")
    assert double.count("/Condition?") > 0
    keys = [(e["resource"]["resourceType"], e["resource"]["id"]) for e in filled["entry"]]
    assert len(keys) == len(set(keys))


def test_a_failing_source_holds_the_filled_claim(
    double: Double, client: SourceClient, rules: Rules, visit: tuple[dict[str, Any], str]
) -> None:
    double.fault("/MedicationRequest?", status=503, retry_after="0")
    pushed = _without(server_view(double), "MedicationRequest", "MedicationStatement")
    filled, report = fill(client, rules, pushed, "missing")
    result = amend(run(filled, rules=rules, now=NOW), report)
    assert claim_of(result, visit[1])["status"] == "draft"
    outcome = of_type(result.bundle, "OperationOutcome")[0]
    assert "medications could not be fetched: source answered 503" in [i["details"]["text"] for i in outcome["issue"]]


def test_a_transaction_push_with_urn_uuid_references_is_filled(
    double: Double, client: SourceClient, rules: Rules, visit: tuple[dict[str, Any], str]
) -> None:
    pushed = _without(visit[0], "Coverage")
    filled, _ = fill(client, rules, pushed, "missing")
    (coverage,) = [e for e in filled["entry"] if e["resource"]["resourceType"] == "Coverage"]
    assert coverage["request"] == {"method": "PUT", "url": "Coverage/synthetic-coverage"}
    result = run(filled, rules=rules, now=NOW)
    assert claim_of(result, visit[1])["insurance"][0]["coverage"]["reference"] == "Coverage/synthetic-coverage"


def test_a_push_left_invalid_by_a_failing_source_says_why(double: Double, client: SourceClient, rules: Rules) -> None:
    double.fault("/Coverage?", status=503, retry_after="0")
    filled, report = fill(client, rules, _without(server_view(double), "Coverage"), "missing")
    result = amend(run(filled, rules=rules, now=NOW), report)
    assert result.invalid and result.exit_code == 2
    texts = [i["details"]["text"] for i in of_type(result.bundle, "OperationOutcome")[0]["issue"]]
    assert "coverage could not be fetched: source answered 503" in texts
    assert "no active Coverage in the Bundle for the Encounter's patient" in texts


def test_a_source_patient_with_other_identifiers_is_not_used(
    double: Double, client: SourceClient, rules: Rules, visit: tuple[dict[str, Any], str]
) -> None:
    """Ids can collide between systems: the pushed Patient's identifiers must match the source's."""
    pushed = _without(server_view(double), "MedicationRequest")
    (patient,) = of_type(pushed, "Patient")
    assert patient["identifier"], "the Synthea patient carries identifiers"
    (entry,) = [e for e in pushed["entry"] if e["resource"]["resourceType"] == "Patient"]
    entry["resource"] = {**patient, "identifier": [{"system": "urn:example:mrn", "value": "OTHER"}]}
    filled, report = fill(client, rules, pushed, "missing")
    assert filled is pushed and double.count("/MedicationRequest?") == 0
    result = amend(run(filled, rules=rules, now=NOW), report)
    assert claim_of(result, visit[1])["status"] == "draft"
    texts = [i["details"]["text"] for i in of_type(result.bundle, "OperationOutcome")[0]["issue"]]
    assert (
        "medications could not be fetched: the source's Patient of that id shares no identifier with the pushed one"
        in texts
    )


def test_a_filled_visit_still_joins_its_days_pool(
    double: Double, client: SourceClient, rules: Rules, visit: tuple[dict[str, Any], str]
) -> None:
    """What the source gave is told on the result, which keeps the visits as read: the service pools a
    filled or pulled visit with the day's stored ones like a pushed one (adapter/service/daypool.py)."""
    filled, report = fill(client, rules, _without(server_view(double), "Condition"), "missing")
    plain = run(filled, rules=rules, now=NOW)
    amended = amend(plain, report)
    assert amended.bundle != plain.bundle  # (the report is on it)
    assert amended.source is plain.source and amended.visits == plain.visits and amended.visits
    assert amended.decider is not None
    again = amended.decider(amended.visits, "digest")
    assert [o.lines for o in again.outcomes] == [o.lines for o in plain.outcomes]
