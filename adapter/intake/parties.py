"""Readers of who a claim names: patient, billing provider, performers, subscriber and payer.

These elements are carried, not validated, at the ``fields`` level, so every reader here is
lenient: a value of the wrong shape is treated as absent, never as a crash.  The 837P output
says what it needs and is missing (adapter/output/x12/claim.py); the FHIR Claim needs none of it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from adapter.intake.references import BundleIndex, Entry
from adapter.model import Address, Coding, Parties, PartyFact, SubscriptionFact

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
EIN_SYSTEM = "urn:oid:2.16.840.1.113883.4.4"  # US Employer Identification Number (tax id)
NUCC_SYSTEM = "http://nucc.org/provider-taxonomy"
MEMBER_TYPE = ("http://terminology.hl7.org/CodeSystem/v2-0203", "MB")


def read_parties(
    index: BundleIndex, patient: Entry, provider: Entry | None, performer_refs: list[str], coverages: list[Entry]
) -> Parties:
    performers = []
    for ref in dict.fromkeys(performer_refs):
        entry = index.lookup(ref)
        if entry is not None:
            performers.append(_performer(index, entry))
    return Parties(
        patient=read_party(patient),
        billing_provider=read_party(provider) if provider is not None else None,
        performers=tuple(performers),
        subscriptions=tuple(_subscription(index, c) for c in coverages),
    )


def read_party(entry: Entry) -> PartyFact:
    resource = entry.resource
    family, given = _name(resource)
    concepts = _list(resource.get("qualification"))
    taxonomy_sources = [q.get("code") for q in concepts if isinstance(q, dict)] + _list(resource.get("type"))
    return PartyFact(
        ref=entry.ref,
        path=entry.path,
        resource_type=entry.resource_type,
        family=family,
        given=given,
        npi=_identifier(resource, NPI_SYSTEM),
        tax_id=_identifier(resource, EIN_SYSTEM),
        taxonomy=_taxonomy(taxonomy_sources),
        birth_date=_date(resource.get("birthDate")),
        gender=_text(resource.get("gender")),
        address=_address(resource, entry.path),
        identifiers=tuple(
            Coding(i["system"], i["value"])
            for i in _list(resource.get("identifier"))
            if isinstance(i, dict) and _text(i.get("system")) and _text(i.get("value"))
        ),
    )


def _performer(index: BundleIndex, entry: Entry) -> PartyFact:
    """A Practitioner, or a PractitionerRole: its practitioner's name and NPI, its own code first."""
    if entry.resource_type != "PractitionerRole":
        return read_party(entry)
    reference = _dict(entry.resource.get("practitioner")).get("reference")
    target = index.lookup(reference) if isinstance(reference, str) else None
    person = read_party(target) if target is not None else read_party(entry)
    role_taxonomy = _taxonomy(_list(entry.resource.get("code")))
    return PartyFact(
        ref=entry.ref,
        path=person.path,
        resource_type=person.resource_type,
        family=person.family,
        given=person.given,
        npi=_identifier(entry.resource, NPI_SYSTEM) or person.npi,
        taxonomy=role_taxonomy or person.taxonomy,
        address=person.address,
    )


def _subscription(index: BundleIndex, entry: Entry) -> SubscriptionFact:
    resource = entry.resource
    member_id = _text(resource.get("subscriberId"))
    for identifier in _list(resource.get("identifier")):
        codings = _list(_dict(identifier.get("type")).get("coding")) if isinstance(identifier, dict) else []
        if member_id is None and any((c.get("system"), c.get("code")) == MEMBER_TYPE for c in codings):
            member_id = _text(identifier.get("value"))
    relationship = next(
        (_text(c.get("code")) for c in _list(_dict(resource.get("relationship")).get("coding")) if isinstance(c, dict)),
        None,
    )
    group = next(
        (
            _text(c.get("value"))
            for c in _list(resource.get("class"))
            if isinstance(c, dict)
            and any(t.get("code") == "group" for t in _list(_dict(c.get("type")).get("coding")) if isinstance(t, dict))
        ),
        None,
    )
    subscriber_ref = _dict(resource.get("subscriber")).get("reference")
    subscriber = index.lookup(subscriber_ref) if isinstance(subscriber_ref, str) else None
    beneficiary_ref = _dict(resource.get("beneficiary")).get("reference")
    beneficiary = index.lookup(beneficiary_ref) if isinstance(beneficiary_ref, str) else None
    if subscriber is not None and beneficiary is not None and subscriber.index == beneficiary.index:
        subscriber = None
    return SubscriptionFact(
        coverage_ref=entry.ref,
        path=entry.path,
        member_id=member_id,
        relationship=relationship,
        group=group,
        subscriber=read_party(subscriber) if subscriber is not None else None,
        payer=_payer(index, entry),
    )


def _payer(index: BundleIndex, entry: Entry) -> PartyFact | None:
    payors = _list(entry.resource.get("payor"))
    payor = payors[0] if payors and isinstance(payors[0], dict) else None
    if payor is None:
        return None
    target = index.lookup(payor["reference"]) if isinstance(payor.get("reference"), str) else None
    found = read_party(target) if target is not None else None
    identifier = payor.get("identifier")
    given = (
        (Coding(identifier["system"], identifier["value"]),)
        if isinstance(identifier, dict) and _text(identifier.get("system")) and _text(identifier.get("value"))
        else ()
    )
    return PartyFact(
        ref=found.ref if found else f"{entry.path}.payor[0]",
        path=found.path if found else f"{entry.path}.payor[0]",
        resource_type=found.resource_type if found else "Organization",
        family=(found.family if found else None) or _text(payor.get("display")),
        identifiers=given + (found.identifiers if found else ()),
        address=found.address if found else None,
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 else None
    except ValueError:
        return None


def _identifier(resource: dict[str, Any], system: str) -> str | None:
    for identifier in _list(resource.get("identifier")):
        if isinstance(identifier, dict) and identifier.get("system") == system:
            value = _text(identifier.get("value"))
            if value:
                return value
    return None


def _taxonomy(concepts: list[Any]) -> str | None:
    for concept in concepts:
        for coding in _list(concept.get("coding")) if isinstance(concept, dict) else []:
            if isinstance(coding, dict) and coding.get("system") == NUCC_SYSTEM:
                code = _text(coding.get("code"))
                if code:
                    return code
    return None


def _name(resource: dict[str, Any]) -> tuple[str | None, tuple[str, ...]]:
    """An organization's name, or a person's family and given names (official first, never old)."""
    if isinstance(resource.get("name"), str):
        return _text(resource["name"]), ()
    names = [n for n in _list(resource.get("name")) if isinstance(n, dict) and n.get("use") != "old"]
    names.sort(key=lambda n: n.get("use") != "official")
    for name in names:
        family = _text(name.get("family"))
        given = tuple(g for g in (_text(v) for v in _list(name.get("given"))) if g)
        if family or given:
            return family, given
    return None, ()


def _address(resource: dict[str, Any], path: str) -> Address | None:
    for i, address in enumerate(_list(resource.get("address"))):
        if not isinstance(address, dict) or address.get("use") == "old":
            continue
        lines = tuple(line for line in (_text(v) for v in _list(address.get("line"))) if line)
        return Address(
            lines=lines,
            city=_text(address.get("city")),
            state=_text(address.get("state")),
            postal_code=_text(address.get("postalCode")),
            country=_text(address.get("country")),
            path=f"{path}.address[{i}]",
        )
    return None
