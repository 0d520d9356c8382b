"""Readers of FHIR data types: codings, texts, dates and date-times."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from adapter.errors import Problem
from adapter.model import Coding


def codings(concept: dict[str, Any] | None) -> tuple[Coding, ...]:
    if not concept:
        return ()
    return tuple(
        Coding(c["system"], c["code"], c.get("display"))
        for c in concept.get("coding", [])
        if c.get("system") and c.get("code")
    )


def concept_text(concept: dict[str, Any] | None) -> str | None:
    if not concept:
        return None
    return concept.get("text") or next((c.get("display") for c in concept.get("coding", []) if c.get("display")), None)


def when(value: str | None, path: str, problems: list[Problem]) -> datetime | date | None:
    """A FHIR dateTime: an aware datetime when it has a time, a date when it is a full date."""
    if value is None:
        return None
    try:
        if "T" in value:
            return datetime.fromisoformat(value)
        return date.fromisoformat(value) if len(value) == 10 else None
    except ValueError:
        problems.append(Problem("invalid-date", f"{value!r} is not a valid date/time", path, "value"))
        return None


def day_of(value: datetime | date | None) -> date | None:
    return value.date() if isinstance(value, datetime) else value


def first_day(resource: dict[str, Any], element: str, path: str, problems: list[Problem]) -> date | None:
    """The date of a ``<element>DateTime`` or the start of a ``<element>Period``."""
    return _bound_day(resource, element, "start", path, problems)


def last_day(resource: dict[str, Any], element: str, path: str, problems: list[Problem]) -> date | None:
    """The date of a ``<element>DateTime`` or the end of a ``<element>Period``."""
    return _bound_day(resource, element, "end", path, problems)


def _bound_day(resource: dict[str, Any], element: str, bound: str, path: str, problems: list[Problem]) -> date | None:
    if f"{element}DateTime" in resource:
        return day_of(when(resource[f"{element}DateTime"], f"{path}.{element}DateTime", problems))
    period = resource.get(f"{element}Period") or {}
    return day_of(when(period.get(bound), f"{path}.{element}Period.{bound}", problems))
