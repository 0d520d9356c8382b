"""Minutes of 15-minute timed codes -> billable units.

Two named methods; the payer pack chooses one (``units.method``):

* ``cms-pooled`` (Medicare, Pub 100-04 ch. 5 §20.2): the timed minutes of every timed code on the
  date of service are pooled; ``T`` minutes earn ``(T + 7) // 15`` units (none below 8).  Each code
  first gets its full 15-minute units; the units left over go one each to the codes with the
  largest remaining minutes.  Ties: larger remainder, then more minutes for the code, then the
  code whose first procedure started earlier, then the lower code.
* ``ama-per-code`` (CPT midpoint rule, commercial): the same 8/23/38/53... chart, per code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from adapter.model import Frozen, UnitDerivation

UNIT_MINUTES = 15
MIDPOINT_MINUTES = 8


class CodeMinutes(Frozen, frozen=True):
    """The pooled minutes of one timed CPT code on one date of service."""

    cpt: str
    minutes: int
    first_start: datetime | None = None


def chart_units(minutes: int) -> int:
    """The unit chart: 0 below 8 minutes, then 1 for 8-22, 2 for 23-37, ..."""
    if minutes < MIDPOINT_MINUTES:
        return 0
    return (minutes + MIDPOINT_MINUTES - 1) // UNIT_MINUTES


def _tie_key(item: CodeMinutes) -> tuple[object, ...]:
    """Sort key: who gets a leftover unit first (see module docstring)."""
    start_key = (item.first_start is None, item.first_start.timestamp() if item.first_start else 0.0)
    return (-(item.minutes % UNIT_MINUTES), -item.minutes, start_key, item.cpt)


_TIE_CRITERIA: tuple[tuple[str, Callable[[CodeMinutes], object]], ...] = (
    ("more minutes", lambda i: i.minutes),
    ("earlier start", lambda i: i.first_start),
    ("lower code", lambda i: i.cpt),
)


def _tie_reason(winner: CodeMinutes, loser: CodeMinutes) -> str | None:
    if winner.minutes % UNIT_MINUTES != loser.minutes % UNIT_MINUTES:
        return None
    for name, value in _TIE_CRITERIA:
        if value(winner) != value(loser):
            return name
    return None  # unreachable: codes are distinct


def cms_pooled(services: Sequence[CodeMinutes], rule: str) -> dict[str, UnitDerivation]:
    pooled = sum(s.minutes for s in services)
    full = {s.cpt: s.minutes // UNIT_MINUTES for s in services}
    leftover = chart_units(pooled) - sum(full.values())
    ranked = sorted(services, key=_tie_key)
    winners = {s.cpt for s in ranked[:leftover]}
    tie = _tie_reason(ranked[leftover - 1], ranked[leftover]) if 0 < leftover < len(ranked) else None
    tied_remainder = ranked[leftover].minutes % UNIT_MINUTES if tie else None
    return {
        s.cpt: UnitDerivation(
            method="cms-pooled",
            rule=rule,
            code_minutes=s.minutes,
            pooled_minutes=pooled,
            full_units=full[s.cpt],
            remainder_unit=s.cpt in winners,
            units=full[s.cpt] + (s.cpt in winners),
            tie_break=tie if s.minutes % UNIT_MINUTES == tied_remainder else None,
        )
        for s in services
    }


def ama_per_code(services: Sequence[CodeMinutes], rule: str) -> dict[str, UnitDerivation]:
    result = {}
    for s in services:
        units = chart_units(s.minutes)
        full = s.minutes // UNIT_MINUTES
        result[s.cpt] = UnitDerivation(
            method="ama-per-code",
            rule=rule,
            code_minutes=s.minutes,
            pooled_minutes=s.minutes,
            full_units=full,
            remainder_unit=units > full,
            units=units,
        )
    return result


UNIT_METHODS: dict[str, Callable[[Sequence[CodeMinutes], str], dict[str, UnitDerivation]]] = {
    "cms-pooled": cms_pooled,
    "ama-per-code": ama_per_code,
}


def allocate(method: str, services: Sequence[CodeMinutes], rule: str) -> dict[str, UnitDerivation]:
    """Units per CPT code for the timed services of one date of service."""
    codes = [s.cpt for s in services]
    if len(set(codes)) != len(codes):
        raise ValueError("merge same-code services before allocating units")
    if any(s.minutes < 0 for s in services):
        raise ValueError("minutes cannot be negative")
    return UNIT_METHODS[method](services, rule)
