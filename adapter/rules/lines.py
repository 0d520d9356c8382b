"""Procedures -> service lines: times checked, overlaps flagged, units allocated, one line per
CPT code per date of service, then diagnosis pointers and prices.

Overlapping timed procedures: one-on-one time cannot be spent twice, and the documentation
alone cannot say which code the shared minutes belong to.  theraclaim therefore does not guess:
units are computed on the minutes as documented, and the Claim is held (``draft``) with one
``overlapping-timed-services`` finding naming the Procedures (at most ten, with the counts), for a
biller to correct.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable
from datetime import date

from msgspec.structs import replace

from adapter.errors import InputError, Problem
from adapter.model import Diagnosis, Finding, ProcedureFact, ServiceLine, Severity
from adapter.rules.catalog import PayerPack, Rules
from adapter.rules.units import CodeMinutes, allocate

MAX_POINTERS = 4  # diagnosis pointers per line (SV107, billing-rules.md F8.4)


def check_times(billed: list[tuple[str, ProcedureFact]], rules: Rules) -> None:
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


MAX_NAMED_OVERLAPS = 10  # Procedures named by the one overlap finding; the message gives the counts


def overlaps(timed: list[ProcedureFact]) -> list[Finding]:
    """One finding for all the overlapping timed procedures of an Encounter, in O(n log n).

    With the procedures sorted by start, one overlaps an earlier one when it starts before the
    latest end so far, and a later one when the next start is before its own end; the pairs are
    counted with a binary search instead of listed, so 800 overlapping procedures make one finding.
    """
    ordered = sorted(timed, key=lambda p: (p.start, p.path))
    starts = [p.start for p in ordered if p.start is not None]  # all of them (check_times)
    involved, pairs, latest_end = [], 0, None
    for i, procedure in enumerate(ordered):
        assert procedure.start is not None and procedure.end is not None  # guaranteed by check_times
        later = bisect_left(starts, procedure.end, lo=i + 1) - (i + 1)
        pairs += later
        if later or (latest_end is not None and procedure.start < latest_end):
            involved.append(procedure)
        latest_end = procedure.end if latest_end is None else max(latest_end, procedure.end)
    if not pairs:
        return []
    if pairs == 1:
        first, second = involved[0], involved[1]
        assert first.end is not None and second.end is not None and second.start is not None  # check_times
        shared = int((min(first.end, second.end) - second.start).total_seconds() // 60)
        what = (
            f"two timed procedures overlap by {shared} minutes (units counted the documented {first.minutes} + "
            f"{second.minutes} minutes); next step: document which code the shared {shared} minutes belong to"
        )
    else:
        named = f"; the first {MAX_NAMED_OVERLAPS} are named" if len(involved) > MAX_NAMED_OVERLAPS else ""
        what = f"{len(involved)} timed procedures overlap in time ({pairs} overlapping pairs{named})"
    return [
        Finding(
            "overlapping-timed-services",
            Severity.WARNING,
            f"{what}; one-on-one minutes cannot be counted twice. "
            "Units use the documented minutes and the Claim is held for a biller to correct the times",
            tuple(f"{p.path}.performedPeriod" for p in involved[:MAX_NAMED_OVERLAPS]),
            "units/overlap",
            hold=True,
        )
    ]


def build_lines(
    billed: list[tuple[str, ProcedureFact]],
    pack: PayerPack,
    rules: Rules,
    findings: list[Finding],
    excluded_minutes: dict[date, int] | None = None,
    discipline_of: Callable[[ProcedureFact], str | None] | None = None,
) -> list[ServiceLine]:
    """One line per CPT code per date of service; same-code procedures are merged.

    ``excluded_minutes``: timed minutes of the day whose lines are not billed (an NCCI edit or a
    contraindication took them out); they are left out of the pool and named on the lines.
    ``discipline_of``: when given (``units.pool: day-and-discipline``), each therapy discipline of
    the day is its own pool and its own lines.
    """
    by_day: dict[tuple[date, str], dict[str, list[ProcedureFact]]] = defaultdict(lambda: defaultdict(list))
    for cpt, procedure in billed:
        assert procedure.service_date is not None  # guaranteed by _check_times
        therapy = rules.procedures.codes[cpt].therapy
        discipline = (discipline_of(procedure) if discipline_of and therapy else None) or ""
        by_day[(procedure.service_date, discipline)][cpt].append(procedure)
    lines = []
    for day, discipline in sorted(by_day):
        per_code = by_day[(day, discipline)]
        timed = [
            CodeMinutes(cpt, sum(p.minutes or 0 for p in procs), min(p.start for p in procs if p.start))
            for cpt, procs in per_code.items()
            if rules.procedures.is_timed(cpt)
        ]
        visits = len({p.encounter_ref for procs in per_code.values() for p in procs})
        derivations = {
            cpt: replace(d, visits=visits, excluded_minutes=(excluded_minutes or {}).get(day, 0))
            for cpt, d in allocate(pack.units.method, timed, pack.label).items()
        }
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
                    units=derivation.units if derivation else _untimed_units(cpt, procedures, pack),
                    procedure_refs=tuple(p.ref for p in procedures),
                    performer_refs=tuple(dict.fromkeys(r for p in procedures for r in p.performer_refs)),
                    body_sites=tuple(dict.fromkeys(s for p in procedures for s in p.body_sites)),
                    diagnosis_refs=tuple(dict.fromkeys(r for p in procedures for r in p.reason_refs)),
                    derivation=derivation,
                    modifiers=tuple(dict.fromkeys(m for p in procedures for m in p.modifiers)),
                    discipline=discipline or None,
                )
            )
    return sorted(lines, key=lambda line: (line.service_date, line.cpt, line.discipline or ""))


def _untimed_units(cpt: str, procedures: list[ProcedureFact], pack: PayerPack) -> int:
    """Untimed codes: 1 per date of service; a per-session code (97150 group therapy) 1 per visit."""
    if cpt in pack.edits.code_set.per_session:
        return len({p.encounter_ref for p in procedures})
    return 1


def finish_line(
    line: ServiceLine,
    pack: PayerPack,
    diagnoses: list[Diagnosis],
    sequence_of: dict[str, int],
    findings: list[Finding],
    procedures: dict[str, ProcedureFact] | None = None,
) -> ServiceLine:
    """Diagnosis pointers (the line's own reasons first), price, and the narrative an unlisted code needs."""
    own = [sequence_of[r] for r in line.diagnosis_refs if r in sequence_of]
    pointers = list(dict.fromkeys(own or [d.sequence for d in diagnoses]))[:MAX_POINTERS]
    procedures = procedures or {}
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
        description=_description(line, pack, procedures, findings),
    )


def _description(
    line: ServiceLine, pack: PayerPack, procedures: dict[str, ProcedureFact], findings: list[Finding]
) -> str | None:
    """The narrative an unlisted code (97039) needs: the Procedures' own text, else the device description."""
    devices, code_set = pack.edits.devices, pack.edits.code_set
    if line.cpt != devices.bill_as and line.cpt not in code_set.needs_description:
        return None
    own = [p.description for r in line.procedure_refs if (p := procedures.get(r)) and p.description]
    if own:
        return "; ".join(dict.fromkeys(own))
    device = any(p.device_codes for r in line.procedure_refs if (p := procedures.get(r)))
    if device and line.cpt == devices.bill_as:
        return devices.description
    findings.append(
        Finding(
            "unlisted-code-needs-description",
            Severity.WARNING,
            f"CPT {line.cpt} on {line.service_date.isoformat()} is an unlisted code: the payer needs a description "
            "of the service. Next step: put it in Procedure.code.text or a Procedure.note; the Claim is held",
            tuple(f"{p.path}.code.text" for r in line.procedure_refs if (p := procedures.get(r))),
            f"edits/code-set {pack.label}",
            hold=True,
        )
    )
    return None
