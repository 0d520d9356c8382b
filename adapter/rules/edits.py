"""Payer edits: the claim scrubber.  Each edit is a named rule; every finding names it.

Order: NCCI procedure-to-procedure pairs (may drop a column-2 line or add a bypass modifier),
MUE caps, discipline and assistant modifiers, KX, provider qualification, plan of care and
medical necessity; modifiers are then ordered and capped at four.

Modifier order on a line (documented; CMS accepts any order, F4.4): the discipline modifier
(GP / GO / GN), the assistant modifier (CQ / CO), NCCI bypass modifiers (XE / XS / XP / XU / 59),
KX, then anything the sender attached.  51 is never used on 97xxx and is removed with a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from msgspec.structs import replace

from adapter.model import (
    Coding,
    Diagnosis,
    EncounterFacts,
    Finding,
    PlanFact,
    ProcedureFact,
    ServiceLine,
    Severity,
)
from adapter.rules.catalog import PayerPack, Rules
from adapter.rules.edit_data import Discipline, MueCap, PtpPair
from adapter.rules.sent import BYPASS, report, take_off
from adapter.rules.sent import line_label as _label
from adapter.rules.sites import normalize_icd
from adapter.rules.telehealth import telehealth_modifier

NUCC_SYSTEM = "http://nucc.org/provider-taxonomy"
UNIT, MIDPOINT = 15, 8  # minutes of a timed unit; minutes that earn one (Pub 100-04 ch. 5 §20.2)
MAX_MODIFIERS = 4
_RANK: dict[str, int] = {
    "GP": 0,
    "GO": 0,
    "GN": 0,
    "AT": 0,
    "CQ": 1,
    "CO": 1,
    **dict.fromkeys(BYPASS, 2),
    "KX": 3,
    "GY": 3,
    "95": 3,
}


@dataclass
class EditContext:
    encounter: EncounterFacts
    pack: PayerPack
    rules: Rules
    diagnoses: list[Diagnosis]
    findings: list[Finding] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.procedures = {p.ref: p for p in self.encounter.procedures}
        self.policy = self.pack.edits
        self.roles = {p.ref: self._role(p.qualifications) for p in self.encounter.practitioners}

    def _role(self, qualifications: tuple[Coding, ...]) -> str | None:
        """The first provider role of the pack that one of the qualification codes falls under."""
        for role in self.policy.providers.roles:
            if any(c.system == role.system and c.code.startswith(role.code_prefix) for c in qualifications):
                return role.role
        return None

    def rule(self, name: str) -> str:
        return f"edits/{name} {self.pack.label}"

    def add(
        self,
        code: str,
        message: str,
        name: str,
        *,
        hold: bool = False,
        where: tuple[str, ...] = (),
        severity: Severity = Severity.WARNING,
    ) -> None:
        self.findings.append(Finding(code, severity, message, where, self.rule(name), hold=hold))

    def line_procedures(self, line: ServiceLine) -> list[ProcedureFact]:
        return [self.procedures[r] for r in line.procedure_refs if r in self.procedures]

    def is_therapy(self, line: ServiceLine) -> bool:
        return self.rules.procedures.codes[line.cpt].therapy


# --- devices ---------------------------------------------------------------------------------------------


def device_edit(cpt: str, procedure: ProcedureFact, pack: PayerPack) -> tuple[str | None, Finding | None]:
    """A massage chair, bed or hydro-massage table is not hands-on 97124 / 97140 (billing-rules.md F9.6)."""
    policy = pack.edits.devices
    if cpt not in policy.applies_to:
        return cpt, None
    device = next(
        (
            display
            for system, code, display in policy.codes
            for c in procedure.device_codes
            if (c.system, c.code) == (system, code)
        ),
        None,
    )
    if device is None:
        return cpt, None
    rule = f"edits/devices {pack.label}"
    where = (f"{procedure.path}.usedCode", f"{procedure.path}.focalDevice")
    if policy.bill_as:
        message = (
            f"CPT {cpt} done with a {device} is not hands-on therapy: billed as {policy.bill_as} "
            f"(unlisted modality) with a description; {policy.source}"
        )
        return policy.bill_as, Finding("device-billed-as-unlisted", Severity.WARNING, message, where, rule)
    message = (
        f"CPT {cpt} done with a {device} is not hands-on therapy and {pack.name} has no code for it: "
        f"not billed; {policy.source}"
    )
    return None, Finding("device-not-billable", Severity.WARNING, message, where, rule)


# --- the payer's code set -------------------------------------------------------------------------------


def code_set_edit(cpt: str, procedure: ProcedureFact, pack: PayerPack) -> tuple[str | None, Finding | None]:
    """A code the payer replaces (97014 -> G0283 for Medicare), bundles (97010, status B) or does not pay."""
    rule = pack.edits.code_set.rule_for(cpt)
    if rule is None:
        return cpt, None
    name = f"edits/code-set {pack.label}"
    where = (f"{procedure.path}.code",)
    if rule.action == "bill-as" and rule.bill_as:
        message = f"CPT {cpt}: {pack.name} does not recognize it; billed as {rule.bill_as}; {rule.source}"
        return rule.bill_as, Finding("code-replaced", Severity.INFORMATION, message, where, name)
    what = "bundled (not separately billable)" if rule.action == "bundled" else "not paid by this payer"
    message = f"CPT {cpt} is {what} under {pack.name}: left off the Claim, documented only; {rule.source}"
    return None, Finding(f"code-{rule.action}", Severity.INFORMATION, message, where, name)


# --- NCCI procedure-to-procedure pairs -------------------------------------------------------------


def _separate_in_time(first: list[ProcedureFact], second: list[ProcedureFact]) -> bool | None:
    """True when no procedure of one overlaps one of the other; None when a time is not documented."""
    if any(p.start is None or p.end is None for p in first + second):
        return None
    return all(a.end <= b.start or b.end <= a.start for a in first for b in second)  # type: ignore[operator]


def _different_region(ctx: EditContext, first: ServiceLine, second: ServiceLine) -> bool | None:
    sites = ctx.rules.sites
    one, two = sites.of_codings(first.body_sites), sites.of_codings(second.body_sites)
    if not one.known or not two.known:
        return None
    return not sites.meet(one, two)


def _pair_verdict(ctx: EditContext, pair: PtpPair, col1: ServiceLine, col2: ServiceLine) -> tuple[str, str]:
    """("bypass", modifier), ("deny", reason) or ("undocumented", what is missing) for the column-2 line."""
    if pair.modifier_indicator == 0:
        return "deny", "no modifier bypasses it"
    ncci = ctx.policy.ncci
    if pair.bypass == "distinct-service":
        return "bypass", ncci.time_modifier
    if pair.bypass == "spinal-region":
        different = _different_region(ctx, col1, col2)
        if different is None:
            return "undocumented", "body sites for both"
        return ("bypass", ncci.region_modifier) if different else ("deny", "same spinal region")
    separate = _separate_in_time(ctx.line_procedures(col1), ctx.line_procedures(col2))
    if separate is None:
        return "undocumented", "start and end times"
    return ("bypass", ncci.time_modifier) if separate else ("deny", "same time block")


def ncci_ptp(lines: list[ServiceLine], ctx: EditContext, pairs: dict[str, tuple[PtpPair, ...]]) -> list[ServiceLine]:
    """Two passes: first the column-2 lines that are not billable leave, then bypass modifiers and
    holds are decided between the lines that are still billed (a dropped line never counts as column 1).
    ``pairs``: the pack's NCCI pairs by column-1 code (EditTables.pairs_by_column1)."""
    verdicts = []
    for col1 in lines:
        for pair in pairs.get(col1.cpt, ()):
            if not pair.active_on(col1.service_date):
                continue
            col2 = next((x for x in lines if x.cpt == pair.column2 and x.service_date == col1.service_date), None)
            if col2 is not None:
                verdicts.append((pair, col1, col2, *_pair_verdict(ctx, pair, col1, col2)))
    dropped = {id(col2) for _, _, col2, verdict, _ in verdicts if verdict == "deny"}
    modifiers: dict[int, list[str]] = {}
    for pair, col1, col2, verdict, detail in verdicts:
        what = f"NCCI pair {pair.column1}/{pair.column2}, modifier indicator {pair.modifier_indicator} ({pair.source})"
        if verdict == "deny":
            ctx.add(
                "ncci-column2-not-billable",
                f"{_label(col2)} is not billable with {pair.column1}: {detail}; {what}",
                "ncci-ptp",
            )
        elif id(col1) in dropped or id(col2) in dropped:
            continue
        elif verdict == "undocumented":
            ctx.add(
                "ncci-undocumented",
                f"{_label(col2)} with {pair.column1}: document {detail} to bill it with a bypass modifier; {what}",
                "ncci-ptp",
                hold=True,
            )
        else:
            modifiers.setdefault(id(col2), []).append(detail)
            ctx.add(
                "ncci-bypass",
                f"{_label(col2)} billed with {detail} beside {pair.column1}; {what}",
                "ncci-ptp",
                severity=Severity.INFORMATION,
            )
    return [
        replace(line, modifiers=(*line.modifiers, *modifiers[id(line)])) if id(line) in modifiers else line
        for line in lines
        if id(line) not in dropped
    ]


# --- MUE -----------------------------------------------------------------------------------------------


def mue(lines: list[ServiceLine], ctx: EditContext, caps: dict[str, MueCap]) -> None:
    kinds = {1: "per line", 2: "per date of service (policy)", 3: "per date of service (clinical)"}
    for line in lines:
        cap = caps.get(line.cpt)
        if cap is not None and line.units > cap.units:
            placeholder = " (placeholder value, not from the CMS file)" if cap.placeholder else ""
            ctx.add(
                "mue-exceeded",
                f"{_label(line)}: {line.units} units exceed the MUE of {cap.units} "
                f"{kinds[cap.mai]}{placeholder}; {cap.source}",
                "mue",
                hold=True,
            )


# --- modifiers -------------------------------------------------------------------------------------------


def discipline_of(
    ctx: EditContext, day: date, performer_refs: tuple[str, ...], plan_refs: tuple[str, ...] = ()
) -> Discipline | None:
    """The plan of care covering the date of service decides (the procedures' own plans first); else
    the performer's role; else the pack's default."""
    own = [p for p in ctx.encounter.plans if p.ref in plan_refs]
    for plan in own + [p for p in ctx.encounter.plans if p not in own]:
        if not _covers(plan.start, plan.end, day):
            continue
        for discipline in ctx.policy.disciplines:
            if any((c.system, c.code) in discipline.plan_codes for c in plan.categories):
                return discipline
    for ref in performer_refs:
        role = ctx.roles.get(ref)
        for discipline in ctx.policy.disciplines:
            if role in discipline.roles or role in discipline.assistant_roles:
                return discipline
    return next((d for d in ctx.policy.disciplines if d.id == ctx.policy.default_discipline), None)


def _discipline(ctx: EditContext, line: ServiceLine) -> Discipline | None:
    if line.discipline is not None:  # the pool the line's units were counted in
        return next((d for d in ctx.policy.disciplines if d.id == line.discipline), None)
    plans = tuple(r for p in ctx.line_procedures(line) for r in p.plan_refs)
    return discipline_of(ctx, line.service_date, line.performer_refs, plans)


def procedure_discipline(ctx: EditContext, procedure: ProcedureFact) -> str | None:
    """The discipline whose pool a therapy procedure's minutes count in (units.pool: day-and-discipline)."""
    assert procedure.service_date is not None
    found = discipline_of(ctx, procedure.service_date, procedure.performer_refs, procedure.plan_refs)
    return found.id if found else None


def _assistant_minutes(ctx: EditContext, line: ServiceLine, discipline: Discipline) -> tuple[int, int, list[str]]:
    """(therapist minutes, assistant minutes, mismatched assistant roles) of a line's procedures.

    Only minutes an assistant furnished independently count as the assistant's: a procedure the
    therapist also performed is the therapist's (CMS CQ/CO billing examples; CY 2020 PFS final rule,
    84 FR 62702-62707)."""
    therapist = assistant = 0
    mismatched: list[str] = []
    for procedure in ctx.line_procedures(line):
        roles = [ctx.roles.get(ref) for ref in procedure.performer_refs]
        assistants = [r for r in roles if any(r in d.assistant_roles for d in ctx.policy.disciplines)]
        minutes = procedure.minutes or 0
        if not assistants or len(assistants) < len(roles):
            therapist += minutes
            continue
        if any(r not in discipline.assistant_roles or discipline.assistant_modifier is None for r in assistants):
            mismatched += [r for r in assistants if r is not None]
        assistant += minutes
    return therapist, assistant, mismatched


def _assistant_units(units: int, therapist: int, assistant: int, timed: bool, ctx: EditContext) -> tuple[int, str]:
    """How many of a line's units are furnished in whole or in part by the assistant, and why.

    Timed codes: each clinician's full 15-minute units first; a unit left over is the assistant's when
    their minutes exceed the de minimis share (10 %) of its minutes, unless the pack's final-unit rule
    gives it to a therapist who alone furnished the 8 minutes a unit needs; two units left over (each
    clinician 9-14 minutes) are one each.  Untimed codes: the de minimis share of all minutes."""
    policy = ctx.policy.assistant
    share = policy.de_minimis_percent
    if therapist == 0:
        return units, "furnished in whole by the assistant"
    if not timed:
        over = assistant * 100 > share * (therapist + assistant)
        return (
            units if over else 0
        ), f"assistant {assistant} of {therapist + assistant} minutes vs {share}% de minimis"
    full_t, full_a = therapist // UNIT, assistant // UNIT
    left = max(units - full_t - full_a, 0)
    rest_t, rest_a = therapist % UNIT, assistant % UNIT
    why = f"full units: therapist {full_t}, assistant {full_a}"
    extra = 0
    if left >= 2:
        extra = left - 1
        why += f"; {left} units left, one each (the rest the assistant's)"
    elif left == 1:
        if policy.final_unit == "therapist-midpoint" and rest_t >= MIDPOINT and rest_t >= rest_a:
            why += f"; the unit left: the therapist's {rest_t} min alone reach the 8-minute midpoint"
        elif rest_a * 100 > share * (rest_t + rest_a):
            extra = 1
            why += f"; the unit left: assistant {rest_a} of {rest_t + rest_a} min exceed {share}% de minimis"
        else:
            why += f"; the unit left: assistant {rest_a} of {rest_t + rest_a} min within {share}% de minimis"
    return min(full_a + extra, units), why


def discipline_modifiers(line: ServiceLine, ctx: EditContext) -> list[tuple[ServiceLine, str | None]]:
    """GP / GO / GN on therapy lines; CQ / CO per unit for the units an assistant furnished in whole or
    in part, which can split one code into a line with and a line without CQ / CO."""
    discipline = _discipline(ctx, line) if ctx.is_therapy(line) else None
    if discipline is None:
        return [(line, None)]
    therapist, assistant, mismatched = _assistant_minutes(ctx, line, discipline)
    with_discipline = replace(line, modifiers=(discipline.modifier, *line.modifiers))
    for role in dict.fromkeys(mismatched):
        owner = next((d for d in ctx.policy.disciplines if role in d.assistant_roles), None)
        ctx.add(
            "assistant-discipline-mismatch",
            f"{_label(line)}: the performer ({role}) did it under a {discipline.id} plan; "
            f"{owner.assistant_modifier if owner else 'an assistant modifier'} goes only with "
            f"{owner.modifier if owner else 'its own discipline'}. Next step: correct the plan or the performer",
            "modifiers",
            hold=True,
        )
    if mismatched or discipline.assistant_modifier is None:
        return [(with_discipline, discipline.id)]
    if assistant == 0:
        return [(with_discipline, discipline.id)]
    cq_units, why = _assistant_units(line.units, therapist, assistant, line.derivation is not None, ctx)
    modifier = discipline.assistant_modifier
    if therapist:  # both furnished minutes of the code: say how the units were shared
        ctx.add(
            "assistant-units",
            f"{_label(line)}: {line.units} unit(s), {cq_units} with {modifier} (therapist {therapist} min, "
            f"assistant alone {assistant} min; {why}); {ctx.policy.assistant.source}",
            "modifiers",
            severity=Severity.INFORMATION,
        )
    assisted = replace(line, units=cq_units, modifiers=(discipline.modifier, modifier, *line.modifiers))
    if cq_units == line.units:
        return [(assisted, discipline.id)]
    if cq_units == 0:
        return [(with_discipline, discipline.id)]
    return [(replace(with_discipline, units=line.units - cq_units), discipline.id), (assisted, discipline.id)]


def _allowed_cents(line: ServiceLine, ctx: EditContext) -> int:
    """What the line adds to the year-to-date therapy amount: the threshold counts incurred (allowed)
    expenses, and the payer allows a CQ / CO line at the pack's assistant payment share."""
    cents = line.net_cents or 0
    assistant = {d.assistant_modifier for d in ctx.policy.disciplines if d.assistant_modifier}
    if assistant.isdisjoint(line.modifiers):
        return cents
    return ctx.policy.assistant.allowed_cents(cents, line.service_date)


def kx(lines: list[ServiceLine], disciplines: list[str | None], ctx: EditContext) -> list[ServiceLine]:
    """KX when the year-to-date therapy amount plus this claim's lines exceed the threshold of the date of
    service's calendar year (a table in the pack); a KX the sender attached is checked, not passed on."""
    threshold = ctx.policy.kx
    if threshold is None:
        return lines
    year_to_date = dict(ctx.encounter.coverages[0].year_to_date_cents) if ctx.encounter.coverages else {}
    sent = {i for i, line in enumerate(lines) if "KX" in line.modifiers}
    result = [
        replace(line, modifiers=tuple(m for m in line.modifiers if m != "KX")) if i in sent else line
        for i, line in enumerate(lines)
    ]
    not_evaluated: list[str] = []
    kept: set[int] = set()
    for group, members in threshold.groups.items():
        indexes = [i for i, d in enumerate(disciplines) if d in members]
        if not indexes:
            continue
        year = max(result[i].service_date for i in indexes).year
        entry = threshold.for_year(year)
        if entry is None:
            known = ", ".join(str(y.year) for y in threshold.by_year)
            ctx.add(
                "kx-threshold-year-unknown",
                f"no KX threshold for calendar year {year} in {ctx.pack.label} (years: {known}); KX cannot be "
                "decided. Next step: add the year's amount to the pack (edits.kx.by_year) from the CMS annual update",
                "kx",
                hold=group in year_to_date,
            )
            kept |= {i for i in indexes if i in sent}
            continue
        if group not in year_to_date:
            not_evaluated.append(group)
            kept |= {i for i in indexes if i in sent}
            continue
        limit = round(float(entry.amount) * 100)
        total = year_to_date[group] + sum(_allowed_cents(result[i], ctx) for i in indexes)
        placeholder = " (placeholder amount)" if entry.placeholder else ""
        added = total - year_to_date[group]
        basis = (
            f"{group} therapy this year {year_to_date[group] / 100:.2f} + this claim {added / 100:.2f} "
            f"({threshold.amounts}) = {total / 100:.2f}"
        )
        if total > limit:
            for i in indexes:
                result[i] = replace(result[i], modifiers=(*result[i].modifiers, "KX"))
            ctx.add(
                "kx-added",
                f"{basis}, over the CY{year} KX threshold {entry.amount}{placeholder}; KX added; {entry.source}",
                "kx",
                severity=Severity.INFORMATION,
            )
        elif any(i in sent for i in indexes):
            ctx.add(
                "kx-removed",
                f"{basis}, not over the CY{year} KX threshold {entry.amount}{placeholder}: the KX the sender "
                f"attached is removed (KX below the threshold attests what is not so); {entry.source}",
                "kx",
            )
    for i in sorted(kept):
        result[i] = replace(result[i], modifiers=(*result[i].modifiers, "KX"))
    if not_evaluated:
        as_sent = " (a KX the sender attached is kept as sent, unverified)" if kept else ""
        ctx.add(
            "kx-not-evaluated",
            f"no year-to-date therapy amount on the Coverage for {', '.join(not_evaluated)} (therapy-year-to-date "
            f"extension): KX was not evaluated{as_sent}",
            "kx",
            severity=Severity.INFORMATION,
        )
    return result


def order_modifiers(line: ServiceLine, ctx: EditContext) -> ServiceLine:
    kept = [m for m in dict.fromkeys(line.modifiers) if not (m == "51" and line.cpt.startswith("97"))]
    if len(kept) != len(dict.fromkeys(line.modifiers)):
        ctx.add(
            "modifier-51-removed",
            f"{_label(line)}: modifier 51 is never used on 97xxx therapy codes; removed",
            "modifiers",
        )
    kept.sort(key=lambda m: _RANK.get(m, 4))
    if tuple(kept) == line.modifiers:
        return line
    if len(kept) > MAX_MODIFIERS:
        ctx.add(
            "too-many-modifiers",
            f"{_label(line)}: {len(kept)} modifiers ({', '.join(kept)}); a line carries at most {MAX_MODIFIERS}",
            "modifiers",
            hold=True,
        )
        kept = kept[:MAX_MODIFIERS]
    return replace(line, modifiers=tuple(kept))


# --- who, why and under which plan -------------------------------------------------------------------------


def chiropractic_at(line: ServiceLine, ctx: EditContext) -> ServiceLine:
    """Spinal CMT by a chiropractor carries AT for active / corrective treatment; maintenance therapy
    (Procedure extension treatment-phase = maintenance) is not covered and is held."""
    policy = ctx.policy.chiropractic
    if line.cpt not in policy.codes or not any(ctx.roles.get(r) in policy.roles for r in line.performer_refs):
        return line
    phases = {v for p in ctx.line_procedures(line) for url, v in p.extensions if url.endswith("/treatment-phase")}
    if "maintenance" in phases:
        ctx.add(
            "cmt-maintenance",
            f"{_label(line)}: chiropractic maintenance therapy is not covered (no {policy.modifier}); held. Next "
            f"step: bill with GA under a signed ABN, or not at all; {policy.source}",
            "chiropractic",
            hold=True,
        )
        return line
    if "active" not in phases:
        ctx.add(
            "cmt-phase-undocumented",
            f"{_label(line)}: {policy.modifier} added for active / corrective treatment, but the Procedure does not "
            "say so (treatment-phase extension). Next step: confirm the documentation supports active treatment; "
            f"{policy.source}",
            "chiropractic",
        )
    return replace(line, modifiers=(*line.modifiers, policy.modifier))


def providers(lines: list[ServiceLine], ctx: EditContext) -> list[ServiceLine]:
    policy = ctx.policy.providers
    result = []
    for line in lines:
        allowed = policy.may_bill_therapy if ctx.is_therapy(line) else policy.may_bill_other
        result.append(line)
        if allowed is None:
            continue
        for ref in line.performer_refs:
            role = ctx.roles.get(ref)
            if role is None:
                ctx.add(
                    "provider-qualification-unknown",
                    f"{_label(line)}: the performer {ref} has no provider "
                    "taxonomy this pack knows; cannot tell whether they may bill it",
                    "providers",
                    hold=True,
                )
            elif role not in allowed and policy.excluded_route == "gy":
                result[-1] = replace(line, modifiers=(*line.modifiers, "GY"))
                ctx.add(
                    "provider-excluded-gy",
                    f"{_label(line)}: role {role} may not bill it under {ctx.pack.name} (statutorily excluded): billed "
                    f"with GY so the payer denies it; {policy.excluded_source}",
                    "providers",
                )
            elif role not in allowed:
                ctx.add(
                    "provider-not-qualified",
                    f"{_label(line)}: role {role} may not bill it under {ctx.pack.name}; held. Next step: bill it "
                    f"under a qualified provider, or as excluded (GY) where the payer wants the denial; "
                    f"{policy.excluded_source}",
                    "providers",
                    hold=True,
                )
    return result


def _covers(start: date | None, end: date | None, day: date) -> bool:
    return (start is None or start <= day) and (end is None or day <= end)


def plan_of_care(lines: list[ServiceLine], ctx: EditContext) -> None:
    policy = ctx.policy.plan_of_care
    if not policy.required:
        return
    usable = [p for p in ctx.encounter.plans if p.status in ("active", "completed")]
    for day in sorted({line.service_date for line in lines if ctx.is_therapy(line)}):
        covering = [p for p in usable if _covers(p.start, p.end, day)]
        if not covering:
            named = ", ".join(p.ref for p in ctx.encounter.plans) or "none in the Bundle"
            ctx.add(
                "no-plan-of-care",
                f"no active referral or plan of care (ServiceRequest / CarePlan in basedOn) "
                f"covers {day.isoformat()} (plans: {named}). Next step: add a plan of care covering "
                f"{day.isoformat()}; {policy.source}",
                "plan-of-care",
                hold=True,
                where=(f"{ctx.encounter.path}.basedOn",),
            )
            continue
        _plan_dates(ctx, covering[0], day)


def _plan_dates(ctx: EditContext, plan: PlanFact, day: date) -> None:
    """The certification period (90 days unless the plan says less) and the progress-report interval."""
    policy = ctx.policy.plan_of_care
    if policy.certification_days and plan.start is not None:
        certified = plan.start + timedelta(days=policy.certification_days - 1)
        if plan.end is not None and plan.end < certified:
            certified = plan.end
        if day > certified:
            ctx.add(
                "recertification-due",
                f"the plan of care {plan.ref} (from {plan.start.isoformat()}) is certified through "
                f"{certified.isoformat()} ({policy.certification_days} days at most); {day.isoformat()} needs a "
                f"recertified plan. Next step: add the recertification covering {day.isoformat()}; "
                f"{policy.dates_source}",
                "plan-of-care",
                hold=policy.recertification == "hold",
                where=(f"{plan.path}",),
            )
    since = plan.treatment_days_since_progress
    if policy.progress_report_days and since is not None and since + 1 > policy.progress_report_days:
        ctx.add(
            "progress-report-due",
            f"{since} treatment days since the last progress report on {plan.ref}: one is due at least every "
            f"{policy.progress_report_days} treatment days. Next step: document the progress report for "
            f"{day.isoformat()}; {policy.dates_source}",
            "plan-of-care",
            hold=policy.progress_report == "hold",
            where=(f"{plan.path}.extension",),
        )


def medical_necessity(lines: list[ServiceLine], ctx: EditContext) -> None:
    unsupported = tuple(prefix for prefix, _ in ctx.policy.medical_necessity.unsupported_diagnoses)
    codes = {d.sequence: normalize_icd(d.code) for d in ctx.diagnoses}
    for line in lines:
        if not line.diagnosis_pointers:
            ctx.add("no-diagnosis-pointer", f"{_label(line)} points to no diagnosis", "medical-necessity", hold=True)
            continue
        pointed = [codes[p] for p in line.diagnosis_pointers]
        if unsupported and all(c.startswith(unsupported) for c in pointed):
            ctx.add(
                "not-medically-necessary",
                f"{_label(line)}: its diagnoses ({', '.join(pointed)}) alone do not "
                f"support therapy; {ctx.policy.medical_necessity.source}",
                "medical-necessity",
                hold=True,
            )


EditStep = Callable[[list[ServiceLine], EditContext], None]
CHECKS: tuple[EditStep, ...] = (plan_of_care, medical_necessity)


def apply_edits(lines: list[ServiceLine], ctx: EditContext) -> list[ServiceLine]:
    tables = ctx.rules.edit_tables[ctx.pack.id]
    lines, sent = take_off(lines, ctx.procedures, ctx.pack)
    lines = ncci_ptp(lines, ctx, tables.pairs_by_column1)
    mue(lines, ctx, tables.caps)
    with_discipline = [pair for line in lines for pair in discipline_modifiers(line, ctx)]
    lines = kx([line for line, _ in with_discipline], [d for _, d in with_discipline], ctx)
    lines = [chiropractic_at(line, ctx) for line in providers(lines, ctx)]
    lines = telehealth_modifier(lines, ctx.encounter, ctx.pack)
    lines = [order_modifiers(line, ctx) for line in lines]
    ctx.findings += report(lines, sent, ctx.pack)
    for check in CHECKS:
        check(lines, ctx)
    return lines
