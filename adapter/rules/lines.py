"""Procedures -> service lines: times checked, overlaps flagged, units allocated, one line per
CPT code per date of service, then diagnosis pointers and prices.

Overlapping timed procedures: one-on-one time cannot be spent twice, and the documentation
alone cannot say which code the shared minutes belong to.  theraclaim therefore does not guess:
units are computed on the minutes as documented, and the Claim is held (``draft``) with an
``overlapping-timed-services`` finding naming both Procedures, for a biller to correct.
"""

from __future__ import annotations

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


def overlaps(timed: list[ProcedureFact]) -> list[Finding]:
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
