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
from datetime import datetime
from typing import Any

from adapter.deadline import checkpoint
from adapter.errors import InputError, Problem
from adapter.intake.billing import plan_refs, read_plan, read_practitioner
from adapter.intake.onecall import document_is_clean
from adapter.intake.parties import read_parties
from adapter.intake.references import BundleIndex, Entry, unresolved_urns
from adapter.intake.resources import (
    condition_refs,
    read_condition,
    read_coverage,
    read_medication,
    read_observation,
    read_procedure,
)
from adapter.intake.slim import BUNDLE_TYPES
from adapter.intake.survey import Survey, survey
from adapter.intake.validation import binding_problems, validate_resource
from adapter.intake.values import codings, day_of, when
from adapter.intake.wire import Limits
from adapter.model import (
    Coding,
    ConditionFact,
    CoverageFact,
    DiagnosisFact,
    EncounterFacts,
    MedicationFact,
    ObservationFact,
    PlanFact,
    ProcedureFact,
)

MEDICATION_TYPES = ("MedicationStatement", "MedicationRequest")
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"


@dataclass(frozen=True, slots=True)
class _PatientFacts:
    conditions: tuple[ConditionFact, ...]
    medications: tuple[MedicationFact, ...]
    observations: tuple[ObservationFact, ...]
    coverages: tuple[CoverageFact, ...]  # active ones, in Coverage.order


class _Patients:
    """What the Bundle says about each patient, read once however many Encounters share it."""

    def __init__(self, index: BundleIndex, problems: list[Problem]) -> None:
        self.index, self.problems = index, problems
        self.conditions = _group(index, "Condition", "subject", ("Patient", "Group"), problems)
        self.coverages = _group(index, "Coverage", "beneficiary", ("Patient",), problems)
        self.medications = _merge(_group(index, t, "subject", ("Patient", "Group"), problems) for t in MEDICATION_TYPES)
        self.observations = _group(
            index, "Observation", "subject", ("Patient", "Group", "Device", "Location"), problems
        )
        self._read: dict[int, _PatientFacts] = {}

    def facts(self, patient: Entry) -> _PatientFacts:
        key = patient.index
        if key not in self._read:
            index, problems = self.index, self.problems
            coverages = [
                read_coverage(index, c) for c in self.coverages.get(key, []) if c.resource["status"] == "active"
            ]
            self._read[key] = _PatientFacts(
                conditions=tuple(read_condition(c, problems) for c in self.conditions.get(key, [])),
                medications=tuple(read_medication(index, m, problems) for m in self.medications.get(key, [])),
                observations=tuple(read_observation(o, problems) for o in self.observations.get(key, [])),
                coverages=tuple(sorted(coverages, key=lambda c: (c.order is None, c.order or 0, c.path))),
            )
        return self._read[key]


def read_bundle(
    document: dict[str, Any], limits: Limits, validation: str = "fields", surveyed: Survey | None = None
) -> list[EncounterFacts]:
    """The facts of every Encounter in a Bundle. Raises InputError listing every problem.

    ``validation`` is ``fields`` (the elements read, typed and checked) or ``full`` (fhir.resources).
    """
    index = _index(document, limits, validation, surveyed or survey(document, limits.max_depth))
    encounters = index.of_type("Encounter")
    if not encounters:
        raise InputError([Problem("no-encounter", "the Bundle holds no Encounter", "Bundle.entry", "required")])
    problems: list[Problem] = []
    by_encounter = _group(index, "Procedure", "encounter", ("Encounter",), problems)
    by_patient = _Patients(index, problems)
    facts = []
    for encounter in encounters:
        checkpoint()
        fact = _encounter(index, encounter, by_encounter, by_patient, problems)
        if fact is not None:
            facts.append(fact)
    if problems:
        raise InputError(problems)
    return facts


def _index(document: dict[str, Any], limits: Limits, validation: str, found_in: Survey) -> BundleIndex:
    resource_type = document.get("resourceType")
    if resource_type != "Bundle":
        raise InputError(
            [
                Problem(
                    "not-a-bundle",
                    f"expected a Bundle, got {resource_type!r}",
                    resource_type
                    if isinstance(resource_type, str) and resource_type.isidentifier()
                    else "resourceType",
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
    shape = found_in.suspect_shape
    fast = validation == "fields" and found_in.plain and not shape
    entries = _clean_entries(document, raw_entries) if fast else None
    problems: list[Problem] = []
    if entries is None:
        entries, problems = _checked_entries(document, raw_entries, validation, shape)
    full_urls = {e.full_url for e in entries if e.full_url}
    if not found_in.urn_references <= full_urls:  # else no entry can hold an unresolved one
        for entry in entries:
            problems += unresolved_urns(entry, full_urls)
    if problems:
        raise InputError(problems)
    return BundleIndex(entries)


def _clean_entries(document: dict[str, Any], raw_entries: list[Any]) -> list[Entry] | None:
    """The entries of a Bundle that one check of the whole document (onecall.document_is_clean)
    and the entry rules below find nothing wrong in; None sends it through _checked_entries."""
    if not document_is_clean(document):
        return None
    entries: list[Entry] = []
    seen_urls: set[str] = set()
    for i, raw in enumerate(raw_entries):
        checkpoint()
        full_url = raw.get("fullUrl")
        if full_url in seen_urls:
            return None
        if full_url:
            seen_urls.add(full_url)
        resource = raw.get("resource")
        if resource is not None:
            entry = Entry(i, full_url, resource)
            if binding_problems(resource, entry.path):
                return None
            entries.append(entry)
    return entries


def _checked_entries(
    document: dict[str, Any], raw_entries: list[Any], validation: str, shape: bool
) -> tuple[list[Entry], list[Problem]]:
    """The valid entries of a Bundle and every problem of the shell and of each entry, at its path."""
    shell = {key: value for key, value in document.items() if key != "entry"}
    problems = validate_resource(shell, "Bundle", validation, shape)
    bundle_type = document.get("type")
    if bundle_type is not None and not isinstance(bundle_type, str):
        if all(p.expression != "Bundle.type" for p in problems):
            problems.append(
                Problem("fhir-invalid", "Bundle.type must be a code (a string)", "Bundle.type", "structure")
            )
    elif bundle_type not in BUNDLE_TYPES:
        problems.append(
            Problem(
                "unsupported-bundle-type",
                f"Bundle.type {bundle_type!r} is not one of {', '.join(sorted(BUNDLE_TYPES))}",
                "Bundle.type",
                "not-supported",
            )
        )
    entries: list[Entry] = []
    seen_urls: dict[str, int] = {}
    for i, raw in enumerate(raw_entries):
        checkpoint()  # validating an entry is a safe point to stop a request out of time
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
        found = validate_resource(resource, f"{path}.resource", validation, shape)
        problems.extend(found)
        if not found:
            entries.append(Entry(i, full_url, resource))
    return entries, problems


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
    by_patient: _Patients,
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
    procedure_entries = sorted(procedures_by_encounter.get(encounter.index, []), key=lambda e: e.index)
    procedures = [read_procedure(index, p, problems, encounter.ref) for p in procedure_entries]
    diagnoses = _diagnoses(index, encounter, procedures, problems)
    used = procedure_entries + [e for d in diagnoses if (e := index.lookup(d.condition_ref)) is not None]
    for resource_entry in {e.index: e for e in used}.values():
        _same_patient(index, patient, resource_entry, problems)
    clinic_zone = _timezone(index, encounter, provider)
    known = by_patient.facts(patient)
    period: dict[str, Any] = resource["period"] if isinstance(resource.get("period"), dict) else {}
    started = when(period.get("start"), f"{encounter.path}.period.start", problems)
    if not known.coverages:
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
        billing_npi=_npi(provider.resource) if provider else None,
        procedures=tuple(p for p in procedures if p.status == "completed"),
        skipped_procedures=tuple(p for p in procedures if p.status != "completed"),
        diagnoses=tuple(diagnoses),
        conditions=known.conditions,
        medications=known.medications,
        observations=known.observations,
        coverages=known.coverages,
        plans=tuple(_plans(index, encounter, procedures, problems)),
        period_start=started,
        period_end=when(period.get("end"), f"{encounter.path}.period.end", problems),
        practitioners=tuple(
            read_practitioner(index, entry)
            for ref in dict.fromkeys(r for p in procedures for r in p.performer_refs)
            if (entry := index.lookup(ref)) is not None
        ),
        parties=read_parties(
            index,
            patient,
            provider,
            [r for p in procedures for r in p.performer_refs],
            [c for c in by_patient.coverages.get(patient.index, []) if c.resource["status"] == "active"],
        ),
        start_instant=started if isinstance(started, datetime) else None,
        class_code=(resource.get("class") or {}).get("code") if isinstance(resource.get("class"), dict) else None,
        location_codes=_location_codes(index, encounter),
        timezone=clinic_zone[0],
        timezone_path=clinic_zone[1],
        patient_identity=business_identity(patient.resource),
        provider_identity=business_identity(provider.resource) if provider else None,
        service_date=day_of(started),
    )


def _same_patient(index: BundleIndex, patient: Entry, entry: Entry, problems: list[Problem]) -> None:
    """A resource the Encounter's claim uses must be about the Encounter's patient (``subject``)."""
    found: list[Problem] = []
    subject = index.resolve(entry, entry.resource.get("subject"), f"{entry.path}.subject", ("Patient", "Group"), found)
    if subject is not None and subject.index != patient.index:
        found.append(
            Problem(
                "subject-mismatch",
                f"the {entry.resource_type} is about {subject.ref}, not the Encounter's patient {patient.ref}",
                f"{entry.path}.subject.reference",
                "invalid",
            )
        )
    problems += [p for p in found if p not in problems]  # a Condition's broken subject is reported once


def _plans(
    index: BundleIndex, encounter: Entry, procedures: list[ProcedureFact], problems: list[Problem]
) -> list[PlanFact]:
    """Plans of care named by the Encounter's or its Procedures' ``basedOn``, each once."""
    entries = {e.ref: e for e in plan_refs(index, encounter)}
    for procedure in procedures:
        for ref in procedure.plan_refs:
            found = index.lookup(ref)
            if found is not None:
                entries.setdefault(ref, found)
    return [read_plan(entry, problems) for entry in entries.values()]


def _npi(organization: dict[str, Any]) -> str | None:
    """The billing Organization's NPI (``http://hl7.org/fhir/sid/us-npi`` identifier), if it has one."""
    for identifier in organization.get("identifier", []):
        value = identifier.get("value") if isinstance(identifier, dict) else None
        if identifier.get("system") == NPI_SYSTEM and isinstance(value, str):
            return value
    return None


TIMEZONE_URL = "http://hl7.org/fhir/StructureDefinition/timezone"


def _location_codes(index: BundleIndex, encounter: Entry) -> tuple[Coding, ...]:
    found: list[Coding] = []
    for entry in _locations(index, encounter):
        types = entry.resource.get("type")
        for concept in [*(types if isinstance(types, list) else []), entry.resource.get("physicalType")]:
            found += codings(concept) if isinstance(concept, dict) else []
    return tuple(dict.fromkeys(found))


def _locations(index: BundleIndex, encounter: Entry) -> list[Entry]:
    result = []
    locations = encounter.resource.get("location")
    for location in locations if isinstance(locations, list) else []:
        reference = (location.get("location") or {}).get("reference") if isinstance(location, dict) else None
        found = index.lookup(reference) if isinstance(reference, str) else None
        if found is not None and found.resource_type == "Location":
            result.append(found)
    return result


def _timezone(index: BundleIndex, encounter: Entry, provider: Entry | None) -> tuple[str | None, str | None]:
    """The clinic's IANA time zone: the FHIR timezone extension on a Location of the Encounter, else on its
    serviceProvider Organization, and where it was read (None, None when neither has one)."""
    holders = [(found, f"{found.path}.extension") for found in _locations(index, encounter)]
    if provider is not None:
        holders.append((provider, f"{provider.path}.extension"))
    for holder, path in holders:
        extensions = holder.resource.get("extension")
        for extension in extensions if isinstance(extensions, list) else []:
            if isinstance(extension, dict) and extension.get("url") == TIMEZONE_URL:
                value = extension.get("valueCode")
                if isinstance(value, str):
                    return value, path
    return None, None


def business_identity(resource: dict[str, Any]) -> str | None:
    """The first identifier with a system and a value, as ``system|value``."""
    identifiers = resource.get("identifier")
    for identifier in identifiers if isinstance(identifiers, list) else []:
        if isinstance(identifier, dict) and identifier.get("system") and identifier.get("value"):
            return f"{identifier['system']}|{identifier['value']}"
    return None


def _identity(encounter: Entry) -> str:
    """Business identity first (a retried push from another engine keeps it), then the reference."""
    return business_identity(encounter.resource) or encounter.ref


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
        DiagnosisFact(ref, "encounter-reason") for ref in condition_refs(index, encounter, "reasonReference", problems)
    ]
    result += [DiagnosisFact(ref, "procedure-reason") for p in procedures for ref in p.reason_refs]
    return result
