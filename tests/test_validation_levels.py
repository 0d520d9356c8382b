"""The two validation levels: ``fields`` checks what the rules read, ``full`` checks everything."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from adapter.intake.r4_types import R4_RESOURCE_TYPES
from adapter.intake.validation import validate_resource
from tests import bundle_builder as bb

# R4 resources that R4B replaced (the fields level knows them, fhir.resources' R4B models do not).
R4_ONLY = {
    "EffectEvidenceSynthesis",
    "RiskEvidenceSynthesis",
    "MedicinalProduct",
    "MedicinalProductAuthorization",
    "MedicinalProductContraindication",
    "MedicinalProductIndication",
    "MedicinalProductIngredient",
    "MedicinalProductInteraction",
    "MedicinalProductManufactured",
    "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical",
    "MedicinalProductUndesirableEffect",
    "SubstanceNucleicAcid",
    "SubstancePolymer",
    "SubstanceProtein",
    "SubstanceReferenceInformation",
    "SubstanceSourceMaterial",
    "SubstanceSpecification",
}


def _known_to_r4b(name: str) -> bool:
    try:
        get_fhir_model_class(name)
    except ValueError:
        return False
    return True


def test_the_r4_type_list_matches_the_models() -> None:
    assert {name for name in R4_RESOURCE_TYPES if not _known_to_r4b(name)} == R4_ONLY
    assert {"Claim", "Procedure", "Encounter", "Bundle", "Parameters", "Binary"} <= R4_RESOURCE_TYPES


def codes(problems: list[Any]) -> list[tuple[str, str | None]]:
    return [(p.code, p.expression) for p in problems]


PATH = "Bundle.entry[0].resource"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r["performedPeriod"].update(start=123), [("fhir-invalid", f"{PATH}.performedPeriod.start")]),
        (
            lambda r: r["performedPeriod"].update(start="2025-02-30T09:00:00Z"),
            [("fhir-invalid", f"{PATH}.performedPeriod.start")],
        ),
        (
            lambda r: r["performedPeriod"].update(start="2025-01-14T09:00:00"),  # a time needs a zone
            [("fhir-invalid", f"{PATH}.performedPeriod.start")],
        ),
        (lambda r: r.pop("subject"), [("fhir-invalid", f"{PATH}.subject")]),
        (lambda r: r.update(status="bogus"), [("invalid-code", f"{PATH}.status")]),
        (lambda r: r.update(bodySite={"text": "lower back"}), [("fhir-invalid", f"{PATH}.bodySite")]),
        (lambda r: r.update(id="not an id"), [("fhir-invalid", f"{PATH}.id")]),
        (lambda r: r.update(id="p1\n"), [("fhir-invalid", f"{PATH}.id")]),  # $ would match before the newline
        (lambda r: r["performedPeriod"].update(start="2025\n"), [("fhir-invalid", f"{PATH}.performedPeriod.start")]),
        (  # Arabic-Indic digits: \d would take them, FHIR's [0-9] does not
            lambda r: r["performedPeriod"].update(start="\u0662\u0660\u0662\u0665-01"),
            [("fhir-invalid", f"{PATH}.performedPeriod.start")],
        ),
        (lambda r: r.update(resourceType="Procedur"), [("unknown-resource-type", PATH)]),
    ],
    ids=[
        "number-date",
        "impossible-date",
        "time-without-zone",
        "no-subject",
        "bad-status",
        "not-a-list",
        "bad-id",
        "id-with-final-newline",
        "year-with-final-newline",
        "year-month-in-other-digits",
        "unknown-type",
    ],
)
@pytest.mark.parametrize("level", ["fields", "full"])
def test_both_levels_reject_bad_read_elements(change: Any, expected: list[tuple[str, str]], level: str) -> None:
    resource = bb.procedure("97124", 30, body_site=("37822005", "Lower back structure"))
    change(resource)
    assert codes(validate_resource(resource, PATH, level)) == expected


def test_fields_level_carries_elements_it_does_not_read() -> None:
    """An unknown or malformed element the rules never read passes ``fields`` and fails ``full``."""
    resource = bb.procedure("97124", 30)
    resource["note"] = "should be a list of Annotation"
    assert validate_resource(resource, PATH, "fields") == []
    assert codes(validate_resource(resource, PATH, "full"))[0][0] == "fhir-invalid"


def test_fields_level_accepts_every_valid_builder_resource() -> None:
    bundle = bb.visit(bb.procedure("97124", 30))
    for i, entry in enumerate(bundle["entry"]):
        assert validate_resource(entry["resource"], f"Bundle.entry[{i}].resource", "fields") == []
