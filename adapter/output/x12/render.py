"""X12Claims + clearinghouse profile + control numbers -> one 005010X222A1 837P interchange.

One interchange (ISA/IEA) holds one functional group (GS/GE) holding one transaction set
(ST/SE) per Claim, each with its own BHT and billing-provider hierarchy, so a 999 accepts or
rejects Claims one by one.  Segment counts (SE01), transaction counts (GE01) and group counts
(IEA01) are computed here; CLM02 is the sum of the SV102 line charges by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from adapter.errors import Problem
from adapter.output.x12.claim import NotExportable, Party, X12Claim
from adapter.output.x12.profile import ClearinghouseProfile
from adapter.output.x12.text import REPETITION, amount, composite, segment

VERSION = "005010X222A1"


@dataclass(frozen=True, slots=True)
class Envelope:
    """Control numbers: ISA13 / GS06 once, ST02 per transaction set (one per Claim)."""

    interchange: int
    group: int
    transactions: tuple[int, ...]


def fixed_envelope(count: int) -> Envelope:
    """The deterministic control numbers of a file written without a store (``convert``)."""
    return Envelope(1, 1, tuple(range(1, count + 1)))


def render_interchange(
    claims: Sequence[X12Claim], profile: ClearinghouseProfile, envelope: Envelope, now: datetime
) -> bytes:
    if not claims or len(envelope.transactions) != len(claims):
        raise ValueError("an interchange needs one transaction control number per Claim, and at least one Claim")
    if not 0 < envelope.interchange <= 999_999_999 or not 0 < envelope.group <= 999_999_999:
        raise ValueError("ISA13 and GS06 are 1 to 9 digits")
    at = now.astimezone(UTC)
    isa = profile.interchange
    segments = [
        segment(
            "ISA", "00", " " * 10, "00", " " * 10,
            isa.sender_qualifier, isa.sender_id.ljust(15), isa.receiver_qualifier, isa.receiver_id.ljust(15),
            at.strftime("%y%m%d"), at.strftime("%H%M"), REPETITION, "00501", f"{envelope.interchange:09d}",
            isa.acknowledgment_requested, profile.usage_indicator, ":",
        ),
        segment(
            "GS", "HC", isa.application_sender, isa.application_receiver, at.strftime("%Y%m%d"), at.strftime("%H%M"),
            str(envelope.group), "X", VERSION,
        ),
    ]  # fmt: skip
    for claim, number in zip(claims, envelope.transactions, strict=True):
        segments += _transaction(claim, profile, number, at)
    segments += [
        segment("GE", str(len(claims)), str(envelope.group)),
        segment("IEA", "1", f"{envelope.interchange:09d}"),
    ]
    return "".join(s + "\n" for s in segments).encode("ascii")


def _transaction(claim: X12Claim, profile: ClearinghouseProfile, number: int, at: datetime) -> list[str]:
    control = f"{number:04d}"
    body = [
        segment("ST", "837", control, VERSION),
        segment("BHT", "0019", "00", claim.control, at.strftime("%Y%m%d"), at.strftime("%H%M"), "CH"),
        segment("NM1", "41", "2", profile.submitter.name, "", "", "", "", "46", profile.submitter.id),
        segment("PER", "IC", profile.submitter.contact, "TE", profile.submitter.phone),
        segment("NM1", "40", "2", profile.receiver.name, "", "", "", "", "46", profile.receiver.id),
        segment("HL", "1", "", "20", "1"),
    ]
    billing = claim.billing
    if billing.taxonomy:
        body.append(segment("PRV", "BI", "PXC", billing.taxonomy))
    body += [_name("85", billing, "XX"), *_address(billing), segment("REF", "EI", billing.tax_id)]
    body += [
        segment("HL", "2", "1", "22", "1" if claim.patient else "0"),
        segment("SBR", claim.responsibility, "" if claim.patient else "18", claim.group, "", "", "", "", "",
                claim.filing_indicator),
        _name("IL", claim.subscriber, "MI"),
    ]  # fmt: skip
    if claim.patient is None:
        body += [*_address(claim.subscriber), *_demographics(claim.subscriber)]
    body.append(_name("PR", _payer(claim, profile), "PI"))
    if claim.patient is not None:
        body += [
            segment("HL", "3", "2", "23", "0"),
            segment("PAT", claim.patient_relationship),
            _name("QC", claim.patient, ""),
            *_address(claim.patient),
            *_demographics(claim.patient),
        ]
    body.append(
        segment(
            "CLM", claim.control, amount(claim.total_cents), "", "",
            composite(claim.place_of_service, "B", claim.frequency), "Y", "A", "Y", "Y",
        )
    )  # fmt: skip
    if claim.payer_claim_number:
        body.append(segment("REF", "F8", claim.payer_claim_number))
    body.append(segment("HI", *(composite("ABK" if i == 0 else "ABF", code) for i, code in enumerate(claim.diagnoses))))
    if claim.rendering is not None:
        body += _rendering(claim.rendering)
    for number_in_claim, line in enumerate(claim.lines, start=1):
        modifiers = list(line.modifiers) + [""] * (4 - len(line.modifiers)) if line.description else line.modifiers
        body += [
            segment("LX", str(number_in_claim)),
            segment(
                "SV1", composite("HC", line.cpt, *modifiers, line.description), amount(line.charge_cents), "UN",
                str(line.units), "", "", composite(*(str(p) for p in line.pointers)),
            ),
            segment("DTP", "472", "D8", line.service_date),
            segment("REF", "6R", line.control),
        ]  # fmt: skip
        if line.rendering is not None:
            body += _rendering(line.rendering)
    body.append(segment("SE", str(len(body) + 1), control))
    return body


def _name(entity_code: str, party: Party, qualifier: str) -> str:
    person = party.entity == "1"
    return segment(
        "NM1", entity_code, party.entity, party.last, party.first if person else "", party.middle if person else "",
        "", "", qualifier if party.id else "", party.id,
    )  # fmt: skip


def _address(party: Party) -> list[str]:
    if not party.lines:
        return []
    return [segment("N3", *party.lines), segment("N4", party.city, party.state, party.postal_code)]


def _demographics(party: Party) -> list[str]:
    return [segment("DMG", "D8", party.birth_date, party.gender)] if party.birth_date else []


def _rendering(party: Party) -> list[str]:
    found = [_name("82", party, "XX")]
    if party.taxonomy:
        found.append(segment("PRV", "PE", "PXC", party.taxonomy))
    return found


def _payer(claim: X12Claim, profile: ClearinghouseProfile) -> Party:
    """The clearinghouse's name and id for the payer pack when the profile has them, else the Coverage's."""
    mapped = profile.payers.get(claim.payer_pack)
    if mapped is not None:
        return Party("2", mapped.name, id=mapped.id)
    if not claim.payer.id:
        message = f"no payer id for pack {claim.payer_pack}: add it to clearinghouse profile {profile.id} (payers:)"
        raise NotExportable([Problem("x12-payer-id", message, None, "required")])
    return claim.payer
