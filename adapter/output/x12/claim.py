"""ClaimDecision -> X12Claim: what one 2000B..2400 block of an 837P says, checked and cleaned.

Built from the same decision the FHIR Claim is rendered from (lines, units, modifiers, prices,
diagnoses, care team), plus the parties intake read (names, NPIs, addresses, member id).
Everything an 837P requires and the input lacks is reported at once as :class:`NotExportable`
with the FHIRPath of the element, never with its value (PHI).  An X12Claim is plain data with a
JSON form, so the store keeps the one each Claim version was exported from.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from adapter.errors import InputError, Problem
from adapter.model import Address, ClaimDecision, PartyFact, ServiceLine, SubscriptionFact
from adapter.output.x12.text import clean, npi_valid
from adapter.rules.catalog import Rules

MAX_DIAGNOSES, MAX_POINTERS, MAX_MODIFIERS = 12, 4, 4
# Coverage.relationship (subscriber-relationship) -> PAT01 individual relationship code
PATIENT_RELATIONSHIP = {"spouse": "01", "child": "19", "common": "53", "parent": "G8", "other": "G8", "injured": "G8"}
GENDER = {"male": "M", "female": "F"}


class NotExportable(InputError):
    """The Claim cannot be written as an 837P: the problems say what is missing or unusable."""

    @staticmethod
    def problem(message: str, path: str | None) -> Problem:
        return Problem("not-exportable", message, path, "business-rule")


@dataclass(frozen=True, slots=True)
class Party:
    entity: str  # NM102: 1 person, 2 organization
    last: str  # or the organization's name
    first: str = ""
    middle: str = ""
    id: str = ""  # NM109: NPI (XX), member id (MI) or payer id (PI)
    lines: tuple[str, ...] = ()  # N301, N302
    city: str = ""
    state: str = ""
    postal_code: str = ""
    birth_date: str = ""  # CCYYMMDD
    gender: str = ""  # M F U
    taxonomy: str = ""
    tax_id: str = ""


@dataclass(frozen=True, slots=True)
class Line:
    sequence: int  # Claim.item.sequence
    control: str  # REF*6R line item control number
    cpt: str
    modifiers: tuple[str, ...]
    description: str
    charge_cents: int
    units: int
    service_date: str  # CCYYMMDD
    pointers: tuple[int, ...]
    rendering: Party | None = None  # 2420A, when the line's performer is not the claim's


@dataclass(frozen=True, slots=True)
class X12Claim:
    claim_id: str
    control: str  # CLM01, the patient control number (20 characters at most)
    payer_pack: str
    filing_indicator: str  # SBR09
    responsibility: str  # SBR01: P S T
    group: str  # SBR03
    patient_relationship: str  # PAT01; empty when the patient is the subscriber (SBR02 = 18)
    place_of_service: str
    total_cents: int
    billing: Party
    subscriber: Party
    payer: Party
    patient: Party | None
    rendering: Party | None
    diagnoses: tuple[str, ...]
    lines: tuple[Line, ...]
    frequency: str = "1"  # CLM05-3: 1 original, 7 replacement, 8 void
    payer_claim_number: str = ""  # REF*F8, when the payer's number for the original is known

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> X12Claim:
        def party(value: dict[str, Any] | None) -> Party | None:
            return None if value is None else Party(**{**value, "lines": tuple(value["lines"])})

        lines = tuple(
            Line(
                **{
                    **line,
                    "modifiers": tuple(line["modifiers"]),
                    "pointers": tuple(line["pointers"]),
                    "rendering": party(line["rendering"]),
                }
            )
            for line in data["lines"]
        )
        parties = {k: party(data[k]) for k in ("billing", "subscriber", "payer", "patient", "rendering")}
        return cls(**{**data, **parties, "diagnoses": tuple(data["diagnoses"]), "lines": lines})


def claim_control(claim_id: str) -> str:
    """CLM01 from the Claim id: 20 characters is what payers keep and return (TR3 CLM01 note)."""
    return re.sub(r"[^0-9A-Za-z]", "", claim_id)[:20].upper()


class _Reader:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def need(self, ok: bool, code: str, message: str, path: str) -> bool:
        if not ok:
            self.problems.append(Problem(code, message, path, "required"))
        return ok

    def text(self, value: str | None, what: str, path: str, max_length: int, required: bool = True) -> str:
        if value is None:
            self.need(not required, "x12-missing", f"the 837P needs {what}", path)
            return ""
        return clean(value, what, path, self.problems, max_length)

    def npi(self, party: PartyFact, what: str) -> str:
        path = f"{party.path}.identifier"
        if self.need(party.npi is not None, "x12-missing", f"the 837P needs the {what}'s NPI", path):
            assert party.npi is not None
            self.need(npi_valid(party.npi), "npi-invalid", f"the {what}'s NPI fails the NPI check digit", path)
        return party.npi or ""

    def person_name(self, party: PartyFact, what: str) -> tuple[str, str, str]:
        path = f"{party.path}.name"
        last = self.text(party.family, f"the {what}'s family name", path, 60)
        first = self.text(party.given[0] if party.given else None, f"the {what}'s given name", path, 35, False)
        middle = self.text(party.given[1] if len(party.given) > 1 else None, "a middle name", path, 25, False)
        return last, first, middle

    def address(self, party: PartyFact, what: str, zip_plus_four: bool = False) -> dict[str, Any]:
        found: Address | None = party.address
        if not self.need(found is not None, "x12-missing", f"the 837P needs the {what}'s address", party.path):
            return {}
        assert found is not None
        lines = tuple(self.text(v, f"the {what}'s address line", f"{found.path}.line", 55) for v in found.lines[:2])
        self.need(bool(lines), "x12-missing", f"the 837P needs the {what}'s street address", f"{found.path}.line")
        state = (found.state or "").upper()
        self.need(
            bool(re.fullmatch(r"[A-Z]{2}", state)), "x12-state", f"the {what}'s state must be a 2-letter code",
            f"{found.path}.state",
        )  # fmt: skip
        postal = re.sub(r"[\s-]", "", found.postal_code or "")
        pattern = r"\d{9}" if zip_plus_four else r"\d{5}|\d{9}"
        shape = "the 9-digit ZIP+4" if zip_plus_four else "a 5- or 9-digit ZIP code"
        self.need(
            bool(re.fullmatch(pattern, postal)), "x12-postal-code", f"the {what}'s postal code must be {shape}",
            f"{found.path}.postalCode",
        )  # fmt: skip
        city = self.text(found.city, f"the {what}'s city", f"{found.path}.city", 30)
        return {"lines": lines, "city": city, "state": state, "postal_code": postal}

    def person(self, party: PartyFact, what: str, *, demographics: bool) -> Party:
        last, first, middle = self.person_name(party, what)
        extra: dict[str, Any] = {}
        if demographics:
            extra = self.address(party, what)
            self.need(
                party.birth_date is not None, "x12-missing", f"the 837P needs the {what}'s birth date",
                f"{party.path}.birthDate",
            )  # fmt: skip
            extra["birth_date"] = party.birth_date.strftime("%Y%m%d") if party.birth_date else ""
            extra["gender"] = GENDER.get(party.gender or "", "U")
        return Party("1", last, first, middle, **extra)

    def provider(self, party: PartyFact, what: str) -> Party:
        npi = self.npi(party, what)
        taxonomy = party.taxonomy or ""
        if taxonomy:
            self.need(
                bool(re.fullmatch(r"[0-9]{3}[0-9A-Z]{6}X", taxonomy)), "x12-taxonomy",
                f"the {what}'s NUCC taxonomy code is malformed", party.path,
            )  # fmt: skip
        if party.resource_type == "Organization":
            name = self.text(party.family, f"the {what}'s name", f"{party.path}.name", 60)
            return Party("2", name, id=npi, taxonomy=taxonomy)
        last, first, middle = self.person_name(party, what)
        return Party("1", last, first, middle, id=npi, taxonomy=taxonomy)


def _subscription(decision: ClaimDecision, reader: _Reader) -> SubscriptionFact | None:
    parties = decision.encounter.parties
    coverage = decision.coverage
    path = decision.encounter.path
    if not reader.need(coverage is not None, "x12-missing", "the 837P needs the Coverage the Claim bills", path):
        return None
    assert coverage is not None and parties is not None
    return next((s for s in parties.subscriptions if s.coverage_ref == coverage.ref), None)


def claim_of(decision: ClaimDecision, rules: Rules) -> X12Claim:
    """The 837P content of one billable decision; NotExportable lists everything missing."""
    reader = _Reader()
    parties = decision.encounter.parties
    if parties is None:
        raise NotExportable([Problem("x12-missing", "intake read no parties", decision.encounter.path, "required")])
    pack = rules.payers[decision.payer_id]
    reader.need(
        pack.claim_filing_indicator is not None, "x12-filing-indicator",
        f"payer pack {pack.label} names no claim_filing_indicator (SBR09)", decision.encounter.path,
    )  # fmt: skip
    billing = _billing(parties.billing_provider, decision, reader)
    subscription = _subscription(decision, reader)
    subscriber, patient, relationship, payer = _insured(parties.patient, subscription, decision, reader)
    performers = {p.ref: p for p in parties.performers}
    rendering = None
    if decision.care_team and decision.care_team[0] in performers:
        rendering = reader.provider(performers[decision.care_team[0]], "rendering provider")
        if rendering.id and rendering.id == billing.id:  # 2310B only when it differs from the billing provider
            rendering = None
    reader.need(
        len(decision.diagnoses) <= MAX_DIAGNOSES, "x12-too-many-diagnoses",
        f"an 837P carries at most {MAX_DIAGNOSES} diagnoses", decision.encounter.path,
    )  # fmt: skip
    control = claim_control(decision.claim_id)
    lines = tuple(_line(i, line, control, performers, decision, reader) for i, line in enumerate(decision.lines, 1))
    if reader.problems:
        raise NotExportable(reader.problems)
    coverages = [c.ref for c in decision.encounter.coverages]
    assert decision.coverage is not None and subscription is not None
    return X12Claim(
        claim_id=decision.claim_id,
        control=control,
        payer_pack=decision.payer_id,
        filing_indicator=pack.claim_filing_indicator or "",
        responsibility="PST"[min(coverages.index(decision.coverage.ref), 2)],
        group=clean(subscription.group, "group", subscription.path, [], 50) if subscription.group else "",
        patient_relationship=relationship,
        place_of_service=decision.place_of_service,
        total_cents=sum(line.charge_cents for line in lines),
        billing=billing,
        subscriber=subscriber,
        payer=payer,
        patient=patient,
        rendering=rendering,
        diagnoses=tuple(d.code.replace(".", "").upper() for d in decision.diagnoses),
        lines=lines,
    )


def _billing(party: PartyFact | None, decision: ClaimDecision, reader: _Reader) -> Party:
    path = f"{decision.encounter.path}.serviceProvider"
    if not reader.need(party is not None, "x12-missing", "the 837P needs the billing provider", path):
        return Party("2", "")
    assert party is not None
    found = reader.provider(party, "billing provider")
    tax_id = re.sub(r"-", "", party.tax_id or "")
    reader.need(
        bool(re.fullmatch(r"\d{9}", tax_id)), "x12-tax-id",
        "the 837P needs the billing provider's 9-digit tax id (identifier system urn:oid:2.16.840.1.113883.4.4)",
        f"{party.path}.identifier",
    )  # fmt: skip
    return dataclasses.replace(found, tax_id=tax_id, **reader.address(party, "billing provider", zip_plus_four=True))


def _insured(
    patient_fact: PartyFact, subscription: SubscriptionFact | None, decision: ClaimDecision, reader: _Reader
) -> tuple[Party, Party | None, str, Party]:
    """(subscriber, patient when not the subscriber, PAT01, payer)."""
    if subscription is None:
        return Party("1", ""), None, "", Party("2", "")
    member_id = reader.text(subscription.member_id, "the member id (Coverage.subscriberId)", subscription.path, 80)
    payer = _payer(subscription, decision, reader)
    self_insured = subscription.subscriber is None or subscription.relationship in (None, "self")
    if self_insured:
        subscriber = reader.person(patient_fact, "patient", demographics=True)
        return dataclasses.replace(subscriber, id=member_id), None, "", payer
    assert subscription.subscriber is not None
    subscriber = reader.person(subscription.subscriber, "subscriber", demographics=False)
    patient = reader.person(patient_fact, "patient", demographics=True)
    relationship = PATIENT_RELATIONSHIP.get(subscription.relationship or "", "G8")
    return dataclasses.replace(subscriber, id=member_id), patient, relationship, payer


def _payer(subscription: SubscriptionFact, decision: ClaimDecision, reader: _Reader) -> Party:
    """The payer as the Coverage names it; a clearinghouse profile may map it to its own ids."""
    found = subscription.payer
    path = f"{subscription.path}.payor"
    name = found.family if found else None
    payer_id = found.identifiers[0].code if found and found.identifiers else None
    return Party(
        "2",
        reader.text(name, "the payer's name", path, 60, required=False) or decision.payer_id.upper(),
        id=reader.text(payer_id, "the payer's identifier", path, 80, required=False),
    )


def _narrative(text: str, reader: _Reader, path: str) -> str:
    """SV101-7 from the pack's description (rule data, not PHI): a delimiter becomes a dash, 80 characters."""
    folded = re.sub(r"\s*[*:^~]\s*", " - ", text)
    return reader.text(" ".join(folded.split())[:80].strip(), "the line's description", path, 80)


def _line(
    sequence: int,
    line: ServiceLine,
    control: str,
    performers: dict[str, PartyFact],
    decision: ClaimDecision,
    reader: _Reader,
) -> Line:
    path = f"{decision.encounter.path}"
    reader.need(line.net_cents is not None, "x12-no-price", f"line {sequence} ({line.cpt}) has no price", path)
    reader.need(
        len(line.modifiers) <= MAX_MODIFIERS, "x12-too-many-modifiers",
        f"line {sequence} has more than {MAX_MODIFIERS} modifiers", path,
    )  # fmt: skip
    reader.need(
        1 <= len(line.diagnosis_pointers) <= MAX_POINTERS and max(line.diagnosis_pointers, default=0) <= MAX_DIAGNOSES,
        "x12-diagnosis-pointers", f"line {sequence} needs 1 to {MAX_POINTERS} diagnosis pointers to the first "
        f"{MAX_DIAGNOSES} diagnoses", path,
    )  # fmt: skip
    rendering = None
    performer = line.performer_refs[0] if line.performer_refs else None
    if performer and decision.care_team and performer != decision.care_team[0] and performer in performers:
        rendering = reader.provider(performers[performer], "rendering provider")
    description = _narrative(line.description, reader, path) if line.description else ""
    return Line(
        sequence=sequence,
        control=f"{control}-{sequence}",
        cpt=line.cpt,
        modifiers=tuple(line.modifiers),
        description=description,
        charge_cents=line.net_cents or 0,
        units=line.units,
        service_date=line.service_date.strftime("%Y%m%d"),
        pointers=tuple(line.diagnosis_pointers),
        rendering=rendering,
    )
