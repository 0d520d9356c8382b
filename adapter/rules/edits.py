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
from dataclasses import dataclass, field, replace
from datetime import date

from adapter.model import Coding, Diagnosis, EncounterFacts, Finding, ProcedureFact, ServiceLine, Severity
from adapter.rules.catalog import PayerPack, Rules
from adapter.rules.edit_data import Discipline, MueCap, PtpPair
from adapter.rules.sites import normalize_icd

NUCC_SYSTEM = "http://nucc.org/provider-taxonomy"
MAX_MODIFIERS = 4
BYPASS = ("XE", "XS", "XP", "XU", "59")
_RANK: dict[str, int] = {"GP": 0, "GO": 0, "GN": 0, "CQ": 1, "CO": 1, **dict.fromkeys(BYPASS, 2), "KX": 3}


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


def _label(line: ServiceLine) -> str:
    return f"CPT {line.cpt} on {line.service_date.isoformat()}"


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


def ncci_ptp(lines: list[ServiceLine], ctx: EditContext, pairs: tuple[PtpPair, ...]) -> list[ServiceLine]:
    """Two passes: first the column-2 lines that are not billable leave, then bypass modifiers and
    holds are decided between the lines that are still billed (a dropped line never counts as column 1)."""
    verdicts = []
    for col1 in lines:
        for pair in pairs:
            if pair.column1 != col1.cpt or not pair.active_on(col1.service_date):
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


def _discipline(ctx: EditContext, line: ServiceLine) -> Discipline | None:
    """The plan of care covering the date of service decides; else the performer's role; else the default."""
    for plan in ctx.encounter.plans:
        if not _covers(plan.start, plan.end, line.service_date):
            continue
        for discipline in ctx.policy.disciplines:
            if any((c.system, c.code) in discipline.plan_codes for c in plan.categories):
                return discipline
    for ref in line.performer_refs:
        role = ctx.roles.get(ref)
        for discipline in ctx.policy.disciplines:
            if role in discipline.roles or role in discipline.assistant_roles:
                return discipline
    return next((d for d in ctx.policy.disciplines if d.id == ctx.policy.default_discipline), None)


def discipline_modifiers(line: ServiceLine, ctx: EditContext) -> tuple[ServiceLine, str | None]:
    """GP / GO / GN on therapy lines, CQ / CO when an assistant performed them; the line's discipline."""
    discipline = _discipline(ctx, line) if ctx.is_therapy(line) else None
    if discipline is None:
        return line, None
    added: list[str] = [discipline.modifier]
    for ref in line.performer_refs:
        role = ctx.roles.get(ref)
        owner = next((d for d in ctx.policy.disciplines if role in d.assistant_roles), None)
        if owner is None:
            continue
        if owner.id != discipline.id or owner.assistant_modifier is None:
            ctx.add(
                "assistant-discipline-mismatch",
                f"{_label(line)}: the performer ({role}) did it under a "
                f"{discipline.id} plan; {owner.assistant_modifier} goes only with {owner.modifier}",
                "modifiers",
                hold=True,
            )
        else:
            added.append(owner.assistant_modifier)
    return replace(line, modifiers=(*added, *line.modifiers)), discipline.id


def kx(lines: list[ServiceLine], disciplines: list[str | None], ctx: EditContext) -> list[ServiceLine]:
    threshold = ctx.policy.kx
    if threshold is None:
        return lines
    limit = round(float(threshold.amount) * 100)
    year_to_date = dict(ctx.encounter.coverages[0].year_to_date_cents) if ctx.encounter.coverages else {}
    result = list(lines)
    for group, members in threshold.groups.items():
        indexes = [i for i, d in enumerate(disciplines) if d in members]
        if not indexes:
            continue
        if group not in year_to_date:
            ctx.add(
                "kx-not-evaluated",
                f"no year-to-date {group} therapy amount on the Coverage "
                "(therapy-year-to-date extension): KX was not evaluated",
                "kx",
                severity=Severity.INFORMATION,
            )
            continue
        total = year_to_date[group] + sum(result[i].net_cents or 0 for i in indexes)
        if total > limit:
            for i in indexes:
                result[i] = replace(result[i], modifiers=(*result[i].modifiers, "KX"))
            placeholder = " (placeholder amount)" if threshold.placeholder else ""
            ctx.add(
                "kx-added",
                f"{group} therapy this year reaches {total / 100:.2f} over the KX threshold "
                f"{threshold.amount}{placeholder}; KX added; {threshold.source}",
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


def providers(lines: list[ServiceLine], ctx: EditContext) -> None:
    policy = ctx.policy.providers
    for line in lines:
        allowed = policy.may_bill_therapy if ctx.is_therapy(line) else policy.may_bill_other
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
            elif role not in allowed:
                ctx.add(
                    "provider-not-qualified",
                    f"{_label(line)}: role {role} may not bill it under {ctx.pack.name}",
                    "providers",
                    hold=True,
                )


def _covers(start: date | None, end: date | None, day: date) -> bool:
    return (start is None or start <= day) and (end is None or day <= end)


def plan_of_care(lines: list[ServiceLine], ctx: EditContext) -> None:
    if not ctx.policy.plan_of_care.required:
        return
    usable = [p for p in ctx.encounter.plans if p.status in ("active", "completed")]
    for day in sorted({line.service_date for line in lines if ctx.is_therapy(line)}):
        if not any(_covers(p.start, p.end, day) for p in usable):
            named = ", ".join(p.ref for p in ctx.encounter.plans) or "none in the Bundle"
            ctx.add(
                "no-plan-of-care",
                f"no active referral or plan of care (ServiceRequest / CarePlan in basedOn) "
                f"covers {day.isoformat()} (plans: {named}); {ctx.policy.plan_of_care.source}",
                "plan-of-care",
                hold=True,
                where=(f"{ctx.encounter.path}.basedOn",),
            )


def medical_necessity(lines: list[ServiceLine], ctx: EditContext) -> None:
    unsupported = ctx.policy.medical_necessity.unsupported_diagnoses
    codes = {d.sequence: normalize_icd(d.code) for d in ctx.diagnoses}
    for line in lines:
        if not line.diagnosis_pointers:
            ctx.add("no-diagnosis-pointer", f"{_label(line)} points to no diagnosis", "medical-necessity", hold=True)
            continue
        pointed = [codes[p] for p in line.diagnosis_pointers]
        if unsupported and all(any(c.startswith(prefix) for prefix, _ in unsupported) for c in pointed):
            ctx.add(
                "not-medically-necessary",
                f"{_label(line)}: its diagnoses ({', '.join(pointed)}) alone do not "
                f"support therapy; {ctx.policy.medical_necessity.source}",
                "medical-necessity",
                hold=True,
            )


EditStep = Callable[[list[ServiceLine], EditContext], None]
CHECKS: tuple[EditStep, ...] = (providers, plan_of_care, medical_necessity)


def apply_edits(lines: list[ServiceLine], ctx: EditContext) -> list[ServiceLine]:
    tables = ctx.rules.edit_tables[ctx.pack.id]
    lines = ncci_ptp(lines, ctx, tables.pairs)
    mue(lines, ctx, tables.caps)
    with_discipline = [discipline_modifiers(line, ctx) for line in lines]
    lines = kx([line for line, _ in with_discipline], [d for _, d in with_discipline], ctx)
    lines = [order_modifiers(line, ctx) for line in lines]
    for check in CHECKS:
        check(lines, ctx)
    return lines
