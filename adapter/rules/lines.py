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
from dataclasses import replace
from datetime import date

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
        what = "two timed procedures overlap in time"
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


def finish_line(
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
