"""Frozen domain types shared by intake, rules and output.

Nothing here knows about FHIR models, HTTP or SQL: intake fills these from the wire format,
rules decide over them, output renders them.  References are kept as the strings the output
should write (``Patient/123`` or ``urn:uuid:...``), so rules never resolve anything.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

import msgspec


class Frozen(msgspec.Struct, frozen=True, gc=False):
    """The base of every type here.  msgspec builds, compares, hashes and copies these in C: a frozen
    dataclass sets each field with a Python-level ``object.__setattr__``, and a visit builds a few
    hundred facts.  ``gc=False``: a fact holds strings, numbers, dates and other facts, never itself
    (immutable, so no cycle can be made), and the collector need not track it.  Each subclass says
    ``frozen=True`` again for mypy, which does not see it inherited."""


class Coding(Frozen, frozen=True):
    system: str
    code: str
    display: str | None = None


class Severity(StrEnum):
    """Finding severity, using the FHIR OperationOutcome issue-severity codes."""

    ERROR = "error"
    WARNING = "warning"
    INFORMATION = "information"


class Finding(Frozen, frozen=True):
    """A decision worth telling a biller about.

    ``code`` is a stable machine code (CodeSystem ``finding``); ``rule`` names the rule and the
    version of the data that fired (``units/cms-pooled medicare@1.0.0``); ``hold`` asks for the
    Claim to be emitted as ``draft`` for review instead of ``active``.
    """

    code: str
    severity: Severity
    message: str
    expression: tuple[str, ...] = ()
    rule: str | None = None
    hold: bool = False


class Override(Frozen, frozen=True):
    """A clinician documented that they knew of a contraindication class and proceeded."""

    class_id: str
    reason: str


class ProcedureFact(Frozen, frozen=True):
    ref: str
    path: str
    status: str
    codes: tuple[Coding, ...]
    start: datetime | None
    end: datetime | None
    service_date: date | None
    body_sites: tuple[Coding, ...] = ()
    performer_refs: tuple[str, ...] = ()
    reason_refs: tuple[str, ...] = ()
    overrides: tuple[Override, ...] = ()
    status_reason: str | None = None
    plan_refs: tuple[str, ...] = ()  # Procedure.basedOn: ServiceRequest / CarePlan
    device_codes: tuple[Coding, ...] = ()  # usedCode and the types of focalDevice.manipulated
    modifiers: tuple[str, ...] = ()  # modifiers the sender attached (procedure-modifier extension)
    encounter_ref: str | None = None  # the visit (Encounter) the Procedure belongs to
    description: str | None = None  # Procedure.code.text, else its first note: what an unlisted code needs
    instant: datetime | None = None  # the moment the date of service is taken from (period start / performed)
    extensions: tuple[tuple[str, str], ...] = ()  # (url, valueCode) of simple coded extensions (treatment-phase)

    @property
    def minutes(self) -> int | None:
        """Whole minutes of the performed period, or None when it has no start and end."""
        if self.start is None or self.end is None:
            return None
        return int((self.end - self.start).total_seconds() // 60)


class ConditionFact(Frozen, frozen=True):
    ref: str
    path: str
    codes: tuple[Coding, ...]
    clinical_status: str | None = None
    verification_status: str | None = None
    categories: tuple[str, ...] = ()
    body_sites: tuple[Coding, ...] = ()
    onset: date | None = None
    abatement: date | None = None


class MedicationFact(Frozen, frozen=True):
    """A MedicationStatement or MedicationRequest, with the codes of a referenced Medication."""

    ref: str
    path: str
    resource_type: str
    status: str
    codes: tuple[Coding, ...]
    effective_start: date | None = None
    effective_end: date | None = None


class ObservationFact(Frozen, frozen=True):
    ref: str
    path: str
    status: str
    codes: tuple[Coding, ...]
    value: float | None
    unit: str | None
    effective: date | None


class PractitionerFact(Frozen, frozen=True):
    """A rendering practitioner and what they are qualified as (qualifications, role codes)."""

    ref: str
    qualifications: tuple[Coding, ...]


class PlanFact(Frozen, frozen=True):
    """A referral or plan of care (ServiceRequest, CarePlan) the visit is based on."""

    ref: str
    path: str
    resource_type: str
    status: str
    categories: tuple[Coding, ...]
    start: date | None
    end: date | None
    treatment_days_since_progress: int | None = None  # treatment days since the last progress report (extension)


class DiagnosisFact(Frozen, frozen=True):
    """A Condition named as a diagnosis of the visit, in the order the rules should rank it."""

    condition_ref: str
    source: str  # encounter-diagnosis | encounter-reason | procedure-reason
    rank: int | None = None


class CoverageFact(Frozen, frozen=True):
    ref: str
    path: str
    status: str
    order: int | None
    types: tuple[Coding, ...] = ()
    payor_identifiers: tuple[Coding, ...] = ()  # system + value, carried as a Coding
    year_to_date_cents: tuple[tuple[str, int], ...] = ()  # therapy amount so far this year, per threshold group


class EncounterFacts(Frozen, frozen=True):
    ref: str
    path: str
    identity: str  # stable identity of the Encounter, the seed of the Claim id
    status: str
    patient_ref: str
    billing_provider_ref: str | None
    procedures: tuple[ProcedureFact, ...]
    diagnoses: tuple[DiagnosisFact, ...]
    conditions: tuple[ConditionFact, ...]
    coverages: tuple[CoverageFact, ...]
    skipped_procedures: tuple[ProcedureFact, ...] = ()
    medications: tuple[MedicationFact, ...] = ()
    observations: tuple[ObservationFact, ...] = ()
    plans: tuple[PlanFact, ...] = ()  # from Encounter.basedOn and Procedure.basedOn
    practitioners: tuple[PractitionerFact, ...] = ()  # the Procedures' performers
    parties: Parties | None = None  # names, identifiers and addresses, for the 837P
    period_start: datetime | date | None = None  # Encounter.period (a date when it has no time)
    period_end: datetime | date | None = None
    billing_npi: str | None = None  # the billing Organization's NPI: the tenant its Claims belong to
    patient_identity: str | None = None  # Patient.identifier system|value: the same patient across pushes
    provider_identity: str | None = None  # the billing Organization's identifier (NPI) system|value
    service_date: date | None = None  # the Encounter's date (Encounter.period.start) when no Procedure gives one
    visit_refs: tuple[str, ...] = ()  # the Encounters pooled into this day's Claim (empty: this one alone)
    withdrawn_visits: tuple[str, ...] = ()  # cancelled / entered-in-error visits of the day left out of the pool
    lost_visits: tuple[str, ...] = ()  # stored visits of the day that no longer convert: left out, the Claim held
    visit_identities: tuple[str, ...] = ()  # the identities of every visit of the day (pooled or withdrawn)
    start_instant: datetime | None = None  # Encounter.period.start with its time, when it has one
    timezone: str | None = None  # the clinic's IANA time zone (FHIR timezone extension on Location / Organization)
    timezone_path: str | None = None  # where it was read
    class_code: str | None = None  # Encounter.class code (v3-ActCode: AMB, VR virtual, HH home health, ...)
    location_codes: tuple[Coding, ...] = ()  # Location.type and physicalType of the Encounter's Locations

    @property
    def visits(self) -> tuple[str, ...]:
        return self.visit_refs or (self.ref,)


class UnitDerivation(Frozen, frozen=True):
    """How the units of one line were found; rendered as text and as an extension."""

    method: str
    rule: str
    code_minutes: int
    pooled_minutes: int
    full_units: int
    remainder_unit: bool
    units: int
    tie_break: str | None = None  # which criterion settled a tie on remainders, when one did
    visits: int = 1  # visits of the date of service whose timed minutes were pooled
    excluded_minutes: int = 0  # timed minutes of the day left out of the pool (lines not billed, blocked)

    @property
    def text(self) -> str:
        if self.method == "cms-pooled":
            day = f" of the day's {self.visits} visits" if self.visits > 1 else ""
            basis = f"{self.code_minutes} of {self.pooled_minutes} pooled timed minutes{day}"
            if self.excluded_minutes:
                basis += f" ({self.excluded_minutes} minutes of lines not billed were not counted)"
        else:
            basis = f"{self.code_minutes} timed minutes"
        parts = [f"{self.full_units} full unit{'s' if self.full_units != 1 else ''}"]
        if self.remainder_unit:
            parts.append("1 for the largest remainder" if self.method == "cms-pooled" else "1 for 8+ minutes")
        tie = f"; remainder tie broken by {self.tie_break}" if self.tie_break else ""
        return f"{basis}; {' + '.join(parts)} = {self.units}{tie}; {self.method} rule {self.rule}"


class ServiceLine(Frozen, frozen=True):
    cpt: str
    service_date: date
    units: int
    procedure_refs: tuple[str, ...]
    performer_refs: tuple[str, ...]
    body_sites: tuple[Coding, ...]
    diagnosis_refs: tuple[str, ...]  # the Procedures' own reasons
    derivation: UnitDerivation | None = None  # None for untimed (per-service) codes
    diagnosis_pointers: tuple[int, ...] = ()
    modifiers: tuple[str, ...] = ()
    unit_price_cents: int | None = None
    description: str | None = None  # the narrative an unlisted code (97039) needs
    discipline: str | None = None  # pt / ot / slp when units are pooled per discipline

    @property
    def net_cents(self) -> int | None:
        return None if self.unit_price_cents is None else self.unit_price_cents * self.units


class Diagnosis(Frozen, frozen=True):
    sequence: int
    code: str
    display: str | None
    condition_ref: str


class Contraindication(Frozen, frozen=True):
    """A contraindication finding: one class, one source resource, the procedures it concerns."""

    class_id: str
    class_display: str
    tier: str  # full | lesser | minor, after site, verification and observation adjustments
    kind: str  # COND (a condition or observation) | DRG (a medication)
    source_ref: str
    source_path: str
    procedure_refs: tuple[str, ...]
    action: str  # hold | block | warn
    detail: str
    rule: str
    evidence_refs: tuple[str, ...] = ()  # e.g. the Observation that made it severe
    override_reason: str | None = None

    @property
    def severity(self) -> str:
        """DetectedIssue.severity."""
        return {"full": "high", "lesser": "moderate"}.get(self.tier, "low")


class ClaimDecision(Frozen, frozen=True):
    """Everything output needs to render one Claim (or to say why there is none)."""

    encounter: EncounterFacts
    claim_id: str
    payer_id: str
    payer_version: str
    coverage: CoverageFact | None
    lines: tuple[ServiceLine, ...]
    diagnoses: tuple[Diagnosis, ...]
    findings: tuple[Finding, ...]
    billing_provider_ref: str | None
    care_team: tuple[str, ...]  # rendering practitioners, in line order
    place_of_service: str
    currency: str
    rule_versions: tuple[str, ...] = ()
    contraindications: tuple[Contraindication, ...] = ()

    @property
    def billable(self) -> bool:
        return bool(self.lines) and self.encounter.status not in ("cancelled", "entered-in-error")

    @property
    def held(self) -> bool:
        return any(f.hold for f in self.findings)

    @property
    def status(self) -> str | None:
        """Claim.status: ``active`` (ready), ``draft`` (held for review) or None (no Claim)."""
        if not self.billable:
            return None
        return "draft" if self.held else "active"


class Address(Frozen, frozen=True):
    lines: tuple[str, ...]
    city: str | None
    state: str | None
    postal_code: str | None
    country: str | None
    path: str


class PartyFact(Frozen, frozen=True):
    """A person or organization as a claim form names them (read leniently: the 837P output
    checks what it needs and names what is missing by these paths)."""

    ref: str
    path: str
    resource_type: str
    family: str | None  # an organization's name
    given: tuple[str, ...] = ()
    npi: str | None = None
    tax_id: str | None = None
    taxonomy: str | None = None  # NUCC provider taxonomy
    birth_date: date | None = None
    gender: str | None = None
    address: Address | None = None
    identifiers: tuple[Coding, ...] = ()


class SubscriptionFact(Frozen, frozen=True):
    """What a Coverage says about who is insured and by whom (837P loops 2000B / 2010BA / 2010BB)."""

    coverage_ref: str
    path: str
    member_id: str | None
    relationship: str | None  # subscriber-relationship code: self, spouse, child, ...
    group: str | None
    subscriber: PartyFact | None  # None: the patient is the subscriber (or the Coverage does not say)
    payer: PartyFact | None


class Parties(Frozen, frozen=True):
    patient: PartyFact
    billing_provider: PartyFact | None
    performers: tuple[PartyFact, ...]  # keyed by the reference the Procedures use
    subscriptions: tuple[SubscriptionFact, ...]
