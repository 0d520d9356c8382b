"""The search parameters of every stored type, and the index rows a stored resource gives them.

One table (``SEARCH_PARAMS``) is the single source: the store indexes exactly these, search
accepts exactly these, and the CapabilityStatement lists exactly these.  Paths are FHIR element
paths from the resource root (R4 SearchParameter expressions without the ``where``/``as``
clauses the listed parameters do not need); ``x[x]`` tries every choice type of ``x``.
"""

from __future__ import annotations

import calendar
import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

TOKEN, REFERENCE, DATE = "token", "reference", "date"


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: str
    paths: tuple[str, ...]
    documentation: str
    system: str | None = None  # the implicit code system of a ``code`` element (status, use, ...)
    targets: tuple[str, ...] = ()  # resource types a reference parameter points to


class IndexRow(NamedTuple):  # (a tuple: each push writes some forty, and dataclasses.asdict deep-copies)
    name: str
    system: str | None = None
    code: str | None = None
    low: datetime | None = None  # naive UTC, inclusive
    high: datetime | None = None  # naive UTC, exclusive


ID = Param("_id", TOKEN, ("id",), "logical id of the resource (comma: any of)")
LAST_UPDATED = Param("_lastUpdated", DATE, ("meta.lastUpdated",), "meta.lastUpdated, any precision and prefix")
COMMON = (ID, LAST_UPDATED)


def _identifier(rtype: str) -> Param:
    return Param("identifier", TOKEN, ("identifier",), f"{rtype}.identifier (system|value, value, |value, system|)")


def _patient(rtype: str, path: str = "subject") -> Param:
    return Param("patient", REFERENCE, (path,), f"{rtype}.{path} (the Patient)", targets=("Patient",))


def _encounter(rtype: str) -> Param:
    return Param("encounter", REFERENCE, ("encounter",), f"{rtype}.encounter", targets=("Encounter",))


PATIENT_SUBJECT = (
    "Encounter",
    "Procedure",
    "Condition",
    "MedicationStatement",
    "MedicationRequest",
    "Observation",
    "ServiceRequest",
    "CarePlan",
)
# The input types the server stores (capability.INPUT_TYPES): each is searchable by identifier.
INPUT_TYPES = (
    "Encounter",
    "Procedure",
    "Condition",
    "Coverage",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "MedicationStatement",
    "MedicationRequest",
    "Medication",
    "Observation",
    "ServiceRequest",
    "CarePlan",
    "BodyStructure",
    "Device",
)
WITH_ENCOUNTER = ("Procedure", "Condition", "Observation", "ServiceRequest", "CarePlan", "MedicationRequest")

SEARCH_PARAMS: dict[str, tuple[Param, ...]] = {
    "Claim": (
        _identifier("Claim"),
        Param("patient", REFERENCE, ("patient",), "Claim.patient", targets=("Patient",)),
        Param("encounter", REFERENCE, ("item.encounter",), "Claim.item.encounter", targets=("Encounter",)),
        Param(
            "provider",
            REFERENCE,
            ("provider",),
            "Claim.provider",
            targets=("Practitioner", "PractitionerRole", "Organization"),
        ),
        Param("status", TOKEN, ("status",), "Claim.status", system="http://hl7.org/fhir/fm-status"),
        Param("use", TOKEN, ("use",), "Claim.use", system="http://hl7.org/fhir/claim-use"),
        Param("created", DATE, ("created",), "Claim.created, any precision and prefix"),
    ),
    "DetectedIssue": (
        Param("patient", REFERENCE, ("patient",), "DetectedIssue.patient", targets=("Patient",)),
        Param(
            "implicated",
            REFERENCE,
            ("implicated",),
            "DetectedIssue.implicated (Condition, Procedure, medications, Observation)",
            targets=("Condition", "Procedure", "MedicationStatement", "MedicationRequest", "Medication", "Observation"),
        ),
        Param("identified", DATE, ("identified[x]",), "DetectedIssue.identified[x], any precision and prefix"),
        Param("code", TOKEN, ("code",), "DetectedIssue.code"),
    ),
    "Provenance": (
        Param(
            "target",
            REFERENCE,
            ("target",),
            "Provenance.target (version-specific references match too)",
            targets=("Claim",),
        ),
    ),
}
for _type in INPUT_TYPES:
    _own: list[Param] = [_identifier(_type)]
    if _type in PATIENT_SUBJECT:
        _own.append(_patient(_type))
    elif _type == "Coverage":
        _own.append(_patient(_type, "beneficiary"))
    elif _type in ("BodyStructure", "Device"):
        _own.append(_patient(_type, "patient"))
    if _type in WITH_ENCOUNTER:
        _own.append(_encounter(_type))
    SEARCH_PARAMS[_type] = tuple(_own)


def params_of(resource_type: str) -> dict[str, Param]:
    """Every search parameter of a stored type by name (the common ones first)."""
    return {p.name: p for p in (*COMMON, *SEARCH_PARAMS.get(resource_type, ()))}


# -- dates ------------------------------------------------------------------------------------------

DATE_VALUE = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?P<fraction>\.\d{1,9})?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
FAR_FUTURE = datetime(9999, 12, 31, 23, 59, 59, 999999)


@functools.lru_cache(maxsize=4096)  # a push indexes the same few dates (its time, its visit's) many times
def date_range(value: str) -> tuple[datetime, datetime] | None:
    """The range a FHIR date, dateTime or instant covers at its precision, as naive UTC
    ``[low, high)``; None when the value is not one (or not a real calendar date)."""
    match = DATE_VALUE.match(value)
    if match is None:
        return None
    part = {k: v for k, v in match.groupdict().items() if v is not None}
    try:
        year = int(part["year"])
        if "month" not in part:
            low = datetime(year, 1, 1)
            return low, _shift(low, years=1)
        month = int(part["month"])
        if "day" not in part:
            low = datetime(year, month, 1)
            return low, _shift(low, months=1)
        day = int(part["day"])
        if "hour" not in part:
            low = datetime(year, month, day)
            return low, _plus(low, timedelta(days=1))
        fraction = part.get("fraction", "")
        micro = int((fraction[1:] + "000000")[:6]) if fraction else 0
        local = datetime(year, month, day, int(part["hour"]), int(part["minute"]), int(part.get("second", 0)), micro)
        zone = part.get("zone", "Z")
        if zone != "Z":
            sign = 1 if zone[0] == "+" else -1
            local -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        if "second" not in part:
            step = timedelta(minutes=1)
        elif fraction:
            step = timedelta(microseconds=10 ** (6 - min(6, len(fraction) - 1)))
        else:
            step = timedelta(seconds=1)
        return local, _plus(local, step)
    except (ValueError, OverflowError):
        return None


def _plus(when: datetime, step: timedelta) -> datetime:
    try:
        return when + step
    except OverflowError:
        return FAR_FUTURE


def _shift(when: datetime, *, years: int = 0, months: int = 0) -> datetime:
    month_index = when.year * 12 + when.month - 1 + years * 12 + months
    year, month = divmod(month_index, 12)
    if year > 9999:
        return FAR_FUTURE
    return when.replace(year=year, month=month + 1, day=min(when.day, calendar.monthrange(year, month + 1)[1]))


def naive_utc(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when


# -- index rows -------------------------------------------------------------------------------------


def _collect(node: Any, steps: tuple[str, ...], found: list[Any]) -> None:
    """Append the values at ``steps`` under ``node`` (lists flattened at every level), in document order."""
    if isinstance(node, list):
        for item in node:
            _collect(item, steps, found)
    elif not steps:
        found.append(node)
    elif isinstance(node, dict):
        head = steps[0]
        if head.endswith("[x]"):
            stem = head[:-3]
            for key, value in node.items():
                if key.startswith(stem) and key[len(stem) : len(stem) + 1].isupper():
                    _collect(value, steps[1:], found)
        elif head in node:
            _collect(node[head], steps[1:], found)


def split_reference(reference: str, base: str | None = None) -> tuple[str | None, str]:
    """A reference as (type, id) when it is relative or on this server's base, else (None, itself)."""
    value = re.sub(r"/_history/[^/]+$", "", reference) if "/_history/" in reference else reference
    if base and value.startswith(base.rstrip("/") + "/"):
        value = value[len(base.rstrip("/")) + 1 :]
    parts = value.split("/")
    if len(parts) == 2 and parts[0][:1].isupper() and parts[0].isalpha() and parts[1]:
        return parts[0], parts[1]
    return None, reference


def _rows(param: Param, value: Any) -> Iterator[IndexRow]:
    if param.type == TOKEN:
        if isinstance(value, str):
            yield IndexRow(param.name, param.system, value)
        elif isinstance(value, dict):
            codings = value.get("coding") if "coding" in value else [value]
            for coding in codings if isinstance(codings, list) else []:
                if isinstance(coding, dict):
                    code = coding.get("code", coding.get("value"))
                    system = coding.get("system")
                    if isinstance(code, str):
                        yield IndexRow(param.name, system if isinstance(system, str) else None, code)
    elif param.type == REFERENCE:
        reference = value.get("reference") if isinstance(value, dict) else None
        if isinstance(reference, str) and not reference.startswith("#"):
            rtype, rid = split_reference(reference)
            yield IndexRow(param.name, rtype, rid)
    elif param.type == DATE:
        if isinstance(value, str):
            bounds = date_range(value)
            if bounds:
                yield IndexRow(param.name, low=bounds[0], high=bounds[1])
        elif isinstance(value, dict) and ("start" in value or "end" in value):  # a Period
            start = date_range(value["start"]) if isinstance(value.get("start"), str) else None
            end = date_range(value["end"]) if isinstance(value.get("end"), str) else None
            yield IndexRow(param.name, low=start[0] if start else datetime.min, high=end[1] if end else FAR_FUTURE)


MAX_INDEXED = 2048  # longer values are not indexed (no real code, id or identifier is that long)


def index_rows(resource: dict[str, Any]) -> list[IndexRow]:
    """The index rows of a stored resource (``_id`` and ``_lastUpdated`` included), without
    duplicates and without values PostgreSQL text cannot hold (NUL)."""
    found: dict[IndexRow, None] = {}
    for param, paths in _index_plan(str(resource["resourceType"])):
        for steps in paths:
            values: list[Any] = []
            _collect(resource, steps, values)
            for value in values:
                for row in _rows(param, value):
                    if _indexable(row.system) and _indexable(row.code):
                        found[row] = None
    return list(found)


@functools.cache
def _index_plan(resource_type: str) -> tuple[tuple[Param, tuple[tuple[str, ...], ...]], ...]:
    """Each search parameter of the type with its paths split into steps (once per type, not per row)."""
    return tuple((p, tuple(tuple(path.split(".")) for path in p.paths)) for p in params_of(resource_type).values())


def _indexable(text: str | None) -> bool:
    return text is None or ("\x00" not in text and len(text) <= MAX_INDEXED)
