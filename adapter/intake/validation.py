"""Structural validation of Bundle entries with fhir.resources (R4B, identical to R4 here),
plus the required code bindings that fhir.resources does not enforce.

Every problem is collected with its FHIRPath location, so a sender sees all of them at once.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from adapter.errors import Problem

# Required bindings of the elements the adapter reads (FHIR R4 value sets).
REQUIRED_CODES: dict[tuple[str, str], frozenset[str]] = {
    ("Encounter", "status"): frozenset(
        "planned arrived triaged in-progress onleave finished cancelled entered-in-error unknown".split()
    ),
    ("Procedure", "status"): frozenset(
        ["preparation", "in-progress", "not-done", "on-hold", "stopped", "completed", "entered-in-error", "unknown"]
    ),
    ("Coverage", "status"): frozenset(["active", "cancelled", "draft", "entered-in-error"]),
    ("Condition", "clinicalStatus"): frozenset("active recurrence relapse inactive remission resolved".split()),
    ("Condition", "verificationStatus"): frozenset(
        ["unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error"]
    ),
}
CODEABLE_SYSTEMS = {
    "clinicalStatus": "http://terminology.hl7.org/CodeSystem/condition-clinical",
    "verificationStatus": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
}


def fhirpath(base: str, loc: tuple[int | str, ...]) -> str:
    path = base
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def validate_resource(resource: dict[str, Any], path: str) -> list[Problem]:
    """Problems of one resource: fhir.resources' structural checks, then the required bindings."""
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        return [Problem("missing-resource-type", "resource has no resourceType", path, "required")]
    try:
        model = get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        return [Problem("unknown-resource-type", f"{resource_type!r} is not a FHIR R4 resource type", path)]
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        return [
            Problem(
                "fhir-invalid", f"{resource_type}: {error['msg']}", fhirpath(path, tuple(error["loc"])), "structure"
            )
            for error in exc.errors()
        ]
    return binding_problems(resource, path)


def binding_problems(resource: dict[str, Any], path: str) -> list[Problem]:
    problems = []
    resource_type = resource["resourceType"]
    for (rtype, element), allowed in REQUIRED_CODES.items():
        if rtype != resource_type or element not in resource:
            continue
        value = resource[element]
        if element in CODEABLE_SYSTEMS:
            system = CODEABLE_SYSTEMS[element]
            for i, coding in enumerate(value.get("coding", [])):
                if coding.get("system") == system and coding.get("code") not in allowed:
                    problems.append(_bad_code(f"{path}.{element}.coding[{i}].code", coding.get("code"), allowed))
        elif value not in allowed:
            problems.append(_bad_code(f"{path}.{element}", value, allowed))
    return problems


def _bad_code(expression: str, value: Any, allowed: frozenset[str]) -> Problem:
    return Problem(
        "invalid-code",
        f"{value!r} is not in the required value set ({', '.join(sorted(allowed))})",
        expression,
        "code-invalid",
    )
