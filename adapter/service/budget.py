"""The request time budget (THERACLAIM_REQUEST_TIMEOUT_SECONDS, issue 10): a request that runs past
it answers 503 with an OperationOutcome (``timeout``) and its work stops; a client that disconnects
first stops it too.  Stopping is cooperative (adapter/deadline.py): the worker thread raises at its
next checkpoint or database statement and rolls its transaction back, and this middleware waits for
that before the request ends, so nothing keeps running for a request nobody waits for.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapter import deadline as budget
from adapter.service.fhirhttp import RETRY_AFTER_SECONDS, fhir_response, outcome

log = logging.getLogger("theraclaim.budget")


def timed_out() -> Response:
    message = "the request ran past the server's time budget and was stopped; nothing was stored"
    body = outcome("request-timeout", message, "timeout")
    return fhir_response(body, 503, {"Retry-After": str(RETRY_AFTER_SECONDS)})


def install_request_budget(app: FastAPI, seconds: float) -> None:
    """The budget around every HTTP request; work that noticed the spent budget first answers the same."""
    app.add_middleware(RequestBudget, seconds=seconds)

    @app.exception_handler(budget.DeadlineExceeded)
    async def _stopped(_request: Request, _error: budget.DeadlineExceeded) -> Response:
        return timed_out()


class RequestBudget:
    """ASGI middleware, outermost: every HTTP request gets a Deadline of ``seconds``."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = budget.Deadline(self.seconds)
        token = budget.current.set(deadline)  # the app's task and its worker threads inherit it
        try:
            await self._run(scope, receive, send, deadline)
        finally:
            budget.current.reset(token)

    async def _run(self, scope: Scope, receive: Receive, send: Send, deadline: budget.Deadline) -> None:
        body_read = asyncio.Event()
        answered = False
        started = False

        async def app_receive() -> Message:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_read.set()  # from now on only a disconnect can come: the watcher listens for it
            return message

        async def app_send(message: Message) -> None:
            nonlocal started
            if answered:  # the 503 went out: what the stopped work answers is dropped
                return
            started = True
            await send(message)

        async def client_left() -> None:
            await body_read.wait()
            while (await receive())["type"] != "http.disconnect":
                pass

        work = asyncio.ensure_future(self.app(scope, app_receive, app_send))
        watcher = asyncio.ensure_future(client_left())
        try:
            done, _ = await asyncio.wait({work, watcher}, timeout=deadline.remaining(), return_when="FIRST_COMPLETED")
            if work not in done and not started and deadline.stop():
                disconnected = watcher in done
                log.warning("request stopped: %s", "client disconnected" if disconnected else "time budget spent")
                if not disconnected:
                    await timed_out()(scope, receive, send)
                answered = True
            await work  # the stopped work ends at its next checkpoint, its transaction rolled back
        finally:
            watcher.cancel()
