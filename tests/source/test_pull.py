"""Pull by reference from a real FHIR server double over loopback HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from adapter.pipeline import Result, run
from adapter.rules.catalog import Rules
from adapter.source.client import SourceClient, SourceConfig, SourceError
from adapter.sourcing import amend, pull_encounter
from tests.conftest import NOW
from tests.source.conftest import Sleeps, of_type, server_view
from tests.source.double import Double


def convert(document: dict[str, Any], rules: Rules) -> Result:
    return run(document, rules=rules, now=NOW)


def claim_of(result: Result, encounter_id: str) -> dict[str, Any]:
    (outcome,) = [o for o in result.outcomes if o.encounter_ref == f"Encounter/{encounter_id}"]
    (claim,) = [c for c in of_type(result.bundle, "Claim") if c["id"] == outcome.claim_id]
    return claim


def pulled(client: SourceClient, rules: Rules, encounter_id: str) -> Result:
    bundle, report = pull_encounter(client, rules, encounter_id=encounter_id)
    return amend(convert(bundle, rules), report)


@pytest.mark.parametrize("offer_includes", [True, False], ids=["includes", "separate-searches"])
@pytest.mark.parametrize("page_size", [1000, 2], ids=["one-page", "paged"])
def test_the_pull_gives_the_claim_of_the_complete_push(
    double: Double,
    client: SourceClient,
    rules: Rules,
    visit: tuple[dict[str, Any], str],
    offer_includes: bool,
    page_size: int,
) -> None:
    double.offer_includes, double.page_size = offer_includes, page_size
    encounter_id = visit[1]
    push = convert(server_view(double), rules)
    pull = pulled(client, rules, encounter_id)
    assert claim_of(pull, encounter_id) == claim_of(push, encounter_id)
    pulled_issues = of_type(pull.bundle, "DetectedIssue")
    pushed_issues = [d for d in of_type(push.bundle, "DetectedIssue") if "Procedure/synthetic-97124" in str(d)]
    assert pulled_issues, "the screening saw the pulled medications"
    assert pulled_issues == pushed_issues
    if offer_includes:
        assert double.count("_revinclude=Procedure%3Aencounter") == 1
        assert double.count("/Procedure?") == 0
    else:
        assert double.count("/Procedure?") == 1
    if page_size == 2:
        assert double.count("_offset=") > 0


def test_the_pulled_bundle_holds_only_the_visit(
    double: Double, client: SourceClient, rules: Rules, visit: tuple[dict[str, Any], str]
) -> None:
    bundle, report = pull_encounter(client, rules, encounter_id=visit[1])
    types = {e["resource"]["resourceType"] for e in bundle["entry"]}
    assert types >= {
        "Encounter",
        "Procedure",
        "Patient",
        "Condition",
        "MedicationRequest",
        "Coverage",
        "Organization",
        "Practitioner",
    }
    assert len(of_type(bundle, "Encounter")) == 1
    assert not {"Claim", "ExplanationOfBenefit", "Immunization", "DiagnosticReport"} & types
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["fullUrl"] == f"{double.base}/{resource['resourceType']}/{resource['id']}"
    observations = of_type(bundle, "Observation")
    assert observations and {c["code"] for o in observations for c in o["code"]["coding"]} <= {
        "777-3",
        "38263-7",
        "38267-8",
    }
    assert not report.gathered[f"Encounter/{visit[1]}"].failures


def test_the_provenance_names_each_fetched_resource_by_source_url_and_version(
    double: Double, client: SourceClient, rules: Rules, visit: tuple[dict[str, Any], str]
) -> None:
    encounter_id = visit[1]
    double.put(double.resources[("Encounter", encounter_id)], version=3)
    result = pulled(client, rules, encounter_id)
    (provenance,) = of_type(result.bundle, "Provenance")
    cited = [e["what"]["reference"] for e in provenance["entity"]]
    assert f"{double.base}/Encounter/{encounter_id}/_history/3" in cited
    assert f"{double.base}/Procedure/synthetic-97124/_history/1" in cited
    assert f"{double.base}/Coverage/synthetic-coverage/_history/1" in cited
    bundle, _ = pull_encounter(client, rules, encounter_id=encounter_id)
    assert len(cited) == len(bundle["entry"]) == len(set(cited))
    outcome = of_type(result.bundle, "OperationOutcome")[0]
    assert any("pulled from the source" in i["details"]["text"] for i in outcome["issue"])


def test_an_identifier_finds_the_encounter(
    double: Double, client: SourceClient, rules: Rules, visit: tuple[dict[str, Any], str]
) -> None:
    encounter = double.resources[("Encounter", visit[1])]
    encounter["identifier"] = [{"system": "urn:example:visits", "value": "V-1"}]
    bundle, _ = pull_encounter(client, rules, identifier="urn:example:visits|V-1")
    assert of_type(bundle, "Encounter")[0]["id"] == visit[1]


def test_faults_are_retried_honouring_retry_after(
    double: Double, client: SourceClient, rules: Rules, sleeps: Sleeps, visit: tuple[dict[str, Any], str]
) -> None:
    encounter_id = visit[1]
    expected = claim_of(convert(server_view(double), rules), encounter_id)
    double.fault("/Condition?", status=503, retry_after="2", times=2)
    double.fault("/Coverage?", status=429, retry_after="1", times=1)
    double.fault("/Observation?", drop=True, times=1)
    double.fault("/Patient/", status=502, times=1)
    result = pulled(client, rules, encounter_id)
    assert claim_of(result, encounter_id) == expected
    assert sleeps.count(2.0) == 2 and sleeps.count(1.0) == 1, sleeps
    assert len(sleeps) == 5  # the dropped connection and the 502 waited an exponential backoff
    assert double.count("/Condition?") == 3


def test_a_slow_answer_times_out_and_is_retried(
    double: Double, rules: Rules, sleeps: Sleeps, visit: tuple[dict[str, Any], str]
) -> None:
    double.fault("/Coverage?", delay=1.0, times=1)
    with SourceClient(SourceConfig(base=double.base, timeout=0.3), sleep=sleeps) as client:
        result = pulled(client, rules, visit[1])
    assert double.count("/Coverage?") == 2
    assert claim_of(result, visit[1])["insurance"]


def test_a_failing_source_holds_the_claim_instead_of_seeing_no_conditions(
    double: Double, client: SourceClient, rules: Rules, visit: tuple[dict[str, Any], str]
) -> None:
    encounter_id = visit[1]
    double.fault("/Condition?", status=503, retry_after="0")
    result = pulled(client, rules, encounter_id)
    claim = claim_of(result, encounter_id)
    assert claim["status"] == "draft"
    outcome = of_type(result.bundle, "OperationOutcome")[0]
    (failure,) = [i for i in outcome["issue"] if i["details"]["coding"][0]["code"] == "source-incomplete"]
    assert failure["details"]["text"] == "conditions could not be fetched: source answered 503"
    assert failure["severity"] == "warning" and "holds the Claim" in failure["diagnostics"]
    (summary,) = [o for o in result.outcomes if o.encounter_ref == f"Encounter/{encounter_id}"]
    assert summary.status == "draft" and "source-incomplete" in summary.findings
    assert double.count("/Condition?") == 4  # every attempt was made before giving up


def test_the_essential_resources_failing_raise(
    double: Double, client: SourceClient, rules: Rules, visit: tuple[dict[str, Any], str]
) -> None:
    double.fault("/Encounter", status=500)
    with pytest.raises(SourceError, match="source answered 500"):
        pull_encounter(client, rules, encounter_id=visit[1])


def test_the_circuit_breaker_stops_asking_a_dead_source(
    double: Double, rules: Rules, sleeps: Sleeps, visit: tuple[dict[str, Any], str]
) -> None:
    double.fault("/fhir", status=503, retry_after="0")
    config = SourceConfig(base=double.base, attempts=4, breaker_threshold=3, breaker_reset=600)
    with SourceClient(config, sleep=sleeps) as client:
        with pytest.raises(SourceError, match="circuit open"):
            client.read("Encounter", visit[1])
        asked = len(double.requests)
        assert asked == 3
        with pytest.raises(SourceError, match="circuit open"):
            client.read("Encounter", visit[1])
        assert len(double.requests) == asked
        assert client.breaker.state == "open"


def test_a_next_link_to_another_origin_is_not_followed(double: Double, client: SourceClient) -> None:
    original = double.search

    def leaking(rtype: str, query: list[tuple[str, str]]) -> dict[str, Any]:
        bundle = original(rtype, query)
        bundle["link"].append({"relation": "next", "url": "http://127.0.0.2:9/fhir/Condition?page=2"})
        return bundle

    double.search = leaking  # type: ignore[method-assign]
    with pytest.raises(SourceError, match="outside the source"):
        client.search("Condition", {"patient": "Patient/x"})
