"""Each delivery as a FHIR R4 Task: ``GET /fhir/Task/<id>``, search by Claim and status, ``$retry``.

Search pages like every other search (adapter/service/search.py): the ``next`` link carries a
``_cursor`` (the first page's time and the last row), so Tasks created in between do not appear and
none repeats or goes missing; a Task's status is its current one (deliveries change in place).

status: requested (waiting, or waiting to be retried), in-progress (a worker is sending it),
completed (the destination accepted it), failed (a dead letter: refused, or out of attempts).
focus: the Claim version; input: the destination; output: the destination's answer (its HTTP
status and, when it sent one, its response body: an OperationOutcome or the resource it stored).
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.engine import Connection, RowMapping
from starlette.concurrency import run_in_threadpool

from adapter.intake.slim import FHIR_ID
from adapter.service.auth.audit import AuditRecorder
from adapter.service.delivery import outbox
from adapter.service.docs_routes import fhir_responses
from adapter.service.fhirhttp import FhirError, fhir_response, version_headers
from adapter.service.guard import audit_of, principal_of
from adapter.service.numbers import wire_int
from adapter.service.paging import foreign_cursor, page_link, page_size, request_cursor
from adapter.service.search_parse import encode_cursor
from adapter.service.search_query import Cursor
from adapter.service.settings import Settings
from adapter.service.store import Store

BASE = "https://theraclaim.org/fhir"
TASK_CODE = {"coding": [{"system": f"{BASE}/CodeSystem/task-code", "code": "deliver-claim"}]}
SEARCH_PARAMS = {"_id", "focus", "status", "_count", "_cursor", "_format"}
NOTHING = ("", -1)  # a search that can match no delivery


def _aware(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _parameter(code: str) -> dict[str, Any]:
    return {"coding": [{"system": f"{BASE}/CodeSystem/delivery-parameter", "code": code}]}


def task(row: RowMapping) -> dict[str, Any]:
    """The Task of one delivery row."""
    updated = _aware(row["updated_at"]).isoformat()
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "id": row["task_id"],
        "meta": {"versionId": str(row["version"]), "lastUpdated": updated},
        "status": row["state"],
        "intent": "order",
        "code": TASK_CODE,
        "description": f"deliver Claim version {row['claim_version']} ({row['claim_status']}) to {row['destination']}",
        "focus": {"reference": f"Claim/{row['claim_id']}/_history/{row['claim_version']}"},
        "authoredOn": _aware(row["created_at"]).isoformat(),
        "lastModified": updated,
        "input": [
            {"type": _parameter("destination"), "valueString": row["destination"]},
            {"type": _parameter("attempts"), "valueUnsignedInt": row["attempts"]},
        ],
    }
    if row["reason"]:
        resource["businessStatus"] = {"text": row["reason"]}
        if row["state"] == outbox.FAILED:
            resource["statusReason"] = {"text": row["reason"]}
    if row["state"] == outbox.REQUESTED and row["attempts"]:
        resource["restriction"] = {"period": {"start": _aware(row["next_attempt_at"]).isoformat()}}
    output = []
    if row["http_status"] is not None:
        output.append({"type": _parameter("http-status"), "valueUnsignedInt": row["http_status"]})
    if row["response"]:
        attachment = {
            "contentType": "application/fhir+json",
            "data": base64.b64encode(row["response"].encode()).decode(),
        }
        output.append({"type": _parameter("response"), "valueAttachment": attachment})
    if output:
        resource["output"] = output
    return resource


def _focus(value: str) -> tuple[str, int | None]:
    """``Claim/<id>``, ``Claim/<id>/_history/<n>`` or a bare Claim id; another type matches nothing."""
    parts = value.split("/")
    if len(parts) == 1:
        parts = ["Claim", *parts]
    if len(parts) in (2, 4) and parts[0] != "Claim" and re.fullmatch(r"[A-Z][A-Za-z]{1,63}", parts[0]):
        return NOTHING
    if parts[0] == "Claim" and len(parts) == 2 and FHIR_ID.match(parts[1]):
        return parts[1], None
    version = wire_int(parts[3]) if len(parts) == 4 and parts[2] == "_history" else None
    if parts[0] == "Claim" and version is not None and FHIR_ID.match(parts[1]):
        return parts[1], version
    raise FhirError(
        400, "invalid-search", "focus must be Claim/<id> or Claim/<id>/_history/<version>", "invalid", "focus"
    )


def _cursor(value: str | None) -> Cursor:
    """The page's cursor: after the outbox sequence number of the previous page's last Task."""
    cursor = request_cursor(value)
    if cursor.after is not None and wire_int(cursor.after[0]) is None:
        raise foreign_cursor()
    return cursor


def search_tasks(store: Store, settings: Settings, request: Request, tenants: tuple[str, ...] | None) -> dict[str, Any]:
    params = list(request.query_params.multi_items())
    unknown = sorted({k for k, _ in params if k not in SEARCH_PARAMS})
    if unknown:
        raise FhirError(
            400, "invalid-search", f"Task search supports {sorted(SEARCH_PARAMS)}; got {unknown}", "invalid"
        )
    for name, value in params:
        if "\x00" in value:  # no FHIR string holds a NUL, and PostgreSQL refuses one in a query
            raise FhirError(400, "invalid-search", f"{name} holds a NUL character", "invalid", name)
    claim_id, claim_version = (None, None)
    focus = request.query_params.get("focus")
    if focus is not None:
        claim_id, claim_version = _focus(focus)
    # a status code that no Task has matches nothing (token search), like an unknown id
    states = [state for value in request.query_params.getlist("status") for state in value.split(",")]
    task_ids = [task_id for value in request.query_params.getlist("_id") for task_id in value.split(",")]
    count = page_size(request.query_params.get("_count"), settings.page_size)
    cursor = _cursor(request.query_params.get("_cursor"))
    total, rows = outbox.search(
        store,
        snapshot=cursor.snapshot,
        after=int(cursor.after[0]) if cursor.after else None,
        claim_id=claim_id,
        claim_version=claim_version,
        states=tuple(states),
        task_ids=tuple(task_ids),
        tenants=tenants,
        count=count + 1,  # one more tells whether there is a next page
    )
    more, rows = len(rows) > count, rows[:count]
    base = f"{request.base_url}fhir/Task"
    kept = [(k, v) for k, v in params if k != "_cursor"]
    links = [{"relation": "self", "url": page_link(base, kept, request.query_params.get("_cursor"))}]
    if more and rows:
        after = Cursor(cursor.snapshot, (str(rows[-1]["seq"]), rows[-1]["task_id"]))
        links.append({"relation": "next", "url": page_link(base, kept, encode_cursor(after))})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": total, "link": links}
    if rows:  # FHIR JSON has no empty arrays: an empty page has no entry
        bundle["entry"] = [
            {"fullUrl": f"{base}/{row['task_id']}", "resource": task(row), "search": {"mode": "match"}} for row in rows
        ]
    return bundle


def _visible(row: RowMapping | None, task_id: str, tenants: tuple[str, ...] | None) -> RowMapping:
    if row is None or (tenants is not None and row["tenant"] not in tenants):
        raise FhirError(404, "not-found", f"Task/{task_id} is not known", "not-found")
    return row


def _answer(row: RowMapping) -> Response:
    updated = _aware(row["updated_at"])
    return fhir_response(task(row), 200, version_headers(row["version"], updated))


def _openapi(code: str, scope: str, *errors: str) -> dict[str, Any]:
    """A Task route's OpenAPI extra: its FHIR interaction, SMART scope letter, answers and parameters."""
    extra: dict[str, Any] = {
        "x-fhir-interaction": code,
        "x-smart-scope": scope,
        "responses": fhir_responses(*errors, "406", "503", success="Task" if code != "search-type" else "Bundle"),
    }
    if code == "search-type":
        extra["parameters"] = [
            {"name": name, "in": "query", "required": False, "schema": {"type": "string"}, "description": text}
            for name, text in SEARCH_DOCS.items()
        ]
    return extra


SEARCH_DOCS = {
    "focus": "the Claim (Claim/<id>) or Claim version (Claim/<id>/_history/<n>) delivered",
    "status": "requested | in-progress | completed | failed (a comma is OR)",
    "_id": "Task ids (a comma is OR)",
    "_count": "page size (at most 1000)",
    "_cursor": "the next page (follow the Bundle's next link; the pages of one search see the Tasks of its first page)",
}


def _allowed(request: Request, action: str, interaction: str) -> tuple[str, ...] | None:
    """The caller may ``action`` Tasks (SMART scope, else 403); the tenants it sees (None: all)."""
    principal = principal_of(request)
    principal.require("Task", action)
    context = audit_of(request)
    if interaction == "retry":
        context.interaction, context.operation = "operation", "retry"
    else:
        context.interaction = interaction
        context.query = urlencode(list(request.query_params.multi_items())) if interaction == "search-type" else None
    return None if principal.organization is None else (principal.organization,)


def task_router(store: Store, settings: Settings, audit: AuditRecorder) -> APIRouter:
    """The Task routes, behind the auth policy's guard like every door; register before the
    generic ``/fhir/{type}`` routes.  A tenant client sees the deliveries of its own Claims only
    (another tenant's Task is "not found" to it)."""
    router = APIRouter()

    @router.get("/fhir/Task", openapi_extra=_openapi("search-type", "s", "400", "401", "403"))
    def search(request: Request) -> Response:
        return fhir_response(search_tasks(store, settings, request, _allowed(request, "s", "search-type")))

    @router.get("/fhir/Task/{task_id}", openapi_extra=_openapi("read", "r", "401", "403", "404"))
    def read(task_id: str, request: Request) -> Response:
        tenants = _allowed(request, "r", "read")
        row = outbox.read(store, task_id) if FHIR_ID.match(task_id) else None
        audit_of(request).entities.append(f"Task/{task_id}")
        return _answer(_visible(row, task_id, tenants))

    @router.post("/fhir/Task/{task_id}/$retry", openapi_extra=_openapi("operation", "u", "401", "403", "404", "409"))
    async def retry(task_id: str, request: Request) -> Response:
        tenants = _allowed(request, "u", "retry")
        row = await run_in_threadpool(outbox.read, store, task_id) if FHIR_ID.match(task_id) else None
        _visible(row, task_id, tenants)
        context = audit_of(request)
        context.entities.append(f"Task/{task_id}")

        def recorded(connection: Connection) -> None:  # the AuditEvent commits with the retry
            audit.record_in(connection, context, 200)

        try:
            again = await run_in_threadpool(outbox.retry, store, task_id, recorded)
        except outbox.RetryRefused as refused:
            raise FhirError(409, "retry-refused", str(refused), "business-rule") from refused
        return _answer(_visible(again, task_id, tenants))

    return router
