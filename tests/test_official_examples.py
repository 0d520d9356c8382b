"""The official FHIR R4 examples (../shared/external/fhir-r4-core-examples/): the intake accepts
them, and the therapy-shaped Procedures convert to a sensible (claim-less) result."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from adapter.intake.validation import validate_resource
from adapter.pipeline import Result, run
from adapter.rules.catalog import Rules
from tests import bundle_builder as bb
from tests.conftest import NOW, SHARED, shared_path, validate_fhir, write_json

EXAMPLES = ("external", "fhir-r4-core-examples")
PREFIXES = ("Claim-", "Encounter-", "Procedure-", "Condition-", "Coverage-")
NAMES = sorted(p.name for p in SHARED.joinpath(*EXAMPLES).glob("*.json") if p.name.startswith(PREFIXES))
THERACLAIM = Path(sys.executable).parent / "theraclaim"


def example(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(shared_path(*EXAMPLES, name).read_text(encoding="utf-8"))
    return document


def test_the_examples_are_all_there() -> None:
    shared_path(*EXAMPLES)
    for prefix in PREFIXES:
        assert any(name.startswith(prefix) for name in NAMES), prefix
    assert {"Procedure-physical-therapy.json", "Procedure-ambulation.json", "Claim-860150.json"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES or ["(examples absent)"])
def test_official_example_validates(name: str) -> None:
    resource = example(name)
    assert validate_resource(resource, resource["resourceType"]) == []


def test_validation_is_not_a_no_op() -> None:
    """The same check reports a broken copy of an example, with the path."""
    resource = example("Procedure-physical-therapy.json")
    resource["status"] = "bogus"
    resource["performedDateTime"] = "2016-02-30"
    problems = validate_resource(resource, "Procedure")
    assert [(p.code, p.expression) for p in problems] == [
        ("fhir-invalid", "Procedure.performedDateTime"),
        ("invalid-code", "Procedure.status"),
    ]
    del resource["performedDateTime"]
    problems = validate_resource(resource, "Procedure")
    assert [(p.code, p.expression) for p in problems] == [("invalid-code", "Procedure.status")]


# --- converting the therapy-shaped Procedures -----------------------------------------------


def visit_around(procedure: dict[str, Any], *others: dict[str, Any]) -> dict[str, Any]:
    """A Bundle with the official Patient/example, a Coverage and an Encounter for the Procedure.

    The Procedure is linked to the Encounter (the only change made to it); it ends up last.
    """
    encounter = {
        "resourceType": "Encounter",
        "id": "therapy-visit",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/example"},
        "period": {"start": "2016-09-27"},
    }
    coverage = {
        "resourceType": "Coverage",
        "id": "therapy-coverage",
        "status": "active",
        "type": {"coding": [{"system": bb.SOPT, "code": bb.PAYER_TYPES["medicare"]}]},
        "beneficiary": {"reference": "Patient/example"},
        "payor": [{"identifier": {"system": "urn:example:payer-id", "value": "MEDICARE"}}],
    }
    linked = copy.deepcopy(procedure)
    assert "encounter" not in linked
    linked["encounter"] = {"reference": "Encounter/therapy-visit"}
    return bb.bundle(example("Patient-example.json"), *others, encounter, coverage, linked)


def issues(result: Result) -> list[tuple[str, list[str]]]:
    [outcome] = [e["resource"] for e in result.bundle["entry"]]
    assert outcome["resourceType"] == "OperationOutcome"
    return [(i["details"]["coding"][0]["code"], i.get("expression", [])) for i in outcome["issue"]]


def test_physical_therapy_assessment_has_no_cpt(rules: Rules) -> None:
    original = example("Procedure-physical-therapy.json")
    document = visit_around(original)
    procedure = document["entry"][-1]["resource"]
    assert {k: v for k, v in procedure.items() if k != "encounter"} == original  # unmodified otherwise
    assert procedure["code"]["coding"][0]["code"] == "710830005"

    result = run(json.dumps(document).encode(), rules=rules, now=NOW)
    assert not result.invalid
    assert result.exit_code == 1
    [outcome] = result.outcomes
    assert outcome.encounter_ref == "Encounter/therapy-visit"
    assert outcome.status is None and outcome.claim_id is None and outcome.lines == ()
    assert "Claim" not in [e["resource"]["resourceType"] for e in result.bundle["entry"]]
    found = issues(result)
    assert ("unmapped-procedure-code", ["Bundle.entry[3].resource.code"]) in found
    assert found[-1] == ("encounter-outcome", ["Bundle.entry[1].resource"])
    [unmapped] = [
        i
        for i in result.bundle["entry"][0]["resource"]["issue"]
        if i["details"]["coding"][0]["code"] == "unmapped-procedure-code"
    ]
    assert unmapped["severity"] == "warning"
    assert "http://snomed.info/sct|710830005" in unmapped["details"]["text"]


def test_physical_therapy_through_the_cli(tmp_path: Path) -> None:
    path = write_json(tmp_path / "physical-therapy.json", visit_around(example("Procedure-physical-therapy.json")))
    completed = subprocess.run(
        [str(THERACLAIM), "convert", str(path), "--now", "2025-01-15T12:00:00Z"],
        capture_output=True,
        timeout=120,
        check=False,
    )
    stderr = completed.stderr.decode()
    assert completed.returncode == 1, stderr
    assert "Encounter/therapy-visit: no Claim (unmapped-procedure-code" in stderr
    assert "Traceback" not in stderr
    output = tmp_path / "output.json"
    output.write_bytes(completed.stdout)
    validate_fhir([output])


def test_ambulation_not_done_is_not_billed(rules: Rules) -> None:
    original = example("Procedure-ambulation.json")
    assert original["status"] == "not-done"
    # Its performer and reasonReference must resolve inside the Bundle.
    blood_pressure = {
        "resourceType": "Observation",
        "id": "blood-pressure",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure panel"}]},
        "subject": {"reference": "Patient/example"},
    }
    document = visit_around(original, example("Practitioner-f204.json"), blood_pressure)
    assert [e["resource"]["resourceType"] for e in document["entry"]] == [
        "Patient",
        "Practitioner",
        "Observation",
        "Encounter",
        "Coverage",
        "Procedure",
    ]

    result = run(json.dumps(document).encode(), rules=rules, now=NOW)
    assert not result.invalid
    assert result.exit_code == 1
    [outcome] = result.outcomes
    assert outcome.status is None
    found = issues(result)
    assert ("procedure-not-completed", ["Bundle.entry[5].resource.status"]) in found
    # a procedure that was not done is not billed, so its (unmapped) code is not reported
    assert "unmapped-procedure-code" not in [code for code, _ in found]
