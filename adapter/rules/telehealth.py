"""Telehealth: a virtual visit gets the telehealth place of service (02, or 10 in the patient's home) and
the pack's modifier, or is held where the payer does not cover it; never the office POS 11 by default.

A visit is virtual when Encounter.class is v3-ActCode VR (virtual) or one of its Locations has the
physical type ``vi`` (virtual, location-physical-type); the patient is at home when a Location's type is
v3-RoleCode PTRES (patient's residence) or its physical type is ``ho`` (house).
"""

from __future__ import annotations

from msgspec.structs import replace

from adapter.model import EncounterFacts, Finding, ServiceLine, Severity
from adapter.rules.catalog import PayerPack

PHYSICAL_TYPE = "http://terminology.hl7.org/CodeSystem/location-physical-type"
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"


def is_virtual(encounter: EncounterFacts) -> bool:
    return encounter.class_code == "VR" or any(
        (c.system, c.code) == (PHYSICAL_TYPE, "vi") for c in encounter.location_codes
    )


def at_home(encounter: EncounterFacts) -> bool:
    return any((c.system, c.code) in ((ROLE_CODE, "PTRES"), (PHYSICAL_TYPE, "ho")) for c in encounter.location_codes)


def place_of_service(encounter: EncounterFacts, pack: PayerPack, default: str) -> tuple[str, list[Finding]]:
    """The Claim's POS and what was decided about a virtual visit."""
    if not is_virtual(encounter):
        return default, []
    policy = pack.edits.telehealth
    rule = f"edits/telehealth {pack.label}"
    where = (f"{encounter.path}.class", f"{encounter.path}.location")
    if not policy.covered:
        message = (
            f"a telehealth visit, which {pack.name} does not cover as configured: held (no office POS {default} "
            f"for a virtual visit). Next step: confirm the payer's telehealth coverage; {policy.source}"
        )
        return default, [Finding("telehealth-not-covered", Severity.WARNING, message, where, rule, hold=True)]
    home = at_home(encounter)
    pos = policy.home_place_of_service if home else policy.other_place_of_service
    place = "in the patient's home" if home else "not in the patient's home"
    modifier = f" and modifier {policy.modifier} on every line" if policy.modifier else ""
    message = f"a telehealth visit {place}: place of service {pos}{modifier}; {policy.source}"
    return pos, [Finding("telehealth", Severity.INFORMATION, message, where, rule)]


def telehealth_modifier(lines: list[ServiceLine], encounter: EncounterFacts, pack: PayerPack) -> list[ServiceLine]:
    modifier = pack.edits.telehealth.modifier
    if not modifier or not pack.edits.telehealth.covered or not is_virtual(encounter):
        return lines
    return [replace(line, modifiers=(*line.modifiers, modifier)) for line in lines]
