"""Plausibility: documented times and units no biller would send without a second look.

Each check holds the Claim (``draft``) with a finding naming the element, never changes units:
a timed Procedure longer than the configured maximum (``ClaimOptions.max_procedure_minutes``), a
Procedure outside its Encounter's period, a date of service after ``now``, a date of service older
than the pack's timely-filing limit (Medicare: one calendar year, 42 CFR 424.44), and a line with
more units than the pack's ceiling.  A Procedure lasting ten years is therefore never billed as
350,690 units of 97124 without anyone looking.
"""

from __future__ import annotations

from calendar import monthrange
from datetime import date, datetime
from functools import lru_cache

from adapter.model import EncounterFacts, Finding, ProcedureFact, ServiceLine, Severity
from adapter.rules.catalog import PayerPack, Rules


@lru_cache(maxsize=4096)  # (asked per Procedure, of the few dates of service a run sees)
def add_months(day: date, months: int) -> date:
    """The same day ``months`` later (the month's last day when it is shorter)."""
    year, month = divmod(day.month - 1 + months, 12)
    year += day.year
    if year > date.max.year:
        return date.max
    return date(year, month + 1, min(day.day, monthrange(year, month + 1)[1]))


def _day(value: datetime | date) -> date:
    return value.date() if isinstance(value, datetime) else value


def _before(moment: datetime | None, day: date | None, bound: datetime | date) -> bool:
    if isinstance(bound, datetime):
        return moment is not None and moment < bound
    return day is not None and day < bound


def _after(moment: datetime | None, day: date | None, bound: datetime | date) -> bool:
    if isinstance(bound, datetime):
        return moment is not None and moment > bound
    return day is not None and day > bound


def _hold(code: str, message: str, where: tuple[str, ...], rule: str) -> Finding:
    return Finding(code, Severity.WARNING, f"{message}; the Claim is held for review", where, rule, hold=True)


def procedure_findings(
    encounter: EncounterFacts,
    billed: list[tuple[str, ProcedureFact]],
    rules: Rules,
    pack: PayerPack,
    max_minutes: int,
    now: datetime | None,
) -> list[Finding]:
    findings = []
    filing = pack.limits.timely_filing
    for cpt, procedure in billed:
        period = f"{procedure.path}.performedPeriod"
        minutes = procedure.minutes
        if rules.procedures.is_timed(cpt) and minutes is not None and minutes > max_minutes:
            findings.append(
                _hold(
                    "procedure-too-long",
                    f"CPT {cpt}: the Procedure lasts {minutes} minutes, more than the {max_minutes} a timed "
                    "service plausibly takes (THERACLAIM_MAX_PROCEDURE_MINUTES)",
                    (period,),
                    "plausibility/duration",
                )
            )
        start_day, end = procedure.service_date, procedure.end
        end_day = _day(end) if end else start_day
        if encounter.period_start is not None and _before(procedure.start, start_day, encounter.period_start):
            findings.append(_outside(cpt, procedure, encounter, "starts before"))
        elif encounter.period_end is not None and _after(end, end_day, encounter.period_end):
            findings.append(_outside(cpt, procedure, encounter, "ends after"))
        if now is None or start_day is None:
            continue
        if start_day > now.date():  # by dates: a visit later today, or in a zone ahead of UTC, is not future
            findings.append(
                _hold(
                    "service-date-in-future",
                    f"CPT {cpt}: the date of service {start_day.isoformat()} is after now ({now.date().isoformat()})",
                    (period if procedure.start else f"{procedure.path}.performed",),
                    "plausibility/future",
                )
            )
        elif now.date() > add_months(start_day, filing.months):
            findings.append(
                _hold(
                    "timely-filing-expired",
                    f"CPT {cpt}: the date of service {start_day.isoformat()} is more than {filing.months} months "
                    f"ago, past the timely-filing limit of {pack.label} ({filing.source})",
                    (period if procedure.start else f"{procedure.path}.performed",),
                    f"plausibility/timely-filing {pack.label}",
                )
            )
    return findings


def _outside(cpt: str, procedure: ProcedureFact, encounter: EncounterFacts, how: str) -> Finding:
    return _hold(
        "procedure-outside-encounter",
        f"CPT {cpt}: the Procedure {how} the period of {encounter.ref}",
        (f"{procedure.path}.performedPeriod", f"{encounter.path}.period"),
        "plausibility/encounter-period",
    )


def line_findings(lines: list[ServiceLine], pack: PayerPack, mue_codes: set[str]) -> list[Finding]:
    """Lines over the pack's ceiling; a code with an MUE cap is left to the MUE edit (more specific)."""
    ceiling = pack.limits.units_per_line
    return [
        _hold(
            "units-over-ceiling",
            f"CPT {line.cpt} on {line.service_date.isoformat()}: {line.units} units, more than the "
            f"{ceiling.max} per line of {pack.label} ({ceiling.source})",
            (),
            f"plausibility/units {pack.label}",
        )
        for line in lines
        if line.units > ceiling.max and line.cpt not in mue_codes
    ]
