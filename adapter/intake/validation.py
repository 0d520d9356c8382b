"""Validation of Bundle entries at one of two levels, plus the required code bindings.

``fields`` (default): the elements the rules read, typed and checked (intake/slim.py).
``full``: every element with fhir.resources (R4B, identical to R4 for the resources used here).
Both then check the required code bindings that fhir.resources does not enforce.  Every problem
is collected with its FHIRPath location, so a sender sees all of them at once.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from adapter.errors import Problem
from adapter.intake.bindings import code_binding_problems
from adapter.intake.shape import shape_problems
from adapter.intake.slim import slim_errors

# Required bindings of the elements the adapter reads (FHIR R4 value sets).
REQUIRED_CODES: dict[tuple[str, str], frozenset[str]] = {
    ("Encounter", "status"): frozenset(
        "planned arrived triaged in-progress onleave finished cancelled entered-in-error unknown".split()
    ),
    ("Procedure", "status"): frozenset(
        ["preparation", "in-progress", "not-done", "on-hold", "stopped", "completed", "entered-in-error", "unknown"]
    ),
    ("Coverage", "status"): frozenset(["active", "cancelled", "draft", "entered-in-error"]),
    ("MedicationStatement", "status"): frozenset(
        "active completed entered-in-error intended stopped on-hold unknown not-taken".split()
    ),
    ("MedicationRequest", "status"): frozenset(
        "active on-hold cancelled completed entered-in-error stopped draft unknown".split()
    ),
    ("Observation", "status"): frozenset(
        "registered preliminary final amended corrected cancelled entered-in-error unknown".split()
    ),
    ("ServiceRequest", "status"): frozenset("draft active on-hold revoked completed entered-in-error unknown".split()),
    ("CarePlan", "status"): frozenset("draft active on-hold revoked completed entered-in-error unknown".split()),
    ("Condition", "clinicalStatus"): frozenset("active recurrence relapse inactive remission resolved".split()),
    ("Condition", "verificationStatus"): frozenset(
        ["unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error"]
    ),
}
# the same, by resource type: binding_problems runs for every entry
_REQUIRED_OF = {t: [(e, codes) for (rt, e), codes in REQUIRED_CODES.items() if rt == t] for t, _ in REQUIRED_CODES}
CODEABLE_SYSTEMS = {
    "clinicalStatus": "http://terminology.hl7.org/CodeSystem/condition-clinical",
    "verificationStatus": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
}


def fhirpath(base: str, loc: tuple[int | str, ...]) -> str:
    path = base
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


VALIDATION_LEVELS = ("fields", "full")


def validate_resource(resource: dict[str, Any], path: str, level: str = "full", shape: bool = True) -> list[Problem]:
    """Problems of one resource at the given level, then the required bindings.

    ``full`` runs the ``fields`` checks too: fhir.resources coerces some values (a number where a
    dateTime belongs), and the readers rely on the types the ``fields`` models guarantee.
    ``shape=False`` skips the shape walk, for a resource a survey (intake/survey.py) found clean.
    """
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        return [Problem("missing-resource-type", "resource has no resourceType", path, "required")]
    errors = slim_errors(resource)
    if errors is None:
        return [Problem("unknown-resource-type", f"{resource_type!r} is not a FHIR R4 resource type", path)]
    problems = shape_problems(resource, path) if shape else []
    reported = {p.expression for p in problems}
    problems += [
        Problem("fhir-invalid", f"{resource_type}: {message}", expression, "structure")
        for loc, message in errors
        if (expression := fhirpath(path, loc)) not in reported
    ]
    if level == "full":  # every other element too, each path reported once
        reported = {p.expression for p in problems}
        problems += [p for p in _full_problems(resource, resource_type, path) if p.expression not in reported]
    problems += binding_problems(resource, path)
    if level == "full":  # the required binding of every code element, at any depth
        reported = {p.expression for p in problems}
        problems += [p for p in code_binding_problems(resource, path) if p.expression not in reported]
    return problems


def _full_problems(resource: dict[str, Any], resource_type: str, path: str) -> list[Problem]:
    try:
        model = get_fhir_model_class(resource_type)
    except (KeyError, ValueError):
        return [Problem("unknown-resource-type", f"{resource_type!r} has no FHIR R4B model to validate it", path)]
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        return [
            Problem(
                "fhir-invalid", f"{resource_type}: {error['msg']}", fhirpath(path, tuple(error["loc"])), "structure"
            )
            for error in exc.errors()
        ]
    return []


def binding_problems(resource: dict[str, Any], path: str) -> list[Problem]:
    problems = []
    for element, allowed in _REQUIRED_OF.get(resource["resourceType"], ()):
        if element not in resource:
            continue
        value = resource[element]
        if element in CODEABLE_SYSTEMS:
            system = CODEABLE_SYSTEMS[element]
            codings = value.get("coding") if isinstance(value, dict) else None
            for i, coding in enumerate(codings if isinstance(codings, list) else []):
                if not isinstance(coding, dict) or coding.get("system") != system:
                    continue
                code = coding.get("code")
                if isinstance(code, str) and code not in allowed:  # a non-string is a structure problem
                    problems.append(_bad_code(f"{path}.{element}.coding[{i}].code", code, allowed))
        elif isinstance(value, str) and value not in allowed:  # a non-string is already a structure problem
            problems.append(_bad_code(f"{path}.{element}", value, allowed))
    return problems


def _bad_code(expression: str, value: Any, allowed: frozenset[str]) -> Problem:
    return Problem(
        "invalid-code",
        f"{value!r} is not in the required value set ({', '.join(sorted(allowed))})",
        expression,
        "code-invalid",
    )
