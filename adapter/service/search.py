"""FHIR search on the store: parameters, _lastUpdated bounds, paging links, result Bundles."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import Request

from adapter.service.fhirhttp import FhirError, outcome
from adapter.service.numbers import wire_int
from adapter.service.settings import Settings
from adapter.service.store import Store, Stored

SEARCH_COLUMNS = {"patient": "patient", "encounter": "encounter", "status": "status", "_id": "id"}
RESULT_PARAMS = {"_count", "_offset", "_format", "_lastUpdated"}
DATE_PREFIX = re.compile(r"^(gt|ge|lt|le|eq)?(\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:\d{2}))?)$")


def _updated_bounds(value: str) -> list[tuple[str, datetime]]:
    """``_lastUpdated`` as comparisons; a bare date means the whole day (FHIR date search semantics)."""
    match = DATE_PREFIX.match(value)
    invalid = FhirError(
        400, "invalid-search", f"_lastUpdated {value!r} is not a date or date-time", "invalid", "_lastUpdated"
    )
    if match is None:
        raise invalid
    prefix = match.group(1) or "eq"
    try:  # the pattern lets through impossible values (month 13, hour 25) and dates at the calendar's ends
        when = datetime.fromisoformat(match.group(2))
        # in UTC: SQLite stores the UTC wall time and compares without the offset
        when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
        next_day = when if match.group(3) else when + timedelta(days=1)
    except (ValueError, OverflowError) as error:
        raise invalid from error
    if match.group(3):  # a date-time: compare to the instant
        return [(prefix, when)]
    return {
        "eq": [("ge", when), ("lt", next_day)],
        "ge": [("ge", when)],
        "lt": [("lt", when)],
        "gt": [("ge", next_day)],
        "le": [("lt", next_day)],
    }[prefix]


def search_filters(params: list[tuple[str, str]]) -> tuple[dict[str, str], list[tuple[str, datetime]]]:
    filters: dict[str, str] = {}
    updated: list[tuple[str, datetime]] = []
    for name, value in params:
        if "\x00" in value:  # no FHIR string holds a NUL, and PostgreSQL refuses one in a query
            raise FhirError(400, "invalid-search", f"{name} holds a NUL character", "invalid", name)
        if name in SEARCH_COLUMNS:
            filters[SEARCH_COLUMNS[name]] = value
        elif name == "_lastUpdated":
            updated += _updated_bounds(value)
    return filters, updated


def _page_number(value: str | None, name: str, default: int, ceiling: int) -> int:
    if value is None:
        return default
    number = wire_int(value)
    if number is None:
        raise FhirError(
            400, "invalid-search", f"{name} must be a non-negative integer of ASCII digits", "invalid", name
        )
    return min(number, ceiling)


def search_bundle(store: Store, settings: Settings, resource_type: str, request: Request) -> dict[str, Any]:
    params = list(request.query_params.multi_items())
    filters, updated = search_filters(params)
    count = _page_number(request.query_params.get("_count"), "_count", settings.page_size, 1000)
    offset = _page_number(request.query_params.get("_offset"), "_offset", 0, 10**9)
    total, found = store.search(resource_type, filters, updated, count, offset)
    kept = [(k, v) for k, v in params if k in SEARCH_COLUMNS or (k in RESULT_PARAMS and k != "_offset")]
    base = f"{request.base_url}fhir/{resource_type}"
    links = [{"relation": "self", "url": f"{base}?{urlencode([*kept, ('_offset', str(offset))])}"}]
    if count and offset + count < total:  # _count=0 asks for the total only: no page to go to
        links.append({"relation": "next", "url": f"{base}?{urlencode([*kept, ('_offset', str(offset + count))])}"})
    if count and offset > 0:
        links.append(
            {"relation": "previous", "url": f"{base}?{urlencode([*kept, ('_offset', str(max(0, offset - count)))])}"}
        )
    ignored = sorted({k for k, _ in params if k not in SEARCH_COLUMNS and k not in RESULT_PARAMS})
    bundle = collection_of(found, str(request.base_url), bundle_type="searchset", total=total)
    bundle["link"] = links
    if ignored:
        bundle["entry"].append(
            {
                "resource": outcome(
                    "ignored-parameters", f"unsupported parameters ignored: {ignored}", "not-supported", "warning"
                ),
                "search": {"mode": "outcome"},
            }
        )
    return bundle


def conditional_match(store: Store, condition: str, settings: Settings) -> Stored | None:
    """If-None-Exist on the operation: a Claim matching the criteria makes the request a no-op."""
    params = parse_qsl(condition.lstrip("?"), keep_blank_values=True)
    unknown = [k for k, _ in params if k not in SEARCH_COLUMNS]
    if not params or unknown:
        raise FhirError(
            400,
            "invalid-if-none-exist",
            f"If-None-Exist supports {sorted(SEARCH_COLUMNS)}; got {condition!r}",
            "invalid",
        )
    filters, updated = search_filters(params)
    total, found = store.search("Claim", filters, updated, 2, 0)
    if total > 1:
        raise FhirError(412, "if-none-exist-ambiguous", f"If-None-Exist matches {total} Claims", "multiple-matches")
    return found[0] if found else None


def collection_of(
    stored: list[Stored], base: str, bundle_type: str = "collection", total: int | None = None
) -> dict[str, Any]:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": bundle_type}
    if total is not None:
        bundle["total"] = total
    bundle["entry"] = []
    for item in stored:
        entry: dict[str, Any] = {
            "fullUrl": f"{base}fhir/{item.resource['resourceType']}/{item.resource['id']}",
            "resource": item.resource,
        }
        if bundle_type == "searchset":
            entry["search"] = {"mode": "match"}
        elif bundle_type == "history":  # bdl-3 / bdl-4: history entries need request and response
            rtype, created = item.resource["resourceType"], item.version_id == 1
            entry["request"] = {
                "method": "POST" if created else "PUT",
                "url": rtype if created else f"{rtype}/{item.resource['id']}",
            }
            entry["response"] = {
                "status": "201 Created" if created else "200 OK",
                "etag": item.etag,
                "lastModified": item.last_updated.isoformat(),
            }
        bundle["entry"].append(entry)
    return bundle
