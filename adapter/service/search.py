"""FHIR search on the store: run a parsed search, and build searchset, history and collection Bundles."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from sqlalchemy.engine import Connection

from adapter.service.fhirhttp import FhirError
from adapter.service.search_parse import SearchRequest, encode_cursor, parse_search
from adapter.service.search_query import Cursor, count, page, referenced, referring
from adapter.service.store import Store, Stored
from adapter.service.subsetting import subset


def run_search(
    store: Store,
    resource_type: str,
    params: list[tuple[str, str]],
    *,
    base: str,
    lenient: bool,
    page_size: int,
    tenant: str | None = None,
    connection: Connection | None = None,
) -> dict[str, Any]:
    """The searchset Bundle of one page (R4 search: matches, includes, an outcome for what was ignored);
    with ``tenant`` nothing of another organization matches or is included; on ``connection`` when
    given (a transaction's GET entry sees the transaction's writes)."""
    request = parse_search(resource_type, params, lenient=lenient, base=base, page_size=page_size)
    request.query.tenant = tenant
    cursor = request.cursor or Cursor(datetime.now(UTC))
    size = 0 if request.summary == "count" else request.count
    with nullcontext(connection) if connection is not None else store.engine.connect() as db:
        found = page(db, request.query, cursor, size + 1) if size else []
        more = len(found) > size
        found = found[:size]
        total = None
        if request.total != "none" or request.summary == "count":
            total = count(db, request.query, cursor.snapshot)
        matches = [stored for stored, _ in found]
        included = _included(store, db, request, matches, cursor.snapshot, tenant)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        bundle["total"] = total
    url = f"{base}/{resource_type}"
    links = [{"relation": "self", "url": _link(url, request.applied, request.cursor)}]
    if more and found:
        after = Cursor(cursor.snapshot, (found[-1][1], found[-1][0].resource["id"]))
        links.append({"relation": "next", "url": _link(url, request.applied, after)})
    bundle["link"] = links
    entries = [_entry(base, s, "match", request) for s in matches]
    entries += [_entry(base, s, "include", request) for s in included]
    if request.ignored:
        entries.append({"resource": _ignored_outcome(request), "search": {"mode": "outcome"}})
    if entries:  # FHIR JSON has no empty arrays: an empty page has no entry at all
        bundle["entry"] = entries
    return bundle


def _link(url: str, applied: list[tuple[str, str]], cursor: Cursor | None) -> str:
    params = [*applied, *([("_cursor", encode_cursor(cursor))] if cursor else [])]
    return f"{url}?{urlencode(params)}" if params else url


def _entry(base: str, stored: Stored, mode: str, request: SearchRequest) -> dict[str, Any]:
    resource = stored.resource
    shown = subset(resource, request.summary, request.elements) if mode == "match" else resource
    return {
        "fullUrl": f"{base}/{resource['resourceType']}/{resource['id']}",
        "resource": shown,
        "search": {"mode": mode},
    }


def _included(
    store: Store,
    connection: Any,
    request: SearchRequest,
    matches: list[Stored],
    snapshot: datetime,
    tenant: str | None,
) -> list[Stored]:
    """``_include`` targets (their current versions) and ``_revinclude`` sources, each once, none a match."""
    seen = {(s.resource["resourceType"], s.resource["id"]) for s in matches}
    found: list[Stored] = []
    for include in request.includes:
        for rtype, rid in referenced(connection, matches, include.param):
            if include.target not in (None, rtype) or (rtype, rid) in seen:
                continue
            target = store.read(rtype, rid, connection=connection)
            if target is not None and (tenant is None or target.tenant == tenant):
                seen.add((rtype, rid))
                found.append(target)
    keys = [(s.resource["resourceType"], s.resource["id"]) for s in matches]
    for include in request.revincludes:
        for source in referring(connection, include.source, include.param, keys, snapshot, tenant):
            key = (source.resource["resourceType"], source.resource["id"])
            if key not in seen:
                seen.add(key)
                found.append(source)
    return found


def _ignored_outcome(request: SearchRequest) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "warning",
                "code": "not-supported",
                "details": {"text": f"ignored: {problem.message}"},
            }
            for problem in request.ignored
        ],
    }


def conditional_match(
    store: Store,
    condition: str,
    resource_type: str = "Claim",
    tenant: str | None = None,
    connection: Connection | None = None,
) -> Stored | None:
    """If-None-Exist: the one resource matching the criteria (None when none does; 412 when several do);
    with ``tenant``, among that organization's resources only; with ``connection``, as that
    transaction sees them."""
    params = parse_qsl(condition.lstrip("?"), keep_blank_values=True)
    if not params:
        raise FhirError(400, "invalid-if-none-exist", "If-None-Exist needs search criteria", "invalid")
    request = parse_search(resource_type, params, lenient=False, base="", page_size=2)
    if not request.query.criteria or request.applied != params:
        raise FhirError(
            400, "invalid-if-none-exist", "If-None-Exist takes search criteria only (no result parameters)", "invalid"
        )
    request.query.tenant = tenant
    snapshot = datetime.now(UTC)
    with store.engine.connect() if connection is None else nullcontext(connection) as reader:
        found = page(reader, request.query, Cursor(snapshot), 2)
        total = count(reader, request.query, snapshot) if len(found) > 1 else len(found)
    if total > 1:
        raise FhirError(
            412, "if-none-exist-ambiguous", f"If-None-Exist matches {total} {resource_type}s", "multiple-matches"
        )
    return found[0][0] if found else None


def collection_of(
    stored: list[Stored], base: str, bundle_type: str = "collection", total: int | None = None
) -> dict[str, Any]:
    """A collection or history Bundle of stored versions; ``base`` is the FHIR base URL."""
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": bundle_type}
    if total is not None:
        bundle["total"] = total
    entries = []
    for item in stored:
        entry: dict[str, Any] = {
            "fullUrl": f"{base}/{item.resource['resourceType']}/{item.resource['id']}",
            "resource": item.resource,
        }
        if bundle_type == "history":  # bdl-3 / bdl-4: history entries need request and response
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
        entries.append(entry)
    if entries:
        bundle["entry"] = entries
    return bundle
