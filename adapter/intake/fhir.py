"""FHIR R4 Bundle (JSON) -> EncounterFacts.  Reads and checks; decides nothing.

The Bundle is validated first (every entry with fhir.resources plus the required bindings);
then each Encounter gathers its Procedures (``Procedure.encounter``), its diagnoses
(``Encounter.diagnosis``, ``Encounter.reasonReference``, ``Procedure.reasonReference``), the
patient's Conditions and active Coverages, and the billing Organization.  Every problem found
is collected with its path and raised together as one InputError.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from adapter.errors import InputError, Problem
from adapter.intake.references import BundleIndex, Entry
from adapter.intake.validation import validate_resource
from adapter.intake.wire import Limits
from adapter.model import (
    Coding,
    ConditionFact,
    CoverageFact,
    DiagnosisFact,
    EncounterFacts,
    MedicationFact,
    ObservationFact,
    Override,
    ProcedureFact,
)

BUNDLE_TYPES = frozenset({"collection", "transaction", "batch", "searchset", "message"})
PROVIDER_TYPES = ("Practitioner", "PractitionerRole")
MEDICATION_TYPES = ("MedicationStatement", "MedicationRequest")
OVERRIDE_URL = "https://theraclaim.org/fhir/StructureDefinition/contraindication-override"
UCUM_SYSTEM = "http://unitsofmeasure.org"


@dataclass(frozen=True, slots=True)
class _PatientRecords:
    """Entries about a patient, keyed by the index of the patient's entry."""

    conditions: dict[int, list[Entry]]
    coverages: dict[int, list[Entry]]
    medications: dict[int, list[Entry]]
    observations: dict[int, list[Entry]]


def read_bundle(document: dict[str, Any], limits: Limits) -> list[EncounterFacts]:
    """The facts of every Encounter in a Bundle. Raises InputError listing every problem."""
    index = _index(document, limits)
    encounters = index.of_type("Encounter")
    if not encounters:
        raise InputError([Problem("no-encounter", "the Bundle holds no Encounter", "Bundle.entry", "required")])
    problems: list[Problem] = []
    by_encounter = _group(index, "Procedure", "encounter", ("Encounter",), problems)
    by_patient = _PatientRecords(
        conditions=_group(index, "Condition", "subject", ("Patient", "Group"), problems),
        coverages=_group(index, "Coverage", "beneficiary", ("Patient",), problems),
        medications=_merge(_group(index, t, "subject", ("Patient", "Group"), problems) for t in MEDICATION_TYPES),
        observations=_group(index, "Observation", "subject", ("Patient", "Group", "Device", "Location"), problems),
    )
    facts = []
    for encounter in encounters:
        fact = _encounter(index, encounter, by_encounter, by_patient, problems)
        if fact is not None:
            facts.append(fact)
    if problems:
        raise InputError(problems)
    return facts


def _index(document: dict[str, Any], limits: Limits) -> BundleIndex:
    resource_type = document.get("resourceType")
    if resource_type != "Bundle":
        raise InputError(
            [
                Problem(
                    "not-a-bundle",
                    f"expected a Bundle, got {resource_type!r}",
                    str(resource_type or "resourceType"),
                    "invalid",
                )
            ]
        )
    raw_entries = document.get("entry", [])
    if not isinstance(raw_entries, list):
        raise InputError([Problem("fhir-invalid", "Bundle.entry must be an array", "Bundle.entry", "structure")])
    if len(raw_entries) > limits.max_entries:
        raise InputError(
            [
                Problem(
                    "too-many-entries",
                    f"the Bundle has {len(raw_entries)} entries; the limit is {limits.max_entries}",
                    "Bundle.entry",
                    "too-long",
                )
            ]
        )
    shell = {key: value for key, value in document.items() if key != "entry"}
    problems = validate_resource(shell, "Bundle")
    if document.get("type") not in BUNDLE_TYPES:
        problems.append(
            Problem(
                "unsupported-bundle-type",
                f"Bundle.type {document.get('type')!r} is not one of {', '.join(sorted(BUNDLE_TYPES))}",
                "Bundle.type",
                "not-supported",
            )
        )
    entries: list[Entry] = []
    seen_urls: dict[str, int] = {}
    for i, raw in enumerate(raw_entries):
        path = f"Bundle.entry[{i}]"
        if not isinstance(raw, dict):
            problems.append(Problem("fhir-invalid", "a Bundle entry must be an object", path, "structure"))
            continue
        full_url = raw.get("fullUrl")
        if full_url is not None and not isinstance(full_url, str):
            problems.append(Problem("fhir-invalid", "fullUrl must be a string", f"{path}.fullUrl", "structure"))
            full_url = None
        if full_url in seen_urls:
            problems.append(
                Problem(
                    "duplicate-fullurl",
                    f"fullUrl {full_url!r} repeats entry {seen_urls[full_url]}",
                    f"{path}.fullUrl",
                    "duplicate",
                )
            )
        elif full_url:
            seen_urls[full_url] = i
        resource = raw.get("resource")
        if resource is None:
            continue  # batch/transaction entries such as DELETE or GET carry no resource
        if not isinstance(resource, dict):
            problems.append(
                Problem("fhir-invalid", "entry.resource must be an object", f"{path}.resource", "structure")
            )
            continue
        problems.extend(validate_resource(resource, f"{path}.resource"))
        entries.append(Entry(i, full_url, resource))
    if problems:
        raise InputError(problems)
    return BundleIndex(entries)


def _merge(groups: Iterable[dict[int, list[Entry]]]) -> dict[int, list[Entry]]:
    merged: dict[int, list[Entry]] = defaultdict(list)
    for group in groups:
        for key, entries in group.items():
            merged[key].extend(entries)
    return merged


def _group(
    index: BundleIndex, resource_type: str, element: str, expected: tuple[str, ...], problems: list[Problem]
) -> dict[int, list[Entry]]:
    """Entries of ``resource_type`` grouped by the entry their ``element`` reference points to."""
    groups: dict[int, list[Entry]] = defaultdict(list)
    for entry in index.of_type(resource_type):
        target = index.resolve(entry, entry.resource.get(element), f"{entry.path}.{element}", expected, problems)
        if target is not None:
            groups[target.index].append(entry)
    return groups


def _encounter(
    index: BundleIndex,
    encounter: Entry,
    procedures_by_encounter: dict[int, list[Entry]],
    by_patient: _PatientRecords,
    problems: list[Problem],
) -> EncounterFacts | None:
    resource = encounter.resource
    if not isinstance((resource.get("subject") or {}).get("reference"), str):  # absent, or identifier/display only
        problems.append(
            Problem(
                "missing-patient", "the Encounter names no patient (subject)", f"{encounter.path}.subject", "required"
            )
        )
        return None
    patient = index.resolve(encounter, resource["subject"], f"{encounter.path}.subject", ("Patient",), problems)
    provider = index.resolve(
        encounter, resource.get("serviceProvider"), f"{encounter.path}.serviceProvider", ("Organization",), problems
    )
    if patient is None:
        return None
    procedures = [
        _procedure(index, p, problems)
        for p in sorted(procedures_by_encounter.get(encounter.index, []), key=lambda e: e.index)
    ]
    coverages = [
        _coverage(index, c) for c in by_patient.coverages.get(patient.index, []) if c.resource["status"] == "active"
    ]
    if not coverages:
        problems.append(
            Problem(
                "missing-coverage",
                "no active Coverage in the Bundle for the Encounter's patient",
                encounter.path,
                "required",
            )
        )
    return EncounterFacts(
        ref=encounter.ref,
        path=encounter.path,
        identity=_identity(encounter),
        status=resource["status"],
        patient_ref=patient.ref,
        billing_provider_ref=provider.ref if provider else None,
        procedures=tuple(p for p in procedures if p.status == "completed"),
        skipped_procedures=tuple(p for p in procedures if p.status != "completed"),
        diagnoses=tuple(_diagnoses(index, encounter, procedures, problems)),
        conditions=tuple(_condition(c, problems) for c in by_patient.conditions.get(patient.index, [])),
        medications=tuple(_medication(index, m, problems) for m in by_patient.medications.get(patient.index, [])),
        observations=tuple(_observation(o, problems) for o in by_patient.observations.get(patient.index, [])),
        coverages=tuple(sorted(coverages, key=lambda c: (c.order is None, c.order or 0, c.path))),
    )


def _identity(encounter: Entry) -> str:
    """Business identity first (a retried push from another engine keeps it), then the reference."""
    for identifier in encounter.resource.get("identifier", []):
        if identifier.get("system") and identifier.get("value"):
            return f"{identifier['system']}|{identifier['value']}"
    return encounter.ref


def _codings(concept: dict[str, Any] | None) -> tuple[Coding, ...]:
    if not concept:
        return ()
    return tuple(
        Coding(c["system"], c["code"], c.get("display"))
        for c in concept.get("coding", [])
        if c.get("system") and c.get("code")
    )


def _concept_text(concept: dict[str, Any] | None) -> str | None:
    if not concept:
        return None
    return concept.get("text") or next((c.get("display") for c in concept.get("coding", []) if c.get("display")), None)


def _when(value: str | None, path: str, problems: list[Problem]) -> datetime | date | None:
    """A FHIR dateTime: an aware datetime when it has a time, a date when it is a full date."""
    if value is None:
        return None
    try:
        if "T" in value:
            return datetime.fromisoformat(value)
        return date.fromisoformat(value) if len(value) == 10 else None
    except ValueError:
        problems.append(Problem("invalid-date", f"{value!r} is not a valid date/time", path, "value"))
        return None


def _procedure(index: BundleIndex, entry: Entry, problems: list[Problem]) -> ProcedureFact:
    resource = entry.resource
    start = end = None
    service_date = None
    if "performedPeriod" in resource:
        period = resource["performedPeriod"]
        start_value = _when(period.get("start"), f"{entry.path}.performedPeriod.start", problems)
        end_value = _when(period.get("end"), f"{entry.path}.performedPeriod.end", problems)
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
        performed = _when(resource["performedDateTime"], f"{entry.path}.performedDateTime", problems)
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
    reasons = _condition_refs(index, entry, "reasonReference", problems)
    return ProcedureFact(
        ref=entry.ref,
        path=entry.path,
        status=resource["status"],
        codes=_codings(resource.get("code")),
        start=start,
        end=end,
        service_date=service_date,
        body_sites=tuple(c for site in resource.get("bodySite", []) for c in _codings(site)),
        performer_refs=tuple(performers),
        reason_refs=tuple(reasons),
        overrides=_overrides(resource),
        status_reason=_concept_text(resource.get("statusReason")),
    )


def _condition_refs(index: BundleIndex, entry: Entry, element: str, problems: list[Problem]) -> list[str]:
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


def _diagnoses(
    index: BundleIndex, encounter: Entry, procedures: list[ProcedureFact], problems: list[Problem]
) -> list[DiagnosisFact]:
    ranked = []
    for i, diagnosis in enumerate(encounter.resource.get("diagnosis", [])):
        target = index.resolve(
            encounter,
            diagnosis.get("condition"),
            f"{encounter.path}.diagnosis[{i}].condition",
            ("Condition", "Procedure"),
            problems,
        )
        if target is not None and target.resource_type == "Condition":
            ranked.append((diagnosis.get("rank") or 1_000_000, i, target.ref, diagnosis.get("rank")))
    result = [DiagnosisFact(ref, "encounter-diagnosis", rank) for _, _, ref, rank in sorted(ranked)]
    result += [
        DiagnosisFact(ref, "encounter-reason") for ref in _condition_refs(index, encounter, "reasonReference", problems)
    ]
    result += [DiagnosisFact(ref, "procedure-reason") for p in procedures for ref in p.reason_refs]
    return result


def _day(value: datetime | date | None) -> date | None:
    return value.date() if isinstance(value, datetime) else value


def _first_day(resource: dict[str, Any], element: str, path: str, problems: list[Problem]) -> date | None:
    """The date of a ``<element>DateTime`` or the start of a ``<element>Period``."""
    if f"{element}DateTime" in resource:
        return _day(_when(resource[f"{element}DateTime"], f"{path}.{element}DateTime", problems))
    period = resource.get(f"{element}Period") or {}
    return _day(_when(period.get("start"), f"{path}.{element}Period.start", problems))


def _last_day(resource: dict[str, Any], element: str, path: str, problems: list[Problem]) -> date | None:
    """The date of a ``<element>DateTime`` or the end of a ``<element>Period``."""
    if f"{element}DateTime" in resource:
        return _day(_when(resource[f"{element}DateTime"], f"{path}.{element}DateTime", problems))
    period = resource.get(f"{element}Period") or {}
    return _day(_when(period.get("end"), f"{path}.{element}Period.end", problems))


def _condition(entry: Entry, problems: list[Problem]) -> ConditionFact:
    resource = entry.resource
    clinical = _codings(resource.get("clinicalStatus"))
    verification = _codings(resource.get("verificationStatus"))
    return ConditionFact(
        ref=entry.ref,
        path=entry.path,
        codes=_codings(resource.get("code")),
        clinical_status=clinical[0].code if clinical else None,
        verification_status=verification[0].code if verification else None,
        categories=tuple(c.code for concept in resource.get("category", []) for c in _codings(concept)),
        body_sites=tuple(c for site in resource.get("bodySite", []) for c in _codings(site)),
        onset=_first_day(resource, "onset", entry.path, problems),
        abatement=_last_day(resource, "abatement", entry.path, problems),
    )


def _medication(index: BundleIndex, entry: Entry, problems: list[Problem]) -> MedicationFact:
    """Codes from medicationCodeableConcept, or from the Medication (and its ingredients) referenced."""
    resource = entry.resource
    codes = list(_codings(resource.get("medicationCodeableConcept")))
    medication = index.resolve(
        entry, resource.get("medicationReference"), f"{entry.path}.medicationReference", ("Medication",), problems
    )
    if medication is not None:
        codes += _codings(medication.resource.get("code"))
        for ingredient in medication.resource.get("ingredient", []):
            codes += _codings(ingredient.get("itemCodeableConcept"))
    return MedicationFact(
        ref=entry.ref,
        path=entry.path,
        resource_type=entry.resource_type,
        status=resource["status"],
        codes=tuple(codes),
        effective_start=_first_day(resource, "effective", entry.path, problems),
        effective_end=_last_day(resource, "effective", entry.path, problems),
    )


def _observation(entry: Entry, problems: list[Problem]) -> ObservationFact:
    resource = entry.resource
    quantity = resource.get("valueQuantity") or {}
    unit = quantity.get("code") if quantity.get("system") == UCUM_SYSTEM else quantity.get("unit")
    value = quantity.get("value")
    effective = _first_day(resource, "effective", entry.path, problems)
    if effective is None and "effectiveInstant" in resource:
        effective = _day(_when(resource["effectiveInstant"], f"{entry.path}.effectiveInstant", problems))
    return ObservationFact(
        ref=entry.ref,
        path=entry.path,
        status=resource["status"],
        codes=_codings(resource.get("code")),
        value=float(value) if isinstance(value, int | float) else None,
        unit=unit,
        effective=effective,
    )


def _overrides(resource: dict[str, Any]) -> tuple[Override, ...]:
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


def _coverage(index: BundleIndex, entry: Entry) -> CoverageFact:
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
        types=_codings(resource.get("type")),
        payor_identifiers=tuple(identifiers),
    )
