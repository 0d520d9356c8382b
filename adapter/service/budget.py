"""The request time budget (THERACLAIM_REQUEST_TIMEOUT_SECONDS, issue 10) and what shutdown does with
work in flight.

A request that runs past its budget answers 503 with an OperationOutcome (``timeout``) and its work
stops; a client that disconnects first stops it too.  Stopping is cooperative (adapter/deadline.py):
the worker thread raises at its next checkpoint or database statement and rolls its transaction
back, and the middleware waits for that before the request ends, so nothing keeps running for a
request nobody waits for.  MLLP messages get the same budget (adapter/service/hl7v2/mllp.py).

At shutdown uvicorn lets requests finish for THERACLAIM_SHUTDOWN_SECONDS, then cancels them: the
cancelled ones answer 503 and their work stops; then ``InFlight.drain`` stops what is still running
(an MLLP message, work whose request was cancelled) and waits for it, before the SQLite write-ahead
log is checkpointed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapter import deadline as budget
from adapter.service.fhirhttp import RETRY_AFTER_SECONDS, fhir_response, outcome

DRAIN_SECONDS = 2.0  # at shutdown, how long stopped work may take to reach its next checkpoint
log = logging.getLogger("theraclaim.budget")
P = ParamSpec("P")
R = TypeVar("R")


def timed_out() -> Response:
    message = "the request ran past the server's time budget and was stopped; nothing was stored"
    return fhir_response(outcome("request-timeout", message, "timeout"), 503, {"Retry-After": str(RETRY_AFTER_SECONDS)})


def shutting_down() -> Response:
    message = "the server is shutting down; the request was stopped and nothing was stored; retry"
    return fhir_response(outcome("shutting-down", message, "transient"), 503, {"Retry-After": str(RETRY_AFTER_SECONDS)})


@dataclass(frozen=True)
class StoppedAnswer:
    """How a stopped request of one path is answered, from the first ``head_bytes`` of its body
    (``POST /hl7v2``: the HL7 ACK its sender reads) instead of the OperationOutcome."""

    head_bytes: int
    answer: Callable[[bytes], Response]  # the body's head -> the answer, whether budget or shutdown stopped it


class InFlight:
    """The deadlines of the work in flight (HTTP requests, MLLP messages), so shutdown can stop it all."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.stopped_answers: dict[str, StoppedAnswer] = {}  # by request path
        self._deadlines: set[budget.Deadline] = set()
        self._lock = threading.Lock()
        self._closed = False

    @contextmanager
    def track(self) -> Iterator[budget.Deadline]:
        """A new budget for one piece of work; already stopped once shutdown has begun."""
        deadline = budget.Deadline(self.seconds)
        with self._lock:
            if self._closed:
                deadline.stop()
            self._deadlines.add(deadline)
        try:
            yield deadline
        finally:
            with self._lock:
                self._deadlines.discard(deadline)

    def run(self, function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """``function`` (in a worker thread) under a budget of its own."""
        with self.track() as deadline:
            token = budget.current.set(deadline)
            try:
                return function(*args, **kwargs)
            finally:
                budget.current.reset(token)

    async def drain(self, seconds: float = DRAIN_SECONDS) -> int:
        """Stop all work in flight (and any that starts from now on) and wait for it to end (the event
        loop keeps running meanwhile: a stopped request ends on it); how many did not end."""
        with self._lock:
            self._closed = True
            for deadline in self._deadlines:
                deadline.stop()
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while self._deadlines and loop.time() < until:
            await asyncio.sleep(0.05)
        left = len(self._deadlines)
        if left:
            log.warning("shutdown: %d piece(s) of work did not stop within %s s", left, seconds)
        return left


def install_request_budget(app: FastAPI, in_flight: InFlight) -> None:
    """The budget around every HTTP request (outermost); work that noticed the spent budget first
    answers the same.  Must be installed after every other middleware and shutdown handler."""
    app.add_middleware(RequestBudget, in_flight=in_flight)
    app.router.on_shutdown.insert(0, in_flight.drain)  # before the listeners close and the WAL checkpoint

    @app.exception_handler(budget.DeadlineExceeded)
    async def _stopped(_request: Request, _error: budget.DeadlineExceeded) -> Response:
        return timed_out()


class RequestBudget:
    """ASGI middleware: every HTTP request gets a Deadline of the in-flight registry."""

    def __init__(self, app: ASGIApp, in_flight: InFlight) -> None:
        self.app = app
        self.in_flight = in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with self.in_flight.track() as deadline:
            token = budget.current.set(deadline)  # the app's task and its worker threads inherit it
            try:
                await self._run(scope, receive, send, deadline)
            finally:
                budget.current.reset(token)

    async def _run(self, scope: Scope, receive: Receive, send: Send, deadline: budget.Deadline) -> None:
        body_read = asyncio.Event()
        answered = False
        started = False
        special = self.in_flight.stopped_answers.get(scope["path"])
        head = bytearray()

        def stopped(shutting: bool) -> Response:
            if special is not None:
                return special.answer(bytes(head))
            return shutting_down() if shutting else timed_out()

        async def app_receive() -> Message:
            message = await receive()
            if special is not None and message["type"] == "http.request" and len(head) < special.head_bytes:
                head.extend(message.get("body", b"")[: special.head_bytes - len(head)])
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
                    await stopped(shutting=False)(scope, receive, send)
                answered = True
            await work  # the stopped work ends at its next checkpoint, its transaction rolled back
        except asyncio.CancelledError:  # shutdown's grace ran out (uvicorn cancels the request)
            if not started and not answered and deadline.stop():
                answered = True
                log.warning("request stopped: the server is shutting down")
                with suppress(OSError):  # the connection may be gone already
                    await stopped(shutting=True)(scope, receive, send)
            await asyncio.wait({work})  # its worker thread stops at the next checkpoint: wait for it
            # the request is answered and its work has ended, which is what the cancellation asked
            # for: returning (not re-raising) spares uvicorn's log a traceback per stopped request
        finally:
            watcher.cancel()
