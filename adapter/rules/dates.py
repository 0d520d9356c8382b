"""The date of service in the clinic's time zone.

A timestamp sent in UTC (``...Z``) names an instant, and the date of service is the clinic's calendar
date of that instant, not the UTC date (a 19:30 visit in New York is 00:30Z the next day).  The clinic's
IANA time zone comes from the FHIR ``timezone`` extension (http://hl7.org/fhir/StructureDefinition/timezone)
on a Location of the Encounter or on its serviceProvider Organization, else from the payer pack's
``timezone``; with neither, the date is read in the offset the sender wrote, and a timestamp in UTC
gets a warning.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from msgspec.structs import replace

from adapter.errors import InputError, Problem
from adapter.model import EncounterFacts, Finding, ProcedureFact, Severity
from adapter.rules.catalog import Rules
from adapter.rules.payers import select_pack


def zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _local(procedure: ProcedureFact, tz: ZoneInfo) -> ProcedureFact:
    if procedure.instant is None:
        return procedure
    return replace(procedure, service_date=procedure.instant.astimezone(tz).date())


def localize(encounter: EncounterFacts, rules: Rules, payer: str | None, default_payer: str) -> EncounterFacts:
    """The encounter with every date of service in the clinic's time zone (when one is known)."""
    name, path = encounter.timezone, encounter.timezone_path
    if name is None:
        coverage = encounter.coverages[0] if encounter.coverages else None
        name = select_pack(rules, coverage, payer, default_payer)[0].timezone
    if name is None:
        return encounter
    tz = zone(name)
    if tz is None:
        raise InputError(
            [Problem("unknown-timezone", f"{name!r} is not an IANA time zone name", path or encounter.path, "value")]
        )
    start = encounter.start_instant
    return replace(
        encounter,
        procedures=tuple(_local(p, tz) for p in encounter.procedures),
        skipped_procedures=tuple(_local(p, tz) for p in encounter.skipped_procedures),
        service_date=start.astimezone(tz).date() if isinstance(start, datetime) else encounter.service_date,
        timezone=name,
    )


def utc_without_zone(encounter: EncounterFacts) -> list[Finding]:
    """A warning when dates were read from UTC timestamps because no clinic time zone is known."""
    if encounter.timezone is not None:
        return []
    utc = [p for p in encounter.procedures if p.instant is not None and p.instant.utcoffset() == timedelta(0)]
    if not utc:
        return []
    return [
        Finding(
            "date-of-service-in-utc",
            Severity.WARNING,
            "the procedures' times are in UTC and no clinic time zone is known, so the date of service is the UTC "
            "date. Next step: add the timezone extension (IANA name) to the Location or Organization, or set the "
            "payer pack's timezone",
            tuple(f"{p.path}.performedPeriod" for p in utc),
            "claim/date-of-service",
        )
    ]
