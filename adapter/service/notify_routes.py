"""The notification door: ``POST /subscriptions/notify`` and the queue's status as FHIR Tasks.

Both go through the auth policy (the guard authenticates every request): a notification makes
Claims, so it needs the Claim create scope; the queue is read with the Task search scope.  The
rows are not tied to a tenant (the billing Organization is known only once the visit is pulled),
so both are for clients without an organization (operators, the EHR's integration client).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from adapter.errors import InputError
from adapter.intake.wire import parse_document
from adapter.service.cloud_events import CloudEvents, is_azure, is_google, read_azure, read_google
from adapter.service.fhirhttp import FhirError, fhir_response, outcome, read_body
from adapter.service.guard import principal_of
from adapter.service.pull_queue import PullQueue, utc
from adapter.service.settings import Settings
from adapter.service.subscriptions import read_notification

TASK_STATUS = {"queued": "requested", "running": "in-progress", "done": "completed", "failed": "failed"}


def notify_router(settings: Settings, queue: PullQueue) -> APIRouter:
    router = APIRouter()

    @router.post("/subscriptions/notify")
    async def notify(request: Request) -> Response:
        _operator(request, "Claim", "c")
        body = await read_body(request, settings.max_bytes)
        array = body.lstrip().startswith(b"[")
        try:  # an Event Grid array is read inside an object, so the same size and depth limits apply
            document: Any = parse_document(b'{"events":' + body + b"}" if array else body, settings.limits)
        except InputError as error:
            first = error.problems[0]
            raise FhirError(400, first.code, str(error), first.issue_type, first.expression) from None
        if not queue.pulls.configured:
            raise FhirError(
                400, "no-source", "no source FHIR server is configured (THERACLAIM_SOURCE_FHIR_BASE)", "not-supported"
            )
        formats = set(settings.source_events.split(","))
        if array and "azure" in formats and is_azure(document["events"]):
            events = read_azure(document["events"])
            if events.validation_code is not None:
                return JSONResponse({"validationResponse": events.validation_code})
            return await _cloud(queue, events, "Azure")
        if not array and "google" in formats and is_google(document):
            return await _cloud(queue, read_google(document), "Google")
        if array or "backport" not in formats:
            raise FhirError(
                400,
                "invalid-notification",
                f"not a notification this server accepts ({settings.source_events})",
                "invalid",
            )
        notification = read_notification(document)
        done = await run_in_threadpool(queue.enqueue, notification)
        text = f"{notification.type}: {done.queued} pull(s) queued, {done.duplicates} already known"
        if done.catch_up:
            text += "; events were missed: a catch-up search of the source is queued"
        return fhir_response(outcome("notification-accepted", text, "informational", "information"), 200)

    @router.get("/subscriptions/pulls")
    def pulls(request: Request) -> Response:
        _operator(request, "Task", "s")
        rows = queue.rows()
        base = (settings.source_fhir_base or "").rstrip("/")
        entries = [
            {"fullUrl": f"urn:uuid:{r.id}", "resource": _task(r, base), "search": {"mode": "match"}} for r in rows
        ]
        return fhir_response({"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries})

    return router


def _operator(request: Request, resource_type: str, action: str) -> None:
    principal = principal_of(request)
    principal.require(resource_type, action)
    if principal.organization is not None:
        raise FhirError(
            403,
            "tenant-not-allowed",
            "the queue of pulls is not tied to a billing organization: use a client without an organization",
            "forbidden",
        )


async def _cloud(queue: PullQueue, events: CloudEvents, service: str) -> Response:
    done = await run_in_threadpool(queue.enqueue_pulls, events.pulls)
    text = f"{service} events: {done.queued} pull(s) queued, {done.duplicates} already known, {events.ignored} ignored"
    return fhir_response(outcome("notification-accepted", text, "informational", "information"), 200)


def _task(row: Any, base: str) -> dict[str, Any]:
    """One queued pull as a FHIR Task (rendered from its row, not stored)."""
    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": row.id,
        "status": TASK_STATUS[row.status],
        "intent": "order",
        "code": {
            "text": "catch-up search of the source" if row.kind == "catch-up" else "pull the Encounter from the source"
        },
        "authoredOn": utc(row.created_at).isoformat(),
        "lastModified": utc(row.updated_at).isoformat(),
        "businessStatus": {"text": f"attempts: {row.attempts}"},
    }
    if row.encounter_id:
        task["focus"] = {"reference": f"{base}/Encounter/{row.encounter_id}"}
    if row.last_error:
        task["statusReason"] = {"text": row.last_error}
    if row.claim_id:
        task["output"] = [{"type": {"text": "Claim"}, "valueReference": {"reference": f"Claim/{row.claim_id}"}}]
    return task
