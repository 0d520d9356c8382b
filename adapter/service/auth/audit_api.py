"""``GET /fhir/AuditEvent`` and ``/fhir/AuditEvent/{id}``: the audit trail, for holders of
``system/AuditEvent.rs``.  A tenant client sees the events of its own requests only.  Reading
the trail is itself audited (by the guard, like every request)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import and_, func, not_, or_, select
from sqlalchemy.sql.elements import ColumnElement

from adapter.service import paging
from adapter.service.auth.policy import Principal
from adapter.service.docs_routes import fhir_responses
from adapter.service.fhirhttp import FhirError, fhir_response
from adapter.service.search_params import date_range
from adapter.service.search_parse import encode_cursor
from adapter.service.search_query import Cursor
from adapter.service.store import Store, audit_event

DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
SEARCH_PARAMS = {
    "date": "AuditEvent.recorded (every precision; prefixes eq ne gt lt ge le sa eb)",
    "agent": "the client_id of the requestor (as value, or system|value)",
    "entity": "a reference the event names (Claim/x finds every version of it)",
    "outcome": "0 success, 4 minor failure, 8 serious failure",
    "_count": "page size",
    "_cursor": "the next page (follow the Bundle's next link; one search's pages see the events of its first page)",
}


def audit_router(store: Store, principal_of: Any, audit_of: Any, page_size: int) -> APIRouter:
    router = APIRouter()

    @router.get(
        "/fhir/AuditEvent",
        tags=["audit"],
        openapi_extra={
            "x-fhir-interaction": "search-type",
            "x-smart-scope": "s",
            "responses": fhir_responses("400", "401", "403", "406", "503", success="searchset Bundle of AuditEvents"),
        },
    )
    def search(request: Request) -> Response:
        principal: Principal = principal_of(request)
        principal.require("AuditEvent", "s")
        context = audit_of(request)
        context.interaction = "search-type"
        context.query = str(request.url.query)
        params = list(request.query_params.multi_items())
        conditions = _conditions(params, principal)
        count = paging.page_size(request.query_params.get("_count"), page_size)
        cursor = paging.request_cursor(request.query_params.get("_cursor"))
        recorded, event_id = audit_event.c.recorded, audit_event.c.id
        visible = and_(*conditions, recorded <= cursor.snapshot)  # the events of the first page's time
        with store.engine.connect() as connection:
            total = connection.execute(select(func.count()).select_from(audit_event).where(visible)).scalar_one()
            query = select(audit_event.c.content).where(visible, *_after(cursor)).order_by(recorded, event_id)
            rows = connection.execute(query.limit(count + 1)).all()  # one more tells whether there is a next page
        more, events = len(rows) > count, [orjson.loads(r.content) for r in rows[:count]]
        context.entities += [f"AuditEvent/{e['id']}" for e in events]
        base = f"{request.base_url}fhir/AuditEvent"
        kept = [(k, v) for k, v in params if k != "_cursor"]
        links = [{"relation": "self", "url": paging.page_link(base, kept, request.query_params.get("_cursor"))}]
        if more and events:
            after = Cursor(cursor.snapshot, (events[-1]["recorded"], events[-1]["id"]))
            links.append({"relation": "next", "url": paging.page_link(base, kept, encode_cursor(after))})
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": total, "link": links}
        if events:
            bundle["entry"] = [
                {"fullUrl": f"{base}/{e['id']}", "resource": e, "search": {"mode": "match"}} for e in events
            ]
        return fhir_response(bundle)

    @router.get(
        "/fhir/AuditEvent/{event_id}",
        tags=["audit"],
        openapi_extra={
            "x-fhir-interaction": "read",
            "x-smart-scope": "r",
            "responses": fhir_responses("401", "403", "404", "406", "503", success="the AuditEvent"),
        },
    )
    def read(event_id: str, request: Request) -> Response:
        principal: Principal = principal_of(request)
        principal.require("AuditEvent", "r")
        context = audit_of(request)
        context.interaction = "read"
        context.entities.append(f"AuditEvent/{event_id}")
        query = select(audit_event.c.content, audit_event.c.agent).where(audit_event.c.id == event_id[:64])
        with store.engine.connect() as connection:
            row = connection.execute(query).first()
        if row is None or (principal.organization is not None and row.agent != principal.client_id):
            raise FhirError(404, "not-found", f"AuditEvent/{event_id} is not known", "not-found")
        return fhir_response(orjson.loads(row.content))

    return router


def _conditions(params: list[tuple[str, str]], principal: Principal) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if principal.organization is not None:  # a tenant reads its own requests' trail only
        conditions.append(audit_event.c.agent == principal.client_id)
    for name, value in params:
        if name == "date":
            conditions.append(_recorded(value))
        elif name == "agent":
            conditions.append(or_(*(audit_event.c.agent == v.split("|")[-1] for v in value.split(","))))
        elif name == "entity":
            conditions.append(or_(*(audit_event.c.entity.contains(f" {v} ") for v in value.split(","))))
        elif name == "outcome":
            conditions.append(audit_event.c.outcome.in_([v.split("|")[-1] for v in value.split(",")]))
        elif name not in ("_count", "_cursor", "_format"):
            raise FhirError(
                400,
                "unknown-parameter",
                f"AuditEvent has no search parameter {name!r}; supported: {', '.join(SEARCH_PARAMS)}",
                "not-supported",
                name,
            )
    return conditions


def _recorded(value: str) -> ColumnElement[bool]:
    """``date``: AuditEvent.recorded (an instant) against the range the value covers at its precision."""
    prefix = value[:2] if value[:2] in DATE_PREFIXES else "eq"
    bounds = date_range(value[2:] if prefix == value[:2] else value)
    if bounds is None:
        message = f"date {value[:40]!r} is not a FHIR date or date-time"
        raise FhirError(400, "invalid-search", message, "invalid", "date")
    low, high = (bound.replace(tzinfo=UTC) for bound in bounds)
    recorded = audit_event.c.recorded
    within = and_(recorded >= low, recorded < high)
    conditions: dict[str, ColumnElement[bool]] = {
        "eq": within,
        "ap": within,
        "ne": not_(within),
        "gt": recorded >= high,
        "sa": recorded >= high,
        "lt": recorded < low,
        "eb": recorded < low,
        "ge": recorded >= low,
        "le": recorded < high,
    }
    return conditions[prefix]


def _after(cursor: Cursor) -> list[ColumnElement[bool]]:
    """The keyset condition of a next page: after the (recorded, id) of the previous page's last event."""
    if cursor.after is None:
        return []
    try:
        last = datetime.fromisoformat(cursor.after[0])
    except ValueError:
        raise paging.foreign_cursor() from None
    if last.tzinfo is None:
        raise paging.foreign_cursor()
    recorded, event_id = audit_event.c.recorded, audit_event.c.id
    return [or_(recorded > last, and_(recorded == last, event_id > cursor.after[1]))]
