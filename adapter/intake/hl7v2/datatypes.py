"""HL7 v2 data types read into FHIR values: DTM / DR times, CX identifiers, XPN names, XCN providers."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Any

from adapter.digest import name_uuid
from adapter.intake.hl7v2.er7 import Seg
from adapter.intake.hl7v2.mapping import Hl7v2Mapping

DTM = re.compile(
    r"^([0-9]{4})([0-9]{2})?([0-9]{2})?(?:([0-9]{2})([0-9]{2})?([0-9]{2})?(?:\.([0-9]{1,4}))?)?([+-][0-9]{4})?\Z"
)
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
NPI_OID = "2.16.840.1.113883.4.6"
ID_NAMESPACE = uuid.UUID("5f0c9f7e-1d7b-4f55-9f0e-2b3f4a6c8d21").bytes


def resource_id(*parts: str) -> str:
    """A stable FHIR id for a resource made from a message, derived from what identifies it."""
    return name_uuid(ID_NAMESPACE, "|".join(parts))


@dataclass(slots=True)
class Instant:
    """An HL7 DTM as FHIR: ``text`` is a date or an aware date-time; ``moment`` is set when a time was given.
    A value, though not frozen (see er7.Location)."""

    text: str
    day: date
    moment: datetime | None


@lru_cache(maxsize=64)
def _offset_zone(offset: str) -> tzinfo | None:
    """The fixed zone of a DTM's ``+/-ZZZZ`` (raises ValueError past 23:59); strptime is slow, senders use few."""
    return datetime.strptime(offset, "%z").tzinfo


def read_time(value: str, tz: tzinfo) -> Instant | None:
    """DTM ``YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]`` to the day at least (a time without an offset is in
    ``tz``); None where ``value`` is not one."""
    match = DTM.match(value)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    if day is None:
        return None
    try:
        if hour is None:
            when_day = date(int(year), int(month), int(day))
            return Instant(when_day.isoformat(), when_day, None)
        zone = tz if offset is None else _offset_zone(offset)
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute or 0),
            int(second or 0),
            int(fraction.ljust(6, "0")) if fraction else 0,
            tzinfo=zone,
        )
    except ValueError:
        return None
    return Instant(moment.isoformat(), moment.date(), moment)


def plus_minutes(start: Instant, minutes: int) -> Instant:
    assert start.moment is not None
    end = start.moment + timedelta(minutes=minutes)
    return Instant(end.isoformat(), end.date(), end)


def authority_system(hd: list[str], mapping: Hl7v2Mapping) -> str | None:
    """An HD (assigning authority: namespace, universal id, its type) as an identifier system: an ISO OID,
    else a namespace under the base."""
    namespace, universal, universal_type = hd
    if universal and universal_type.upper() == "NPI":  # e.g. MSH-4 CLINIC^1234567893^NPI: the billing NPI
        return NPI_SYSTEM
    if universal and universal_type.upper() == "ISO":
        return NPI_SYSTEM if universal == NPI_OID else f"urn:oid:{universal}"
    if namespace:
        return NPI_SYSTEM if namespace.upper() == "NPI" else f"{mapping.identifier_system_base}/{namespace}"
    return None


def identifier(seg: Seg, field: int, repetition: int, mapping: Hl7v2Mapping, default_system: str) -> dict[str, Any]:
    """A CX: value CX.1, system from the assigning authority CX.4, type CX.5 (v2-0203)."""
    cx = seg.components(field, repetition, count=5)
    system = authority_system(seg.subcomponents(field, 4, repetition, count=3), mapping)
    found: dict[str, Any] = {"system": system or default_system, "value": cx[0]}
    if cx[4]:
        found["type"] = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": cx[4]}]}
    return found


def human_name(family: str, given: str, middle: str) -> dict[str, Any] | None:
    """An XPN (components 1-3) or the name part of an XCN (components 2-4)."""
    if not (family or given or middle):
        return None
    name: dict[str, Any] = {}
    if family:
        name["family"] = family
    if given or middle:
        name["given"] = [g for g in (given, middle) if g]
    return name


def practitioner(seg: Seg, field: int, repetition: int, mapping: Hl7v2Mapping) -> dict[str, Any] | None:
    """An XCN as a Practitioner: XCN.1 id (an NPI when XCN.13 = NPI or XCN.9 is the NPI OID), XCN.2-4 name."""
    xcn = seg.components(field, repetition, count=13)
    ident = xcn[0]
    name = human_name(xcn[1], xcn[2], xcn[3]) if repetition == 1 else None
    if not ident and name is None:
        return None
    resource: dict[str, Any] = {"resourceType": "Practitioner"}
    if ident:
        system = (
            NPI_SYSTEM
            if xcn[12].upper() == "NPI"
            else authority_system(seg.subcomponents(field, 9, repetition, count=3), mapping)
        )
        resource["identifier"] = [{"system": system or f"{mapping.identifier_system_base}/provider", "value": ident}]
        resource["id"] = resource_id("Practitioner", system or "", ident)
    else:
        resource["id"] = resource_id("Practitioner", str(seg.location), str(field))
    if name is not None:
        resource["name"] = [name]
    return resource


def coding_system(code_system: str, mapping: Hl7v2Mapping) -> str | None:
    return mapping.coding_systems.get(code_system.upper().replace(" ", ""))


def concept(
    seg: Seg, field: int, repetition: int, mapping: Hl7v2Mapping, *, legacy: str = "", default: str | None = None
) -> dict[str, Any] | None:
    """A CE / CWE (code ^ text ^ coding system) as a CodeableConcept; ``legacy`` is PR1-2 / DG1-2.

    A coding system the mapping does not know stays visible as ``urn:theraclaim:hl7v2:coding-system:<name>``
    (the rules then report an unknown code; nothing is guessed).
    """
    code, display, named = seg.components(field, repetition, count=3)
    if not code:
        return None
    named = named or legacy
    system = coding_system(named, mapping) if named else default
    fallback = f"urn:theraclaim:hl7v2:coding-system:{named or 'unspecified'}"
    coding: dict[str, Any] = {"system": system or fallback, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}
