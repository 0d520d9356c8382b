"""EncounterFacts -> ClaimDecision: the order of the decisions (code mapping, devices,
contraindications, lines and units, diagnoses, payer edits) and what holds a Claim."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from adapter.digest import name_uuid
from adapter.errors import InputError, Problem
from adapter.model import (
    ClaimDecision,
    Contraindication,
    EncounterFacts,
    Finding,
    ProcedureFact,
    ServiceLine,
    Severity,
)
from adapter.rules.catalog import Rules
from adapter.rules.coding import map_to_cpt
from adapter.rules.contraindications import screen
from adapter.rules.dates import utc_without_zone
from adapter.rules.diagnoses import claim_diagnoses
from adapter.rules.edits import (
    EditContext,
    apply_edits,
    code_set_edit,
    device_edit,
    ncci_ptp,
    procedure_discipline,
)
from adapter.rules.lines import build_lines, check_times, finish_line, overlaps
from adapter.rules.payers import select_pack
from adapter.rules.plausibility import line_findings, procedure_findings
from adapter.rules.telehealth import place_of_service

NOT_BILLABLE = frozenset({"cancelled", "entered-in-error"})
CLAIM_ID_NAMESPACE = uuid.UUID("6f1d7b0e-5d0c-4d7e-9a53-2f1c0c7d9a11").bytes


@dataclass(frozen=True, slots=True)
class ClaimOptions:
    """Deployment choices the rules need (filled from settings by the shells)."""

    default_payer: str = "commercial"
    place_of_service: str = "11"
    max_procedure_minutes: int = 180  # a longer timed Procedure holds the Claim (rules/plausibility.py)


def claim_id(encounter_identity: str) -> str:
    """Derived from the day's identity (patient, billing provider, date of service; see rules/day.py),
    or a multi-day Encounter's own, so a retried, corrected or later push of that day keeps the id."""
    return name_uuid(CLAIM_ID_NAMESPACE, encounter_identity)


def decide(
    encounter: EncounterFacts,
    rules: Rules,
    *,
    payer: str | None,
    options: ClaimOptions,
    now: datetime | None = None,
) -> ClaimDecision:
    """The Claim decision of one Encounter; ``now`` (when given) dates the future and timely-filing checks."""
    coverage = encounter.coverages[0] if encounter.coverages else None
    pack, findings = select_pack(rules, coverage, payer, options.default_payer)
    findings += _status_findings(encounter) + _withdrawn_findings(encounter) + utc_without_zone(encounter)
    place, telehealth = place_of_service(encounter, pack, options.place_of_service)
    findings += telehealth
    billed: list[tuple[str, ProcedureFact]] = []
    for procedure in encounter.procedures:
        cpt, finding = map_to_cpt(procedure, rules.procedures)
        if finding is not None:
            findings.append(finding)
        for edit in (device_edit, code_set_edit):
            if cpt is not None:
                cpt, finding = edit(cpt, procedure, pack)
                if finding is not None:
                    findings.append(finding)
        if cpt is not None:
            billed.append((cpt, procedure))
    check_times(billed, rules)
    findings += overlaps([p for cpt, p in billed if rules.procedures.is_timed(cpt)])
    findings += procedure_findings(encounter, billed, rules, pack, options.max_procedure_minutes, now)
    diagnoses, sequence_of = claim_diagnoses(encounter, findings)
    billable = encounter.status not in NOT_BILLABLE
    screened = [p for cpt, p in billed if cpt in rules.contraindications.screened_cpt] if billable else []
    contraindications = screen(encounter, screened, rules, rules.sites, pack.contraindications)
    blocked = _report_contraindications(contraindications, findings)
    scrub = EditContext(encounter, pack, rules, diagnoses)
    # Blocked procedures leave before units are counted: their minutes must not earn units for others.
    lines = (
        _pooled_lines([(cpt, p) for cpt, p in billed if p.ref not in blocked], blocked, billed, scrub, findings)
        if billable
        else []
    )
    by_ref = {p.ref: p for p in encounter.procedures}
    lines = [finish_line(line, pack, diagnoses, sequence_of, findings, by_ref) for line in lines]
    findings += line_findings(lines, pack, set(rules.edit_tables[pack.id].caps))
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
        place_of_service=place,
        currency=pack.fee_schedule.currency,
        rule_versions=(pack.label, *rules.procedures.labels, rules.contraindications.label, rules.body_sites.label),
        contraindications=tuple(contraindications),
    )


def _excluded(billed: list[tuple[str, ProcedureFact]], left_out: set[str], rules: Rules) -> dict[date, int]:
    minutes: dict[date, int] = {}
    for cpt, procedure in billed:
        if procedure.ref in left_out and rules.procedures.is_timed(cpt) and procedure.service_date:
            minutes[procedure.service_date] = minutes.get(procedure.service_date, 0) + (procedure.minutes or 0)
    return minutes


def _pooled_lines(
    kept: list[tuple[str, ProcedureFact]],
    blocked: set[str],
    billed: list[tuple[str, ProcedureFact]],
    ctx: EditContext,
    findings: list[Finding],
) -> list[ServiceLine]:
    """Lines of the day's pool.  A column-2 code an NCCI edit does not let through is not billed, so
    its minutes leave the pool before units are counted (they must not raise other codes' units);
    the lines say how many minutes were left out.  ``ctx`` is the visit's, and leaves with no findings."""
    pack, rules = ctx.pack, ctx.rules
    first: list[Finding] = []
    by = (lambda p: procedure_discipline(ctx, p)) if pack.units.pool == "day-and-discipline" else None
    lines = build_lines(kept, pack, rules, first, _excluded(billed, blocked, rules), by)
    remaining = {
        (line.cpt, line.service_date) for line in ncci_ptp(lines, ctx, rules.edit_tables[pack.id].pairs_by_column1)
    }
    trial, ctx.findings = ctx.findings, []  # apply_edits runs the NCCI edits again over the final lines
    denied = {(line.cpt, line.service_date) for line in lines} - remaining
    if not denied:
        findings += first
        return lines
    findings += [f for f in trial if f.code == "ncci-column2-not-billable"]
    dropped = {p.ref for cpt, p in kept if (cpt, p.service_date) in denied} | blocked
    kept = [(cpt, p) for cpt, p in kept if p.ref not in dropped]
    return build_lines(kept, pack, rules, findings, _excluded(billed, dropped, rules), by)


def _withdrawn_findings(encounter: EncounterFacts) -> list[Finding]:
    lost = [
        Finding(
            "day-visit-not-converted",
            Severity.WARNING,
            f"the stored visit {visit} of this date of service no longer converts under the current rules: its "
            "minutes are left out of the day's Claim, which is held. Next step: send that visit again (corrected), "
            "or cancel it",
            (),
            "claim/day-pool",
            hold=True,
        )
        for visit in encounter.lost_visits
    ]
    return lost + [
        Finding(
            "visit-withdrawn",
            Severity.INFORMATION,
            f"the visit {ref} of this date of service is cancelled or entered in error: "
            "it is left out of the day's Claim",
            (),
            "claim/day-pool",
        )
        for ref in encounter.withdrawn_visits
        if encounter.visit_refs
    ]


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
