"""FHIR REST conventions shared by every route: formats, bodies, errors, headers.

Every error answers with an OperationOutcome, whatever raised it (see ``install_error_handlers``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from email.utils import format_datetime
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from adapter.errors import Problem, problem_issue

FHIR_JSON = "application/fhir+json"
JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir", "text/json")
FORMAT_ALIASES = {"json": FHIR_JSON, **{alias: FHIR_JSON for alias in JSON_TYPES}}
RETRY_AFTER_SECONDS = 5  # what a 503 (database down, time budget spent) tells the client to wait
log = logging.getLogger("theraclaim.http")


class Gate:
    """ASGI middleware that answers an HTTP request itself when ``answer`` returns a response for
    it, else passes it on.  (``@app.middleware("http")`` costs a task group and a memory stream
    per request, on the event loop every request's threads wait for.)"""

    def __init__(self, app: ASGIApp, answer: Callable[[Request], Response | None]) -> None:
        self.app = app
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            response = self.answer(Request(scope))
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class FhirJsonResponse(Response):
    """What the FHIR routes answer with (the OpenAPI document says so)."""

    media_type = FHIR_JSON


class FhirError(Exception):
    """An HTTP error that becomes an OperationOutcome with a stable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        issue_type: str = "processing",
        expression: str | None = None,
        headers: dict[str, str] | None = None,
        problems: list[Problem] | None = None,
    ) -> None:
        super().__init__(message)
        self.problems = problems or []  # when given, the OperationOutcome lists each of them
        self.status = status
        self.code = code
        self.message = message
        self.issue_type = issue_type
        self.expression = expression
        self.headers = headers or {}


def outcome(
    code: str, message: str, issue_type: str = "processing", severity: str = "error", expression: str | None = None
) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [problem_issue(Problem(code, message, expression, issue_type), severity)],
    }


def fhir_response(body: dict[str, Any] | None, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = b"" if body is None else orjson.dumps(body)
    return Response(
        content=content, status_code=status, media_type=FHIR_JSON if body is not None else None, headers=headers
    )


def version_headers(version_id: int, last_updated: datetime) -> dict[str, str]:
    return {"ETag": f'W/"{version_id}"', "Last-Modified": format_datetime(last_updated, usegmt=True)}


def check_accept(request: Request) -> None:
    """406 unless the client accepts FHIR JSON (``_format`` wins over ``Accept``)."""
    wanted = request.query_params.get("_format")
    if wanted is not None:
        # an unencoded "+" in a URL reads as a space (application/fhir+json typed as is); no media type has one
        if wanted.split(";")[0].strip().lower().replace(" ", "+") not in FORMAT_ALIASES:
            raise FhirError(
                406, "unsupported-format", f"_format {wanted!r} is not supported; use json", "not-supported"
            )
        return
    accept = request.headers.get("accept", "")
    if not accept:
        return
    types = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if not any(t in JSON_TYPES or t in ("*/*", "application/*") for t in types):
        raise FhirError(
            406, "unsupported-format", f"cannot answer in {accept!r}; this server speaks {FHIR_JSON}", "not-supported"
        )


async def read_body(request: Request, max_bytes: int, media_types: Iterable[str] | None = None) -> bytes:
    """The request body, refusing wrong media types (415) and bodies over the limit (413) early."""
    accepted = tuple(media_types) if media_types is not None else tuple(JSON_TYPES)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in accepted:
        send = FHIR_JSON if media_types is None else accepted[0]
        raise FhirError(
            415,
            "unsupported-media-type",
            f"Content-Type {media_type or '(none)'!r} is not supported; send {send}",
            "not-supported",
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FhirError(413, "too-large", f"the body is over the limit of {max_bytes} bytes", "too-long")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise FhirError(413, "too-large", f"the body is over the limit of {max_bytes} bytes", "too-long")
        chunks.append(chunk)
    return b"".join(chunks)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FhirError)
    async def _fhir_error(_request: Request, error: FhirError) -> Response:
        body = outcome(error.code, error.message, error.issue_type, expression=error.expression)
        body["issue"] += [problem_issue(p) for p in error.problems]
        headers = error.headers
        if error.status == 503:  # every "try again later" says when
            headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} | headers
        return fhir_response(body, error.status, headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, error: StarletteHTTPException) -> Response:
        codes = {404: ("not-found", "not-found"), 405: ("method-not-allowed", "not-supported")}
        code, issue_type = codes.get(error.status_code, ("http-error", "processing"))
        return fhir_response(outcome(code, str(error.detail), issue_type), error.status_code, dict(error.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, error: RequestValidationError) -> Response:
        first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return fhir_response(outcome("invalid-request", f"{where}: {first.get('msg')}", "invalid"), 400)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> Response:
        # Log the type and route only: the exception text may quote a resource (PHI).
        log.error("unhandled %s on %s %s", type(error).__name__, request.method, request.url.path)
        return internal_error()


def internal_error() -> Response:
    """Our failure, said without its cause (the exception text may quote a resource: PHI)."""
    return fhir_response(outcome("internal-error", "the server failed to process the request", "exception"), 500)
