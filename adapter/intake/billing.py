"""Readers of what payer edits need: practitioners' qualifications, plans of care, devices,
sender-supplied modifiers and the year-to-date therapy amount on a Coverage."""

from __future__ import annotations

from typing import Any

from adapter.errors import Problem
from adapter.intake.references import BundleIndex, Entry
from adapter.intake.values import codings, day_of, first_day, last_day, when
from adapter.model import Coding, PlanFact, PractitionerFact

MODIFIER_URL = "https://theraclaim.org/fhir/StructureDefinition/procedure-modifier"
YEAR_TO_DATE_URL = "https://theraclaim.org/fhir/StructureDefinition/therapy-year-to-date"
PLAN_TYPES = ("ServiceRequest", "CarePlan")
PROGRESS_URL = "https://theraclaim.org/fhir/StructureDefinition/treatment-days-since-progress-report"


def read_practitioner(index: BundleIndex, entry: Entry) -> PractitionerFact:
    """Practitioner.qualification codes; a PractitionerRole adds its code and specialty codes."""
    resource = entry.resource
    found: list[Coding] = []
    practitioner = resource
    if entry.resource_type == "PractitionerRole":
        for concept in resource.get("code", []) + resource.get("specialty", []):
            found += codings(concept)
        reference = resource.get("practitioner", {}).get("reference")
        target = index.lookup(reference) if isinstance(reference, str) else None
        practitioner = target.resource if target is not None else {}
    for qualification in practitioner.get("qualification", []):
        found += codings(qualification.get("code"))
    return PractitionerFact(entry.ref, tuple(dict.fromkeys(found)))


def _targets(index: BundleIndex, references: list[Any], types: tuple[str, ...]) -> list[Entry]:
    """Entries that references point to, when they are in the Bundle and of the given types.

    Plans of care and devices are often kept outside the pushed Bundle; a reference to them that
    does not resolve is not an input error (the payer edits report a missing plan themselves).
    """
    found = []
    for reference in references:
        target = reference.get("reference") if isinstance(reference, dict) else None
        entry = index.lookup(target) if isinstance(target, str) and not target.startswith("#") else None
        if entry is not None and entry.resource_type in types:
            found.append(entry)
    return found


def plan_refs(index: BundleIndex, entry: Entry) -> list[Entry]:
    """The ServiceRequests / CarePlans in the Bundle that a resource's ``basedOn`` names."""
    return _targets(index, entry.resource.get("basedOn", []), PLAN_TYPES)


def read_plan(entry: Entry, problems: list[Problem]) -> PlanFact:
    """Category codes and the period a plan covers (CarePlan.period, ServiceRequest.occurrencePeriod)."""
    resource = entry.resource
    if entry.resource_type == "CarePlan":
        period = resource.get("period") or {}
        start = day_of(when(period.get("start"), f"{entry.path}.period.start", problems))
        end = day_of(when(period.get("end"), f"{entry.path}.period.end", problems))
    else:
        start = first_day(resource, "occurrence", entry.path, problems)
        end = last_day(resource, "occurrence", entry.path, problems)
    categories = tuple(c for concept in resource.get("category", []) for c in codings(concept))
    extensions = resource.get("extension")
    since = next(
        (
            e["valueInteger"]
            for e in (extensions if isinstance(extensions, list) else [])
            if isinstance(e, dict) and e.get("url") == PROGRESS_URL and type(e.get("valueInteger")) is int
        ),
        None,
    )
    return PlanFact(entry.ref, entry.path, entry.resource_type, resource["status"], categories, start, end, since)


def device_codes(index: BundleIndex, entry: Entry) -> tuple[Coding, ...]:
    """Procedure.usedCode codes and the Device.type of every focalDevice.manipulated in the Bundle."""
    found = [c for concept in entry.resource.get("usedCode", []) for c in codings(concept)]
    focal = [f.get("manipulated") for f in entry.resource.get("focalDevice", []) if isinstance(f, dict)]
    for device in _targets(index, focal, ("Device",)):
        found += codings(device.resource.get("type"))
    return tuple(found)


def sent_modifiers(resource: dict[str, Any]) -> tuple[str, ...]:
    """Modifiers the sender attached to a Procedure (valueCode or valueCodeableConcept)."""
    found = []
    for extension in resource.get("extension", []):
        if extension.get("url") != MODIFIER_URL:
            continue
        if isinstance(extension.get("valueCode"), str):
            found.append(extension["valueCode"].upper())
        found += [c.code.upper() for c in codings(extension.get("valueCodeableConcept"))]
    return tuple(found)  # as sent: a modifier sent twice is reported by the rules (rules/sent.py)


TREATMENT_PHASE_URL = "https://theraclaim.org/fhir/StructureDefinition/treatment-phase"


def coded_extensions(resource: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """(url, valueCode) of the Procedure extensions the rules read (treatment-phase: active | maintenance)."""
    extensions = resource.get("extension")
    return tuple(
        (e["url"], e["valueCode"])
        for e in (extensions if isinstance(extensions, list) else [])
        if isinstance(e, dict) and e.get("url") == TREATMENT_PHASE_URL and isinstance(e.get("valueCode"), str)
    )


def narrative(resource: dict[str, Any]) -> str | None:
    """Procedure.code.text, else the first Procedure.note text: the description an unlisted code needs."""
    code = resource.get("code")
    text = code.get("text") if isinstance(code, dict) else None
    if isinstance(text, str) and text.strip():
        return text.strip()
    notes = resource.get("note")
    for note in notes if isinstance(notes, list) else []:
        if isinstance(note, dict) and isinstance(note.get("text"), str) and note["text"].strip():
            return str(note["text"]).strip()
    return None


def year_to_date(resource: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    """Coverage extension: therapy amounts allowed so far this year, by threshold group (``pt-slp``, ``ot``)."""
    found = []
    for extension in resource.get("extension", []):
        if extension.get("url") != YEAR_TO_DATE_URL:
            continue
        for part in extension.get("extension", []):
            money = part.get("valueMoney") or {}
            if isinstance(part.get("url"), str) and isinstance(money.get("value"), int | float):
                found.append((part["url"], round(money["value"] * 100)))
    return tuple(found)
