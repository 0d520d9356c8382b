"""A parsed DFT^P03 / P11 -> the FHIR R4 Bundle (collection) the FHIR intake reads.

The field-by-field mapping is documented in ``mappings/hl7v2/dft.yaml``.  Every entry remembers
the segment (and, per element, the field) it came from, so that a problem the FHIR intake or the
rules report at ``Bundle.entry[5].resource.performedPeriod`` is also told at ``FT1[2]-4``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, tzinfo
from typing import Any

from adapter.errors import Problem
from adapter.intake.hl7v2.datatypes import (
    Instant,
    authority_system,
    concept,
    human_name,
    identifier,
    plus_minutes,
    practitioner,
    read_time,
    resource_id,
)
from adapter.intake.hl7v2.er7 import Location, Parsed, Seg, V2Error, problem
from adapter.intake.hl7v2.mapping import Hl7v2Mapping

MODIFIER_URL = "https://theraclaim.org/fhir/StructureDefinition/procedure-modifier"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
SOPT = "https://nahdo.org/sopt"
ENTRY = re.compile(r"^Bundle\.entry\[(\d+)\]\.resource\.?(.*)$")
PARTICIPANTS = ((7, "ATND"), (8, "REF"), (52, "PART"))

# Where an element of an entry was sent: a Location, or the number of a field of the entry's own segment
# (most are; their Locations are made only for the few elements an issue names).
Element = Location | int
PATIENT_ELEMENTS: Mapping[str, Element] = {"identifier": 3, "name": 5, "birthDate": 7, "gender": 8, "address": 11}
COVERAGE_ELEMENTS: Mapping[str, Element] = {"type": 15, "payor": 3, "subscriberId": 36, "period": 12, "class": 2}
CONDITION_ELEMENTS: Mapping[str, Element] = {"code": 3}
ENCOUNTER_ELEMENTS: Mapping[str, Element] = {"class": 2, "identifier": 19, "period": 44, "participant": 7}


@dataclass(slots=True)
class Charge:
    """One FT1 as the sender billed it, to compare with the units the rules compute (a value, though not
    frozen: see er7.Location)."""

    location: Location
    system: str
    code: str
    day: str | None  # the date of service, YYYY-MM-DD
    quantity: int | None


@dataclass
class Converted:
    bundle: dict[str, Any]
    charges: list[Charge]
    ignored: list[str]
    origins: list[tuple[Location, Mapping[str, Element]]] = field(default_factory=list)

    def locate(self, expression: str | None) -> Location | None:
        """The HL7 location of a Bundle path (the longest element prefix known for that entry)."""
        match = ENTRY.match(expression or "")
        if match is None or int(match.group(1)) >= len(self.origins):
            return None
        segment, elements = self.origins[int(match.group(1))]
        path = match.group(2)
        for prefix in sorted(elements, key=len, reverse=True):
            if path.startswith(prefix):
                found = elements[prefix]
                return segment.at(found) if isinstance(found, int) else found
        return segment


class _Builder:
    def __init__(self, parsed: Parsed, mapping: Hl7v2Mapping, tz: tzinfo) -> None:
        self.parsed, self.mapping, self.tz = parsed, mapping, tz
        self.entries: list[dict[str, Any]] = []
        self.origins: list[tuple[Location, Mapping[str, Element]]] = []
        self.problems: list[Problem] = []
        self.seen: dict[str, str] = {}
        self.charges: list[Charge] = []
        self.day_cursor: dict[date, datetime] = {}
        self.people: dict[str, str | None] = {}  # an XCN as sent -> its Practitioner (where that is one resource)

    def add(self, resource: dict[str, Any], origin: Location, elements: Mapping[str, Element] | None = None) -> str:
        reference = f"{resource['resourceType']}/{resource['id']}"
        if reference not in self.seen:
            self.seen[reference] = reference
            self.entries.append({"fullUrl": f"https://theraclaim.org/fhir/{reference}", "resource": resource})
            self.origins.append((origin, elements or {}))
        return reference

    def required(self, seg: Seg | None, segment_id: str, field_no: int | None, what: str) -> bool:
        if seg is not None and (field_no is None or seg.value(field_no)):
            return True
        where = Location(segment_id, 1, field_no) if seg is None else seg.at(field_no or 1)
        self.problems.append(problem(f"hl7v2-missing-{what}", f"{where} ({what}) is required", where, "required"))
        return False

    def time(self, seg: Seg, field_no: int, component: int = 1) -> Instant | None:
        value = seg.value(field_no, component)
        if not value:
            return None
        instant = read_time(value, self.tz)
        if instant is None:
            self.problems.append(
                problem(
                    "hl7v2-invalid-time",
                    f"{value!r} is not an HL7 date/time (YYYYMMDD[HHMM[SS]][+ZZZZ])",
                    seg.at(field_no, component),
                    "value",
                )
            )
        return instant

    def patient(self, pid: Seg) -> str:
        mapping = self.mapping
        identifiers = [
            identifier(pid, 3, r, mapping, f"{mapping.identifier_system_base}/patient") for r in pid.repetitions(3)
        ]
        resource: dict[str, Any] = {
            "resourceType": "Patient",
            "id": resource_id("Patient", identifiers[0]["system"], identifiers[0]["value"]),
            "identifier": identifiers,
        }
        name = human_name(*pid.components(5, count=3))
        if name:
            resource["name"] = [name]
        born = self.time(pid, 7)
        if born:
            resource["birthDate"] = born.day.isoformat()
        sex = pid.value(8)
        if sex:
            if sex.upper() in mapping.sex:
                resource["gender"] = mapping.sex[sex.upper()]
            else:
                self.problems.append(
                    problem("hl7v2-unknown-sex", f"PID-8 {sex!r} is not in table 0001", pid.at(8), "code-invalid")
                )
        street, other, city, state, postal_code, country = pid.components(11, count=6)
        address: dict[str, Any] = {
            k: v for k, v in (("city", city), ("state", state), ("postalCode", postal_code), ("country", country)) if v
        }
        lines = [v for v in (street, other) if v]
        if lines:
            address = {"line": lines} | address
        if address:
            resource["address"] = [address]
        return self.add(resource, pid.location, PATIENT_ELEMENTS)

    def organization(self) -> str | None:
        msh = self.parsed.segments[0]
        name, universal, kind = msh.components(4, count=3)
        if not (name or universal):
            return None
        resource: dict[str, Any] = {"resourceType": "Organization", "id": resource_id("Organization", name, universal)}
        system = authority_system(["", universal, kind], self.mapping)
        if system:
            resource["identifier"] = [{"system": system, "value": universal}]
        if name:
            resource["name"] = name
        return self.add(resource, msh.at(4))

    def provider_types(self) -> None:
        """ROL-9 / PRT-6 provider types as the qualification of the Practitioner the segment's person is."""
        types = self.mapping.provider_types
        sent = [(seg, fields) for segment_id, fields in types.items() for seg in self.parsed.all(segment_id)]
        if not sent:
            return
        practitioners = {
            entry["resource"]["id"]: entry["resource"]
            for entry in self.entries
            if entry["resource"]["resourceType"] == "Practitioner"
        }
        for seg, (person_field, type_field) in sent:
            person = practitioner(seg, person_field, 1, self.mapping)
            kind = concept(seg, type_field, 1, self.mapping)
            target = practitioners.get(person["id"]) if person and "identifier" in person else None
            if target is not None and kind is not None:
                qualifications = target.setdefault("qualification", [])
                if {"code": kind} not in qualifications:
                    qualifications.append({"code": kind})

    def person(self, seg: Seg, field_no: int) -> str | None:
        sent = seg.field_text(field_no)
        if sent in self.people:
            return self.people[sent]
        found = practitioner(seg, field_no, 1, self.mapping)
        reference = self.add(found, seg.at(field_no)) if found else None
        if found is None or "identifier" in found:  # else its id is made from where it was sent
            self.people[sent] = reference
        return reference

    def conditions(self, patient: str) -> list[tuple[str, Seg, str]]:
        """The DG1 Conditions: reference, segment, code."""
        made = []
        for dg1 in self.parsed.all("DG1"):
            code = concept(dg1, 3, 1, self.mapping, legacy=dg1.value(2))
            if code is None:
                self.required(dg1, "DG1", 3, "diagnosis-code")
                continue
            coding = code["coding"][0]
            description = dg1.value(4)
            if not coding.get("display") and description:
                coding["display"] = description
            resource = {
                "resourceType": "Condition",
                "id": resource_id("Condition", patient, coding["system"], coding["code"]),
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                "code": "encounter-diagnosis",
                            }
                        ]
                    }
                ],
                "code": code,
                "subject": {"reference": patient},
            }
            made.append((self.add(resource, dg1.location, CONDITION_ELEMENTS), dg1, coding["code"]))
        return made

    def coverages(self, patient: str) -> None:
        segments = self.parsed.segments
        for position, in1 in enumerate(segments):
            if in1.id != "IN1":
                continue
            in2 = next((s for s in segments[position + 1 : position + 2] if s.id == "IN2"), None)
            payor: dict[str, Any] = {}
            company, company_name = in1.value(3), in1.value(4)
            if company:
                payor["identifier"] = identifier(in1, 3, 1, self.mapping, self.mapping.insurance_company_system)
                payor["identifier"].pop("type", None)
            if company_name:
                payor["display"] = company_name
            if not payor:
                self.required(in1, "IN1", 3, "insurance-company")
                continue
            plan_id, plan_name = in1.components(2, count=2)
            subscriber = in1.value(36) or in1.value(49) or (in2.value(8) if in2 else "")
            resource: dict[str, Any] = {
                "resourceType": "Coverage",
                "id": resource_id("Coverage", patient, company, plan_id, subscriber),
                "status": "active",
                "beneficiary": {"reference": patient},
                "payor": [payor],
            }
            plan_type = in1.value(15).upper()
            if plan_type:
                sopt = self.mapping.plan_type.get(plan_type)
                resource["type"] = (
                    {"coding": [{"system": SOPT, "code": sopt}], "text": plan_type} if sopt else {"text": plan_type}
                )
            if subscriber:
                resource["subscriberId"] = subscriber
            start, end = self.time(in1, 12), self.time(in1, 13)
            if start or end:
                resource["period"] = {k: v.day.isoformat() for k, v in (("start", start), ("end", end)) if v}
            if plan_id:
                plan = {
                    "type": {
                        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}]
                    },
                    "value": plan_id,
                }
                if plan_name:
                    plan["name"] = plan_name
                resource["class"] = [plan]
            self.add(resource, in1.location, COVERAGE_ELEMENTS)

    def procedure(self, ft1: Seg, group: list[Seg], context: dict[str, Any]) -> dict[str, Any] | None:
        mapping, pr1 = self.mapping, next((s for s in group if s.id == "PR1"), None)
        transaction_type = ft1.value(6)
        if transaction_type.upper() not in mapping.charge_types:
            self.problems.append(
                problem(
                    "hl7v2-not-a-charge",
                    f"FT1-6 transaction type {transaction_type!r} is not a "
                    f"charge ({mapping.charge_types}); credits and payments are not claimed",
                    ft1.at(6),
                    "code-invalid",
                )
            )
            return None
        default = mapping.default_procedure_system
        code_field = 25 if ft1.value(25) else 7
        code = concept(ft1, code_field, 1, mapping, default=default)
        code_at: Element = code_field
        if code is None and pr1 is not None:
            code, code_at = concept(pr1, 3, 1, mapping, legacy=pr1.value(2), default=default), pr1.at(3)
        if code is None:
            self.required(ft1, "FT1", 7, "transaction-code")
            return None
        if not self.required(ft1, "FT1", 4, "transaction-date"):
            return None
        resource: dict[str, Any] = {
            "resourceType": "Procedure",
            "id": resource_id("Procedure", context["encounter_id"], ft1.value(1) or str(ft1.location.occurrence)),
            "status": "completed",
            "code": code,
            "subject": {"reference": context["patient"]},
            "encounter": {"reference": context["encounter"]},
        }
        performed_at = self.timing(ft1, group, resource)
        performer = None
        for seg, field_no in ((ft1, 20), (pr1, 12), (context.get("pv1"), 7)):
            performer = self.person(seg, field_no) if seg is not None else None
            if performer:
                break
        if performer:
            resource["performer"] = [{"actor": {"reference": performer}}]
        modifiers = [ft1.value(26, 1, r) for r in ft1.repetitions(26)]
        if modifiers:
            resource["extension"] = [{"url": MODIFIER_URL, "valueCode": m} for m in modifiers]
        reasons = [ref for r in ft1.repetitions(19) if (ref := self.reason(ft1, r, context)) is not None]
        if reasons:
            resource["reasonReference"] = [{"reference": r} for r in reasons]
        elements = {
            "code": code_at,
            "performed": performed_at,
            "performer": 20,
            "extension": 26,
            "reasonReference": 19,
            "status": 6,
        }
        self.add(resource, ft1.location, elements)
        self.charges.append(self.charge(ft1, code, resource))
        return resource

    def timing(self, ft1: Seg, group: list[Seg], resource: dict[str, Any]) -> Element:
        """performed[x]: PR1-7 minutes from PR1-5 (else FT1-4.1), else the FT1-4 range, else FT1-4 alone."""
        start, end = self.time(ft1, 4, 1), self.time(ft1, 4, 2)
        minutes, pr1_start = None, None
        minutes_at: Element = 4  # FT1-4, until a PR1 gives minutes
        for pr1, sent in ((s, s.value(7)) for s in group if s.id == "PR1"):
            if not sent:
                continue
            try:
                minutes = (minutes or 0) + int(sent)
            except ValueError:
                self.problems.append(
                    problem(
                        "hl7v2-invalid-minutes",
                        f"PR1-7 {sent!r} is not a whole number of minutes",
                        pr1.at(7),
                        "value",
                    )
                )
                return pr1.at(7)
            minutes_at = pr1.at(7) if isinstance(minutes_at, int) else minutes_at  # the first PR1 with minutes
            pr1_start = pr1_start or self.time(pr1, 5)
        if minutes is not None and start is not None:
            anchor = pr1_start if pr1_start and pr1_start.moment else start if start.moment else self.next_slot(start)
            finish = plus_minutes(anchor, minutes)
            resource["performedPeriod"] = {"start": anchor.text, "end": finish.text}
            if finish.moment is not None and not (start.moment or (pr1_start and pr1_start.moment)):
                self.day_cursor[anchor.day] = finish.moment
            return minutes_at
        if start is not None and end is not None and start.moment and end.moment:
            resource["performedPeriod"] = {"start": start.text, "end": end.text}
        elif start is not None:
            resource["performedDateTime"] = start.text
        return 4

    def next_slot(self, day: Instant) -> Instant:
        """No time was sent (PR1-5 and FT1-4 are dates): minutes are laid end to end from the day's start."""
        moment = self.day_cursor.get(day.day) or datetime.combine(day.day, time(0), self.tz)
        return Instant(moment.isoformat(), moment.date(), moment)

    def reason(self, ft1: Seg, repetition: int, context: dict[str, Any]) -> str | None:
        code = concept(ft1, 19, repetition, self.mapping)
        if code is None:  # a diagnosis named by its text only ("^Low back pain"): nothing to bill it with
            where = ft1.at(19, 1, repetition)
            self.problems.append(
                problem("hl7v2-missing-diagnosis-code", f"{where} (diagnosis code) is required", where, "required")
            )
            return None
        coding = code["coding"][0]
        for reference, _, condition_code in context["conditions"]:
            if condition_code == coding["code"]:
                return str(reference)
        resource = {
            "resourceType": "Condition",
            "id": resource_id("Condition", context["patient"], coding["system"], coding["code"]),
            "code": code,
            "subject": {"reference": context["patient"]},
        }
        return self.add(resource, ft1.at(19, None, repetition), {"code": ft1.at(19, None, repetition)})

    def charge(self, ft1: Seg, code: dict[str, Any], resource: dict[str, Any]) -> Charge:
        quantity, units = None, ft1.value(10)
        if units:
            try:
                quantity = int(float(units))
            except ValueError:
                self.problems.append(
                    problem("hl7v2-invalid-quantity", f"FT1-10 {units!r} is not a number", ft1.at(10), "value")
                )
        start = (resource.get("performedPeriod") or {}).get("start") or resource.get("performedDateTime")
        day = start[:10] if isinstance(start, str) else None
        coding = code["coding"][0]
        return Charge(ft1.location, coding["system"], coding["code"], day, quantity)

    def encounter(self, pv1: Seg, patient: str, organization: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
        system = authority_system(pv1.subcomponents(19, 4, count=3), self.mapping) or self.mapping.visit_number_system
        visit = pv1.value(19)
        resource: dict[str, Any] = {
            "resourceType": "Encounter",
            "id": resource_id("Encounter", system, visit),
            "identifier": [{"system": system, "value": visit}],
            "status": "finished",
            "subject": {"reference": patient},
        }
        sent_class = pv1.value(2)
        patient_class = sent_class.upper()
        if patient_class not in self.mapping.patient_class:
            self.problems.append(
                problem(
                    "hl7v2-unknown-patient-class",
                    f"PV1-2 patient class {sent_class!r} is not in table 0004",
                    pv1.at(2),
                    "required" if not patient_class else "code-invalid",
                )
            )
        resource["class"] = {"system": ACT_CODE, "code": self.mapping.patient_class.get(patient_class, "AMB")}
        if organization:
            resource["serviceProvider"] = {"reference": organization}
        participants = []
        for field_no, role in PARTICIPANTS:
            person = self.person(pv1, field_no)
            if person:
                participants.append(
                    {
                        "type": [
                            {
                                "coding": [
                                    {
                                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                        "code": role,
                                    }
                                ]
                            }
                        ],
                        "individual": {"reference": person},
                    }
                )
        if participants:
            resource["participant"] = participants
        context = {
            "encounter_id": resource["id"],
            "encounter": f"Encounter/{resource['id']}",
            "patient": patient,
            "pv1": pv1,
        }
        return resource, context


def _period(pv1: Seg, builder: _Builder, procedures: list[dict[str, Any]]) -> dict[str, str]:
    admit, discharge = builder.time(pv1, 44), builder.time(pv1, 45)
    starts = [p.get("performedPeriod", {}).get("start") or p.get("performedDateTime") for p in procedures]
    ends = [p.get("performedPeriod", {}).get("end") or p.get("performedDateTime") for p in procedures]
    period = {}
    start = admit.text if admit else min((s for s in starts if s), default=None)
    end = discharge.text if discharge else max((e for e in ends if e), default=None)
    if start:
        period["start"] = start
    if end and (admit is None) == (discharge is None) and (end[:10] >= (start or "")[:10]):
        period["end"] = end
    return period


def to_bundle(parsed: Parsed, mapping: Hl7v2Mapping, tz: tzinfo) -> Converted:
    """Map the message; problems of the message itself (at HL7 locations) raise V2Error (AE)."""
    builder = _Builder(parsed, mapping, tz)
    pid, pv1 = parsed.first("PID"), parsed.first("PV1")
    present = (
        builder.required(pid, "PID", 3, "patient-identifier"),
        builder.required(pv1, "PV1", 19, "visit-number"),
        builder.required(parsed.first("FT1"), "FT1", None, "financial-transaction"),
    )
    if not all(present):
        raise V2Error(builder.problems)
    assert pid is not None and pv1 is not None
    patient = builder.patient(pid)
    organization = builder.organization()
    builder.coverages(patient)
    conditions = builder.conditions(patient)
    encounter, context = builder.encounter(pv1, patient, organization)
    context["conditions"] = conditions
    procedures = []
    segments = parsed.segments
    for position, ft1 in enumerate(segments):
        if ft1.id != "FT1":
            continue
        group = []
        for seg in segments[position + 1 :]:
            if seg.id in ("FT1", "DG1", "IN1"):
                break
            group.append(seg)
        made = builder.procedure(ft1, group, context)
        if made is not None:
            procedures.append(made)
    period = _period(pv1, builder, procedures)
    if period:
        encounter["period"] = period
    if conditions:
        encounter["diagnosis"] = [
            _diagnosis(reference, dg1, i, mapping) for i, (reference, dg1, _) in enumerate(conditions, start=1)
        ]
    elements = dict(ENCOUNTER_ELEMENTS)
    elements |= {f"diagnosis[{i}]": dg1.at(3) for i, (_, dg1, _) in enumerate(conditions)}
    elements["diagnosis"] = Location("DG1", 1)
    builder.add(encounter, pv1.location, elements)
    builder.provider_types()
    if builder.problems:
        raise V2Error(builder.problems)
    known = {"MSH", "PID", "PV1", "FT1", "PR1", "DG1", "IN1", "IN2", *mapping.provider_types}
    ignored = sorted(segment_id for segment_id in parsed.by_id if segment_id not in known)
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": builder.entries}
    return Converted(bundle, builder.charges, ignored, builder.origins)


def _diagnosis(reference: str, dg1: Seg, position: int, mapping: Hl7v2Mapping) -> dict[str, Any]:
    found: dict[str, Any] = {"condition": {"reference": reference}, "rank": _rank(dg1, position)}
    role = mapping.diagnosis_type.get(dg1.value(6).upper())
    if role is not None:
        found["use"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/diagnosis-role", "code": role}]}
    return found


def _rank(dg1: Seg, position: int) -> int:
    priority = dg1.value(15)
    return int(priority) if priority.isdigit() and int(priority) > 0 else position
