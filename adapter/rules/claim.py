"""EncounterFacts -> ClaimDecision: code mapping, units, lines, diagnoses, pricing, holds.

Overlapping timed procedures: one-on-one time cannot be spent twice, and the documentation
alone cannot say which code the shared minutes belong to.  theraclaim therefore does not guess:
units are computed on the minutes as documented, and the Claim is held (``draft``) with an
``overlapping-timed-services`` finding naming both Procedures, for a biller to correct.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date

from adapter.errors import InputError, Problem
from adapter.model import (
    ClaimDecision,
    Contraindication,
    Diagnosis,
    EncounterFacts,
    Finding,
    ProcedureFact,
    ServiceLine,
    Severity,
)
from adapter.rules.catalog import PayerPack, Rules
from adapter.rules.coding import map_to_cpt
from adapter.rules.contraindications import screen
from adapter.rules.edits import EditContext, apply_edits, device_edit
from adapter.rules.payers import select_pack
from adapter.rules.units import CodeMinutes, allocate

ICD10CM_SYSTEM = "http://hl7.org/fhir/sid/icd-10-cm"
MAX_DIAGNOSES = 12  # X12 837P HI segment (billing-rules.md F8.3)
MAX_POINTERS = 4  # diagnosis pointers per line (SV107, F8.4)
NOT_BILLABLE = frozenset({"cancelled", "entered-in-error"})
CLAIM_ID_NAMESPACE = uuid.UUID("6f1d7b0e-5d0c-4d7e-9a53-2f1c0c7d9a11")


@dataclass(frozen=True, slots=True)
class ClaimOptions:
    """Deployment choices the rules need (filled from settings by the shells)."""

    default_payer: str = "commercial"
    place_of_service: str = "11"


def claim_id(encounter_identity: str) -> str:
    """Derived from the Encounter's identity alone, so a retried or corrected push keeps the id."""
    return str(uuid.uuid5(CLAIM_ID_NAMESPACE, encounter_identity))


def decide(encounter: EncounterFacts, rules: Rules, *, payer: str | None, options: ClaimOptions) -> ClaimDecision:
    coverage = encounter.coverages[0] if encounter.coverages else None
    pack, findings = select_pack(rules, coverage, payer, options.default_payer)
    findings += _status_findings(encounter)
    billed: list[tuple[str, ProcedureFact]] = []
    for procedure in encounter.procedures:
        cpt, finding = map_to_cpt(procedure, rules.procedures)
        if finding is not None:
            findings.append(finding)
        if cpt is not None:
            cpt, finding = device_edit(cpt, procedure, pack)
            if finding is not None:
                findings.append(finding)
        if cpt is not None:
            billed.append((cpt, procedure))
    _check_times(billed, rules)
    findings += _overlaps([p for cpt, p in billed if rules.procedures.is_timed(cpt)])
    diagnoses, sequence_of = _diagnoses(encounter, findings)
    billable = encounter.status not in NOT_BILLABLE
    screened = [p for cpt, p in billed if cpt in rules.contraindications.screened_cpt] if billable else []
    contraindications = screen(encounter, screened, rules, rules.sites, pack.contraindications)
    blocked = _report_contraindications(contraindications, findings)
    # Blocked procedures leave before units are counted: their minutes must not earn units for others.
    lines = _lines([(cpt, p) for cpt, p in billed if p.ref not in blocked], pack, rules, findings) if billable else []
    lines = [_finish_line(line, pack, diagnoses, sequence_of, findings) for line in lines]
    scrub = EditContext(encounter, pack, rules, diagnoses)
    lines = apply_edits(lines, scrub)
    findings += scrub.findings
    if lines and not diagnoses:
        findings.append(
            Finding(
                "no-diagnosis",
                Severity.WARNING,
                "no ICD-10-CM diagnosis for the Encounter; a claim without one is rejected",
                (f"{encounter.path}.diagnosis",),
                "claim/diagnosis",
                hold=True,
            )
        )
    care_team = tuple(dict.fromkeys(ref for line in lines for ref in line.performer_refs))
    if lines and not care_team:
        findings.append(
            Finding(
                "no-rendering-provider",
                Severity.WARNING,
                "no Procedure names a Practitioner as performer; the Claim has no careTeam",
                tuple(f"{p.path}.performer" for _, p in billed),
                "claim/care-team",
            )
        )
    return ClaimDecision(
        encounter=encounter,
        claim_id=claim_id(encounter.identity),
        payer_id=pack.id,
        payer_version=pack.version,
        coverage=coverage,
        lines=tuple(lines),
        diagnoses=tuple(diagnoses),
        findings=tuple(findings),
        billing_provider_ref=_billing_provider(encounter, care_team, findings, bool(lines)),
        care_team=care_team,
        place_of_service=options.place_of_service,
        currency=pack.fee_schedule.currency,
        rule_versions=(pack.label, *rules.procedures.labels, rules.contraindications.label, rules.body_sites.label),
        contraindications=tuple(contraindications),
    )


def _report_contraindications(contraindications: list[Contraindication], findings: list[Finding]) -> set[str]:
    """Each finding is reported (``hold`` holds the Claim); returns the procedures a ``block`` takes out."""
    blocked: set[str] = set()
    for found in contraindications:
        severity = Severity.INFORMATION if found.tier == "minor" and found.action == "warn" else Severity.WARNING
        findings.append(
            Finding(
                f"contraindication-{found.class_id}",
                severity,
                found.detail,
                (found.source_path,),
                found.rule,
                hold=found.action == "hold",
            )
        )
        if found.action == "block":
            blocked.update(found.procedure_refs)
    if blocked:
        findings.append(
            Finding(
                "procedures-blocked",
                Severity.WARNING,
                f"{len(blocked)} procedure(s) are not billed: a contraindication blocks them",
                (),
                "contraindications/block",
            )
        )
    return blocked


def _status_findings(encounter: EncounterFacts) -> list[Finding]:
    findings = []
    if encounter.status in NOT_BILLABLE:
        findings.append(
            Finding(
                "encounter-not-billable",
                Severity.INFORMATION,
                f"the Encounter is {encounter.status}; no Claim is produced",
                (f"{encounter.path}.status",),
                "claim/encounter-status",
            )
        )
    elif encounter.status != "finished":
        findings.append(
            Finding(
                "encounter-not-finished",
                Severity.WARNING,
                f"the Encounter is {encounter.status}, not finished; the Claim is held for review",
                (f"{encounter.path}.status",),
                "claim/encounter-status",
                hold=True,
            )
        )
    findings += [
        Finding(
            "procedure-not-completed",
            Severity.INFORMATION,
            f"Procedure status is {p.status}{_because(p)}; only completed procedures are billed",
            (f"{p.path}.status",),
            "claim/procedure-status",
        )
        for p in encounter.skipped_procedures
    ]
    return findings


def _because(procedure: ProcedureFact) -> str:
    return f" ({procedure.status_reason})" if procedure.status_reason else ""


def _check_times(billed: list[tuple[str, ProcedureFact]], rules: Rules) -> None:
    """A billed timed code needs documented minutes, any billed code a date of service."""
    problems = []
    for cpt, procedure in billed:
        if rules.procedures.is_timed(cpt) and procedure.minutes is None:
            problems.append(
                Problem(
                    "missing-performed-period",
                    f"CPT {cpt} is a 15-minute timed code: the Procedure needs a performedPeriod with start and end",
                    f"{procedure.path}.performedPeriod",
                    "required",
                )
            )
        elif procedure.service_date is None:
            problems.append(
                Problem(
                    "missing-performed",
                    f"CPT {cpt}: the Procedure has no date of service",
                    f"{procedure.path}.performed",
                    "required",
                )
            )
    if problems:
        raise InputError(problems)


def _overlaps(timed: list[ProcedureFact]) -> list[Finding]:
    ordered = sorted(timed, key=lambda p: (p.start, p.path))
    findings = []
    for i, first in enumerate(ordered):
        for second in ordered[i + 1 :]:
            assert first.end is not None and second.start is not None  # guaranteed by _check_times
            if second.start >= first.end:
                break
            findings.append(
                Finding(
                    "overlapping-timed-services",
                    Severity.WARNING,
                    "two timed procedures overlap in time; one-on-one minutes cannot be counted twice. "
                    "Units use the documented minutes and the Claim is held for a biller to correct the times",
                    (f"{first.path}.performedPeriod", f"{second.path}.performedPeriod"),
                    "units/overlap",
                    hold=True,
                )
            )
    return findings


def _lines(
    billed: list[tuple[str, ProcedureFact]], pack: PayerPack, rules: Rules, findings: list[Finding]
) -> list[ServiceLine]:
    """One line per CPT code per date of service; same-code procedures are merged."""
    by_day: dict[date, dict[str, list[ProcedureFact]]] = defaultdict(lambda: defaultdict(list))
    for cpt, procedure in billed:
        assert procedure.service_date is not None  # guaranteed by _check_times
        by_day[procedure.service_date][cpt].append(procedure)
    lines = []
    for day in sorted(by_day):
        per_code = by_day[day]
        timed = [
            CodeMinutes(cpt, sum(p.minutes or 0 for p in procs), min(p.start for p in procs if p.start))
            for cpt, procs in per_code.items()
            if rules.procedures.is_timed(cpt)
        ]
        derivations = allocate(pack.units.method, timed, pack.label)
        for cpt in sorted(per_code):
            procedures = per_code[cpt]
            derivation = derivations.get(cpt)
            if derivation is not None and derivation.units == 0:
                findings.append(
                    Finding(
                        "timed-code-not-billed",
                        Severity.INFORMATION,
                        f"CPT {cpt} on {day.isoformat()}: {derivation.text}; documented, not billed",
                        tuple(f"{p.path}.performedPeriod" for p in procedures),
                        f"units/{pack.units.method} {pack.label}",
                    )
                )
                continue
            lines.append(
                ServiceLine(
                    cpt=cpt,
                    service_date=day,
                    units=derivation.units if derivation else 1,
                    procedure_refs=tuple(p.ref for p in procedures),
                    performer_refs=tuple(dict.fromkeys(r for p in procedures for r in p.performer_refs)),
                    body_sites=tuple(dict.fromkeys(s for p in procedures for s in p.body_sites)),
                    diagnosis_refs=tuple(dict.fromkeys(r for p in procedures for r in p.reason_refs)),
                    derivation=derivation,
                    modifiers=tuple(dict.fromkeys(m for p in procedures for m in p.modifiers)),
                )
            )
    return lines


def _diagnoses(encounter: EncounterFacts, findings: list[Finding]) -> tuple[list[Diagnosis], dict[str, int]]:
    """ICD-10-CM diagnoses in claim order (principal first), deduplicated by code."""
    conditions = {c.ref: c for c in encounter.conditions}
    diagnoses: list[Diagnosis] = []
    sequence_of: dict[str, int] = {}
    by_code: dict[str, int] = {}
    for named in encounter.diagnoses:
        if named.condition_ref in sequence_of:
            continue
        condition = conditions.get(named.condition_ref)
        if condition is None:
            findings.append(
                Finding(
                    "diagnosis-other-patient",
                    Severity.WARNING,
                    f"diagnosis {named.condition_ref} is not a Condition of the Encounter's patient",
                    (encounter.path,),
                    "claim/diagnosis",
                )
            )
            continue
        icd = next((c for c in condition.codes if c.system == ICD10CM_SYSTEM), None)
        if icd is None:
            findings.append(
                Finding(
                    "diagnosis-not-icd10cm",
                    Severity.WARNING,
                    "a diagnosis Condition has no ICD-10-CM coding and is left off the Claim",
                    (f"{condition.path}.code",),
                    "claim/diagnosis",
                )
            )
            continue
        key = icd.code.replace(".", "").upper()
        if key not in by_code:
            if len(diagnoses) == MAX_DIAGNOSES:
                findings.append(
                    Finding(
                        "too-many-diagnoses",
                        Severity.WARNING,
                        f"more than {MAX_DIAGNOSES} diagnoses; {icd.code} is left off the Claim",
                        (f"{condition.path}.code",),
                        "claim/diagnosis",
                    )
                )
                continue
            diagnoses.append(Diagnosis(len(diagnoses) + 1, icd.code, icd.display, condition.ref))
            by_code[key] = len(diagnoses)
        sequence_of[named.condition_ref] = by_code[key]
    return diagnoses, sequence_of


def _finish_line(
    line: ServiceLine,
    pack: PayerPack,
    diagnoses: list[Diagnosis],
    sequence_of: dict[str, int],
    findings: list[Finding],
) -> ServiceLine:
    """Diagnosis pointers (the line's own reasons first), price, and the narrative an unlisted code needs."""
    own = [sequence_of[r] for r in line.diagnosis_refs if r in sequence_of]
    pointers = list(dict.fromkeys(own or [d.sequence for d in diagnoses]))[:MAX_POINTERS]
    devices = pack.edits.devices
    price = pack.fee_schedule.cents(line.cpt)
    if price is None:
        findings.append(
            Finding(
                "no-fee-schedule-entry",
                Severity.WARNING,
                f"payer pack {pack.label} has no price for CPT {line.cpt}; the Claim is held",
                (),
                f"pricing {pack.label}",
                hold=True,
            )
        )
    return replace(
        line,
        diagnosis_pointers=tuple(pointers),
        unit_price_cents=price,
        description=devices.description if line.cpt == devices.bill_as else None,
    )


def _billing_provider(
    encounter: EncounterFacts, care_team: tuple[str, ...], findings: list[Finding], billable: bool
) -> str | None:
    if encounter.billing_provider_ref:
        return encounter.billing_provider_ref
    if care_team:
        findings.append(
            Finding(
                "billing-provider-defaulted",
                Severity.WARNING,
                "the Encounter has no serviceProvider; the rendering practitioner bills",
                (f"{encounter.path}.serviceProvider",),
                "claim/provider",
            )
        )
        return care_team[0]
    if billable:
        raise InputError(
            [
                Problem(
                    "missing-billing-provider",
                    "no billing provider: the Encounter has no serviceProvider and no performer",
                    f"{encounter.path}.serviceProvider",
                    "required",
                )
            ]
        )
    return None
