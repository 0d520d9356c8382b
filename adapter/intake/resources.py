"""Readers of single FHIR resources into domain facts (used by intake/fhir.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapter.errors import Problem
from adapter.intake.billing import coded_extensions, device_codes, narrative, plan_refs, sent_modifiers, year_to_date
from adapter.intake.references import BundleIndex, Entry
from adapter.intake.values import codings, concept_text, day_of, first_day, last_day, when
from adapter.model import (
    Coding,
    ConditionFact,
    CoverageFact,
    MedicationFact,
    ObservationFact,
    Override,
    ProcedureFact,
)

PROVIDER_TYPES = ("Practitioner", "PractitionerRole")
OVERRIDE_URL = "https://theraclaim.org/fhir/StructureDefinition/contraindication-override"
UCUM_SYSTEM = "http://unitsofmeasure.org"


def read_procedure(
    index: BundleIndex, entry: Entry, problems: list[Problem], encounter_ref: str | None = None
) -> ProcedureFact:
    resource = entry.resource
    start = end = None
    service_date = None
    if "performedPeriod" in resource:
        period = resource["performedPeriod"]
        start_value = when(period.get("start"), f"{entry.path}.performedPeriod.start", problems)
        end_value = when(period.get("end"), f"{entry.path}.performedPeriod.end", problems)
        if isinstance(start_value, datetime) and isinstance(end_value, datetime):
            start, end = start_value, end_value
            if end < start:
                problems.append(
                    Problem(
                        "period-end-before-start",
                        "performedPeriod ends before it starts",
                        f"{entry.path}.performedPeriod.end",
                        "value",
                    )
                )
        if start_value is not None:
            service_date = start_value.date() if isinstance(start_value, datetime) else start_value
    elif "performedDateTime" in resource:
        performed = when(resource["performedDateTime"], f"{entry.path}.performedDateTime", problems)
        service_date = performed.date() if isinstance(performed, datetime) else performed
    performers = []
    for i, performer in enumerate(resource.get("performer", [])):
        actor = index.resolve(
            entry,
            performer.get("actor"),
            f"{entry.path}.performer[{i}].actor",
            ("Practitioner", "PractitionerRole", "Organization", "Patient", "RelatedPerson", "Device"),
            problems,
        )
        if actor is not None and actor.resource_type in PROVIDER_TYPES:
            performers.append(actor.ref)
    reasons = condition_refs(index, entry, "reasonReference", problems)
    return ProcedureFact(
        ref=entry.ref,
        path=entry.path,
        status=resource["status"],
        codes=codings(resource.get("code")),
        start=start,
        end=end,
        service_date=service_date,
        body_sites=tuple(c for site in resource.get("bodySite", []) for c in codings(site)),
        performer_refs=tuple(performers),
        reason_refs=tuple(reasons),
        overrides=overrides(resource),
        status_reason=concept_text(resource.get("statusReason")),
        plan_refs=tuple(plan.ref for plan in plan_refs(index, entry)),
        device_codes=device_codes(index, entry),
        modifiers=sent_modifiers(resource),
        description=narrative(resource),
        instant=start if start is not None else _instant(resource, entry, problems),
        extensions=coded_extensions(resource),
        encounter_ref=encounter_ref,
    )


def _instant(resource: dict[str, Any], entry: Entry, problems: list[Problem]) -> datetime | None:
    if "performedPeriod" in resource:
        value = when(resource["performedPeriod"].get("start"), f"{entry.path}.performedPeriod.start", [])
    else:
        value = when(resource.get("performedDateTime"), f"{entry.path}.performedDateTime", [])
    return value if isinstance(value, datetime) else None


def condition_refs(index: BundleIndex, entry: Entry, element: str, problems: list[Problem]) -> list[str]:
    """Resolved references of a reason-like element that point to Conditions (others are skipped)."""
    refs = []
    for i, reference in enumerate(entry.resource.get(element, [])):
        target = index.resolve(
            entry,
            reference,
            f"{entry.path}.{element}[{i}]",
            (
                "Condition",
                "Observation",
                "Procedure",
                "DiagnosticReport",
                "DocumentReference",
                "ImmunizationRecommendation",
            ),
            problems,
        )
        if target is not None and target.resource_type == "Condition":
            refs.append(target.ref)
    return refs


def read_condition(entry: Entry, problems: list[Problem]) -> ConditionFact:
    resource = entry.resource
    clinical = codings(resource.get("clinicalStatus"))
    verification = codings(resource.get("verificationStatus"))
    return ConditionFact(
        ref=entry.ref,
        path=entry.path,
        codes=codings(resource.get("code")),
        clinical_status=clinical[0].code if clinical else None,
        verification_status=verification[0].code if verification else None,
        categories=tuple(c.code for concept in resource.get("category", []) for c in codings(concept)),
        body_sites=tuple(c for site in resource.get("bodySite", []) for c in codings(site)),
        onset=first_day(resource, "onset", entry.path, problems),
        abatement=last_day(resource, "abatement", entry.path, problems),
    )


def read_medication(index: BundleIndex, entry: Entry, problems: list[Problem]) -> MedicationFact:
    """Codes from medicationCodeableConcept, or from the Medication (and its ingredients) referenced."""
    resource = entry.resource
    codes = list(codings(resource.get("medicationCodeableConcept")))
    medication = index.resolve(
        entry, resource.get("medicationReference"), f"{entry.path}.medicationReference", ("Medication",), problems
    )
    if medication is not None:
        codes += codings(medication.resource.get("code"))
        for ingredient in medication.resource.get("ingredient", []):
            codes += codings(ingredient.get("itemCodeableConcept"))
    return MedicationFact(
        ref=entry.ref,
        path=entry.path,
        resource_type=entry.resource_type,
        status=resource["status"],
        codes=tuple(codes),
        effective_start=first_day(resource, "effective", entry.path, problems)
        or day_of(when(resource.get("authoredOn"), f"{entry.path}.authoredOn", problems)),
        effective_end=last_day(resource, "effective", entry.path, problems),
    )


def read_observation(entry: Entry, problems: list[Problem]) -> ObservationFact:
    resource = entry.resource
    quantity = resource.get("valueQuantity") or {}
    unit = quantity.get("code") if quantity.get("system") == UCUM_SYSTEM else quantity.get("unit")
    value = quantity.get("value")
    effective = first_day(resource, "effective", entry.path, problems)
    if effective is None and "effectiveInstant" in resource:
        effective = day_of(when(resource["effectiveInstant"], f"{entry.path}.effectiveInstant", problems))
    return ObservationFact(
        ref=entry.ref,
        path=entry.path,
        status=resource["status"],
        codes=codings(resource.get("code")),
        value=float(value) if isinstance(value, int | float) else None,
        unit=unit,
        effective=effective,
    )


def overrides(resource: dict[str, Any]) -> tuple[Override, ...]:
    """The contraindication-override extensions of a Procedure (class and reason)."""
    found = []
    for extension in resource.get("extension", []):
        if extension.get("url") != OVERRIDE_URL:
            continue
        parts = {part.get("url"): part for part in extension.get("extension", [])}
        class_id = parts.get("class", {}).get("valueCode")
        reason = parts.get("reason", {}).get("valueString")
        if class_id and reason:
            found.append(Override(class_id, reason))
    return tuple(found)


def read_coverage(index: BundleIndex, entry: Entry) -> CoverageFact:
    resource = entry.resource
    identifiers = []
    for payor in resource.get("payor", []):
        identifier = payor.get("identifier")
        target = index.lookup(payor["reference"]) if isinstance(payor.get("reference"), str) else None
        candidates = [identifier] if identifier else []
        if target is not None:
            candidates += target.resource.get("identifier", [])
        identifiers += [Coding(i["system"], i["value"]) for i in candidates if i.get("system") and i.get("value")]
    return CoverageFact(
        ref=entry.ref,
        path=entry.path,
        status=resource["status"],
        order=resource.get("order"),
        types=codings(resource.get("type")),
        payor_identifiers=tuple(identifiers),
        year_to_date_cents=year_to_date(resource),
    )
