"""The day's pool: the visits of one patient with one billing provider on one date of service make
one Claim.

Pub 100-04 ch. 5 §20.2 counts the timed minutes "performed in a single day" (not per visit), and
since 2021-04-19 Medicare rejects a timed code that is not reported on one line per date of service
(First Coast, billing-rules.md F1.9).  Two visits of the same day therefore pool their minutes
(10 + 10 minutes of 97140 earn 1 unit on one line, not 1 unit on each of two Claims), and the
Claim's identity is the patient, the billing provider and the date, so a later visit that day
gives a new version of the day's Claim instead of a second Claim.

A visit whose Procedures fall on more than one date is not pooled (it keeps its own identity).
Cancelled and entered-in-error visits leave the pool; a day whose every visit is withdrawn
cancels the day's Claim.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import TypeVar

from msgspec.structs import replace

from adapter.model import EncounterFacts, ProcedureFact

WITHDRAWN = frozenset({"cancelled", "entered-in-error"})
DAY_PREFIX = "day|"
T = TypeVar("T")


def service_date(encounter: EncounterFacts) -> date | None:
    """The visit's one date of service, or None when its Procedures span several dates (or none is known)."""
    dates = {p.service_date for p in (*encounter.procedures, *encounter.skipped_procedures) if p.service_date}
    if not dates and encounter.service_date is not None:
        dates = {encounter.service_date}
    return dates.pop() if len(dates) == 1 else None


def day_identity(encounter: EncounterFacts) -> str | None:
    """``day|<patient>|<billing provider>|<date>`` from business identifiers where the input has them."""
    day = service_date(encounter)
    if day is None:
        return None
    patient = encounter.patient_identity or encounter.patient_ref
    provider = encounter.provider_identity or encounter.billing_provider_ref or "-"
    return f"{DAY_PREFIX}{patient}|{provider}|{day.isoformat()}"


def _unique(items: Iterable[T], key: str = "ref") -> tuple[T, ...]:
    seen: dict[object, T] = {}
    for item in items:
        seen.setdefault(getattr(item, key), item)
    return tuple(seen.values())


def _shared(groups: Sequence[tuple[T, ...]]) -> tuple[T, ...]:
    """The visits' common tuple (the same patient's facts are one object per Bundle, which keeps the
    per-patient screening cache warm), else their union by reference."""
    if all(g is groups[0] for g in groups):
        return groups[0]
    return _unique(item for group in groups for item in group)


def _with_visit_plans(procedure: ProcedureFact, visit: EncounterFacts) -> ProcedureFact:
    """A pooled visit's Procedure keeps the plans of care of its own visit (each visit may be under its own plan)."""
    if procedure.plan_refs or not visit.plans:
        return procedure
    return replace(procedure, plan_refs=tuple(p.ref for p in visit.plans))


def _span(bounds: Sequence[datetime | date | None], last: bool) -> datetime | date | None:
    """The earliest start (or latest end) of the visits' periods, so each visit's Procedures are checked
    against the day's visits rather than the first visit's period; unknown when a visit has none or the
    visits mix dates and times (they do not compare)."""
    known: list[date] = [b for b in bounds if b is not None]  # (a datetime is a date)
    if not known or len(known) < len(bounds) or len({type(b) for b in known}) > 1:
        return None
    return max(known) if last else min(known)


def _merge(identity: str, live: Sequence[EncounterFacts], withdrawn: Sequence[EncounterFacts]) -> EncounterFacts:
    first = live[0]
    unfinished = next((v.status for v in live if v.status != "finished"), first.status)
    diagnoses = _unique((d for v in live for d in v.diagnoses), "condition_ref")
    return replace(
        first,
        identity=identity,
        status=unfinished,
        procedures=tuple(_with_visit_plans(p, v) for v in live for p in v.procedures),
        skipped_procedures=tuple(p for v in live for p in v.skipped_procedures),
        diagnoses=diagnoses,
        conditions=_shared([v.conditions for v in live]),
        medications=_shared([v.medications for v in live]),
        observations=_shared([v.observations for v in live]),
        plans=_unique(p for v in live for p in v.plans),
        practitioners=_unique(p for v in live for p in v.practitioners),
        period_start=_span([v.period_start for v in live], last=False),
        period_end=_span([v.period_end for v in live], last=True),
        visit_refs=tuple(v.ref for v in live),
        withdrawn_visits=tuple(v.ref for v in withdrawn),
        visit_identities=tuple(v.identity for v in (*live, *withdrawn)),
    )


def pool_days(encounters: Sequence[EncounterFacts]) -> list[EncounterFacts]:
    """One EncounterFacts per day (in the order of each day's first visit); multi-day visits as they are."""
    days: dict[str, list[EncounterFacts]] = {}
    order: list[str | EncounterFacts] = []
    for encounter in encounters:
        identity = day_identity(encounter)
        if identity is None:
            order.append(encounter)
            continue
        if identity not in days:
            days[identity] = []
            order.append(identity)
        days[identity].append(encounter)
    result = []
    for item in order:
        if isinstance(item, EncounterFacts):
            result.append(item)
            continue
        visits = days[item]
        live = [v for v in visits if v.status not in WITHDRAWN]
        withdrawn = [v for v in visits if v.status in WITHDRAWN]
        if not live:  # every visit of the day is withdrawn: the day's Claim is cancelled
            result.append(
                replace(
                    visits[0],
                    identity=item,
                    withdrawn_visits=tuple(v.ref for v in withdrawn),
                    visit_identities=tuple(v.identity for v in withdrawn),
                )
            )
        else:
            result.append(_merge(item, live, withdrawn))
    return result
