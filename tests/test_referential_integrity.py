"""Every resource an Encounter's claim uses is about the Encounter's patient, and every urn:
reference resolves inside the Bundle (issue 10); otherwise the input is refused at the path."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from adapter.pipeline import run
from adapter.rules.catalog import Rules
from tests import bundle_builder as bb
from tests.conftest import NOW
from tests.test_bad_input import found

OTHER = {"resourceType": "Patient", "id": "pat-2", "birthDate": "1960-01-01"}


def visit_with_other_patient() -> dict[str, Any]:
    document = bb.visit(bb.procedure("97124", 24, proc_id="p1"), bb.procedure("97140", 23, proc_id="p2"))
    document["entry"].append({"fullUrl": "http://ehr.example.org/fhir/Patient/pat-2", "resource": OTHER})
    return document


def at(document: dict[str, Any], resource_type: str, resource_id: str) -> str:
    index = next(
        i
        for i, e in enumerate(document["entry"])
        if e["resource"]["resourceType"] == resource_type and e["resource"].get("id") == resource_id
    )
    return f"Bundle.entry[{index}].resource"


def procedure_of_other_patient(document: dict[str, Any]) -> str:
    bb.find(document, "Procedure", "p2")["subject"] = {"reference": "Patient/pat-2"}
    return f"{at(document, 'Procedure', 'p2')}.subject.reference"


def procedure_of_unknown_urn(document: dict[str, Any]) -> str:
    bb.find(document, "Procedure", "p2")["subject"] = {"reference": "urn:uuid:7f0c4a4e-7c3a-4d55-9a52-3a1c0f0f0f0f"}
    return f"{at(document, 'Procedure', 'p2')}.subject.reference"


def procedure_of_absent_patient(document: dict[str, Any]) -> str:
    bb.find(document, "Procedure", "p2")["subject"] = {"reference": "Patient/pat-9"}
    return f"{at(document, 'Procedure', 'p2')}.subject.reference"


def diagnosis_of_other_patient(document: dict[str, Any]) -> str:
    condition = bb.condition("dx-2", "M62.830", "Muscle spasm of back")
    condition["subject"] = {"reference": "Patient/pat-2"}
    document["entry"].append({"fullUrl": "http://ehr.example.org/fhir/Condition/dx-2", "resource": condition})
    bb.find(document, "Procedure", "p1")["reasonReference"] = [{"reference": "Condition/dx-2"}]
    return f"{at(document, 'Condition', 'dx-2')}.subject.reference"


def dangling_urn_anywhere(document: dict[str, Any]) -> str:
    bb.find(document, "Procedure", "p1")["basedOn"] = [{"reference": "urn:uuid:00000000-0000-4000-8000-000000000000"}]
    return f"{at(document, 'Procedure', 'p1')}.basedOn[0].reference"


CASES: list[tuple[str, Callable[[dict[str, Any]], str], str]] = [
    ("procedure-of-another-patient", procedure_of_other_patient, "subject-mismatch"),
    ("procedure-subject-unknown-urn", procedure_of_unknown_urn, "unresolved-reference"),
    ("procedure-subject-not-in-bundle", procedure_of_absent_patient, "unresolved-reference"),
    ("diagnosis-of-another-patient", diagnosis_of_other_patient, "subject-mismatch"),
    ("dangling-urn-in-any-element", dangling_urn_anywhere, "unresolved-reference"),
]


@pytest.mark.parametrize(("change", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_resource_of_another_patient_or_nowhere_is_an_input_error(
    rules: Rules, change: Callable[[dict[str, Any]], str], code: str
) -> None:
    document = visit_with_other_patient()
    where = change(document)
    result = run(json.dumps(document).encode(), rules=rules, now=NOW)
    assert result.exit_code == 2
    assert (code, where) in found(result.bundle), found(result.bundle)


def test_the_same_patient_by_another_reference_form_is_fine(rules: Rules) -> None:
    document = visit_with_other_patient()
    bb.find(document, "Procedure", "p2")["subject"] = {"reference": "http://ehr.example.org/fhir/Patient/pat-1"}
    result = run(json.dumps(document).encode(), rules=rules, now=NOW)
    assert result.exit_code == 0, found(result.bundle) if result.invalid else None
    assert result.outcomes[0].lines == (("97124", 2), ("97140", 1))


def test_urn_references_that_resolve_are_fine(rules: Rules) -> None:
    resources = [e["resource"] for e in bb.visit(bb.procedure("97124", 24))["entry"]]
    assert run(json.dumps(bb.urn_transaction(resources)).encode(), rules=rules, now=NOW).exit_code == 0
