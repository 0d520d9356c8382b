"""``POST /hl7v2``: the HL7 v2 door over HTTP for engines that prefer it; the ACK is the response body."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from adapter.service.auth.access import WriteAccess
from adapter.service.auth.policy import AuthPolicy
from adapter.service.budget import InFlight, StoppedAnswer
from adapter.service.fhirhttp import read_body
from adapter.service.guard import audit_of, principal_of
from adapter.service.hl7v2.door import HEAD_BYTES, STOPPED, Hl7v2Door
from adapter.service.hl7v2.mllp import MllpListener
from adapter.service.settings import Settings

ER7 = "x-application/hl7-v2+er7"
ER7_BODY = {"requestBody": {"required": True, "content": {ER7: {"schema": {"type": "string"}}}}}


def hl7v2_router(door: Hl7v2Door, settings: Settings, policy: AuthPolicy) -> APIRouter:
    router = APIRouter()

    @router.post("/hl7v2", openapi_extra=ER7_BODY, response_class=Response)
    async def hl7v2(request: Request) -> Response:
        context = audit_of(request)  # the guard authenticated the caller; the AuditEvent commits with the write
        context.interaction, context.operation = "operation", "hl7v2"
        access = WriteAccess(principal_of(request), context, policy.audit)
        body = await read_body(request, settings.mllp_max_bytes, (ER7,))
        acks = await run_in_threadpool(door.handle, body, access)
        if not acks:  # enhanced mode: the sender asked for no acknowledgment of this outcome
            return Response(status_code=204)
        return _ack_response(acks)

    return router


def _ack_response(acks: list[str]) -> Response:
    # one response has room for one message: enhanced mode's application acknowledgment, when asked for
    return Response(acks[-1].encode("utf-8"), 200, media_type=f"{ER7}; charset=utf-8")


def answer_stopped_messages(door: Hl7v2Door, in_flight: InFlight) -> None:
    """A ``POST /hl7v2`` the time budget or shutdown stops answers what MLLP answers then: AR with
    ERR 207 (resend), like the door's other transient refusals (HTTP 200: the ACK is the answer)."""

    def answer(head: bytes) -> Response:
        return _ack_response(door.reject_frame(head, STOPPED, "207"))

    in_flight.stopped_answers["/hl7v2"] = StoppedAnswer(HEAD_BYTES, answer)


def install_mllp(app: FastAPI, door: Hl7v2Door, settings: Settings, policy: AuthPolicy, in_flight: InFlight) -> None:
    """Start the MLLP listener with the app when THERACLAIM_MLLP_PORT is set (0: any free port)."""
    if settings.mllp_port is None:
        return
    listener = MllpListener(door, settings, policy, in_flight)
    app.state.mllp = listener

    async def start() -> None:
        assert settings.mllp_port is not None
        await listener.start(settings.mllp_host or settings.host, settings.mllp_port)

    app.router.on_startup.append(start)
    app.router.on_shutdown.append(listener.stop)
