"""The door every HTTP request passes: authentication, the audit record, safe headers, one log line.

Deny by default: every path needs a valid access token when a client registry is configured,
except ``OPEN_PATHS`` (conformance, discovery, the token endpoint, liveness).  A route added
later is therefore protected without doing anything (tests/api/test_doors.py enumerates them).

Every request to a protected path leaves exactly one AuditEvent: recorded by the handler inside
its write transaction, or here once the response is known.  When the audit record cannot be
written, a data response is withheld (503): no PHI leaves without its audit trail.

The log line carries the request id, client id, route template, status and duration; never
the query string, a body, or exception text (which may quote input).
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from adapter.deadline import unbudgeted
from adapter.service.auth.audit import AuditContext
from adapter.service.auth.policy import AuthPolicy, Principal, Unauthenticated
from adapter.service.faults import DATABASE_DOWN, unavailable
from adapter.service.fhirhttp import fhir_response, internal_error, outcome

OPEN_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/fhir/metadata",
        "/fhir/.well-known/smart-configuration",
        "/.well-known/smart-configuration",
        "/auth/token",
        "/openapi.json",
        "/docs",
    }
)
AUTH_HEADER = "X-Theraclaim-Authentication"
log = logging.getLogger("theraclaim.request")


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith("/docs/")


def principal_of(request: Request) -> Principal:
    """The caller, as the guard authenticated it (every protected route runs behind the guard)."""
    principal: Principal = request.state.principal
    return principal


def audit_of(request: Request) -> AuditContext:
    context: AuditContext = request.state.audit
    return context


def install_guard(app: FastAPI, policy: AuthPolicy) -> None:
    @app.middleware("http")
    async def _guard(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        request_id = uuid.uuid4().hex[:16]
        address = request.client.host if request.client else None
        context = AuditContext(address=address)
        request.state.audit = context
        if is_open(request.url.path):
            response = await _call(request, call_next)
        else:
            response = await _protected(request, call_next, policy, context, address)
        _safe_headers(response, policy.enabled, request_id)
        route = request.scope.get("route")
        log.info(
            "request id=%s client=%s route=%s %s status=%d ms=%.1f",
            request_id,
            context.client_id or "-",
            request.method,
            getattr(route, "path", "(unmatched)"),
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response


async def _protected(
    request: Request, call_next: Any, policy: AuthPolicy, context: AuditContext, address: str | None
) -> Response:
    authorization = request.headers.get("authorization")
    try:
        if policy.authenticates_in_memory:
            principal = policy.authenticate(authorization, address)
        else:
            principal = await run_in_threadpool(policy.authenticate, authorization, address)
    except DATABASE_DOWN as error:  # the token key is read from the database on first use
        log.warning("database unreachable during authentication: %s", type(error).__name__)
        return unavailable()
    except Unauthenticated as refused:
        body = outcome(refused.code, refused.message, refused.issue_type)
        response = fhir_response(body, 401, refused.headers)
        await _audit(policy, context, 401, refused.message)
        return response
    request.state.principal = principal
    context.client_id = principal.client_id
    response = await _call(request, call_next)
    if not await _audit(policy, context, response.status_code) and response.status_code < 400:
        refusal = outcome("audit-unavailable", "the audit trail cannot be written; retry later", "transient")
        return fhir_response(refusal, 503, {"Retry-After": "5"})
    return response


async def _call(request: Request, call_next: Any) -> Response:
    try:
        response: Response = await call_next(request)
    except Exception as error:  # log the type only: the exception text may quote a resource (PHI)
        log.error("unhandled %s on %s", type(error).__name__, request.method)
        return internal_error()
    return response


async def _audit(policy: AuthPolicy, context: AuditContext, status: int, description: str = "") -> bool:
    """Record the request's AuditEvent unless its handler did; False when the database refuses."""
    if context.recorded:  # (in the write's transaction): no worker thread needed
        return True
    try:
        # even a request stopped for its spent time budget is audited
        await run_in_threadpool(unbudgeted(policy.audit.record_after), context, status, description)
    except Exception as error:  # the database is down: say so without quoting anything
        log.error("audit record failed: %s", type(error).__name__)
        return False
    return True


def _safe_headers(response: Response, authentication: bool, request_id: str) -> None:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Request-ID"] = request_id
    if not authentication:
        response.headers[AUTH_HEADER] = "disabled"
