"""FastAPI app factory: the FHIR REST shell around the pipeline and the store."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from adapter.errors import InputError, Problem, problem_issue
from adapter.intake.fhir import read_bundle
from adapter.intake.validation import VALIDATION_LEVELS, validate_resource
from adapter.intake.wire import parse_document
from adapter.rules.catalog import Rules, load_rules
from adapter.service.auth.access import WriteAccess
from adapter.service.auth.audit_api import audit_router
from adapter.service.auth.policy import AuthPolicy
from adapter.service.auth.routes import auth_router, token_url
from adapter.service.budget import InFlight, install_request_budget
from adapter.service.capability import (
    INPUT_TYPES,
    OUTPUT_TYPES,
    VALIDATE_TYPES,
    capability_statement,
    operation_definition,
)
from adapter.service.claims import ClaimService, Clock
from adapter.service.conditional import IfNoneExist, MatchChanged
from adapter.service.delivery.tasks import task_router
from adapter.service.docs_routes import FHIR_CONTENT, fhir_responses, install_docs
from adapter.service.faults import install_database_faults, unavailable
from adapter.service.fhirhttp import (
    FhirError,
    FhirJsonResponse,
    Gate,
    check_accept,
    fhir_response,
    install_error_handlers,
    outcome,
    read_body,
    version_headers,
)
from adapter.service.guard import audit_of, install_guard, principal_of
from adapter.service.hl7v2.door import Hl7v2Door
from adapter.service.hl7v2.routes import answer_stopped_messages, hl7v2_router, install_mllp
from adapter.service.links import fhir_base
from adapter.service.notify_routes import notify_router
from adapter.service.numbers import wire_int
from adapter.service.pull_queue import PullQueue, PullWorker, install_pull_workers
from adapter.service.pulls import PullService
from adapter.service.rest_routes import create_rest_router
from adapter.service.routes_x12 import PATH_SUFFIX as X12_PATH_SUFFIX
from adapter.service.routes_x12 import x12_router
from adapter.service.search import collection_of, conditional_match
from adapter.service.settings import Settings
from adapter.service.store import Store, Stored
from adapter.service.transaction import TransactionService

FHIR_BODY = {"requestBody": {"required": True, "content": {"application/fhir+json": {"schema": {"type": "object"}}}}}


def create_app(settings: Settings | None = None, rules: Rules | None = None, clock: Clock | None = None) -> FastAPI:
    """The app; ``clock`` (default: the wall clock) dates the Claim decisions, so tests can fix it."""
    settings = settings or Settings()
    rules = rules or load_rules(settings.mappings_dir)
    store = Store(settings.database_url)
    policy = AuthPolicy.from_settings(settings.clients, store, settings.token_lifetime)
    claims = ClaimService(store, rules, settings, clock)
    transactions = TransactionService(store, claims)
    hl7v2 = Hl7v2Door(claims)
    pulls = PullService(settings, rules)
    queue = PullQueue(store, pulls)
    worker = PullWorker(queue, claims)

    app = FastAPI(
        title="theraclaim",
        version=rules.fingerprint[:12],
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
        default_response_class=FhirJsonResponse,
    )
    app.include_router(notify_router(settings, queue))
    install_pull_workers(app, worker, pulls.configured, settings.source_workers)
    app.router.on_shutdown.append(pulls.close)
    install_error_handlers(app)
    install_docs(app)
    app.state.schema = install_database_faults(app, store)
    app.include_router(x12_router(store, claims.x12, settings))
    hl7v2.ready = app.state.schema.ready.is_set
    app.include_router(hl7v2_router(hl7v2, settings, policy))
    in_flight = InFlight(settings.request_timeout_seconds)  # every request's and MLLP message's budget
    answer_stopped_messages(hl7v2, in_flight)
    install_mllp(app, hl7v2, settings, policy, in_flight)
    app.include_router(task_router(store, settings, policy.audit))  # before the generic /fhir/{type} routes

    def public_base(request: Request) -> str:
        """The server's root URL (the FHIR base without /fhir): for the token endpoint."""
        return fhir_base(request, settings).removesuffix("/fhir")

    def access(request: Request, operation: str | None = None) -> WriteAccess:
        context = audit_of(request)
        context.interaction, context.operation = ("operation", operation) if operation else ("transaction", None)
        return WriteAccess(principal_of(request), context, policy.audit)

    def _negotiate(request: Request) -> Response | None:
        path = request.scope["path"]
        if path.startswith("/fhir/") and path.endswith("/"):  # the same resource, never a redirect
            request.scope["path"] = path.rstrip("/") or "/"
        if request.url.path.startswith("/fhir") and not request.url.path.endswith(X12_PATH_SUFFIX):
            try:
                check_accept(request)
            except FhirError as error:
                return fhir_response(outcome(error.code, error.message, error.issue_type), error.status)
        return None

    app.add_middleware(Gate, answer=_negotiate)

    install_guard(app, policy)
    if settings.cors_origins:
        origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"], allow_headers=["*"])
    install_request_budget(app, in_flight)  # outermost: it stops all of the work
    app.include_router(auth_router(policy, public_base, OUTPUT_TYPES + INPUT_TYPES + ("AuditEvent",)))
    app.include_router(audit_router(store, principal_of, audit_of, settings.page_size))

    @app.get("/healthz", response_class=JSONResponse)
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", response_class=JSONResponse)
    def readyz() -> Response:
        try:
            store.ping()
        except Exception:  # any database failure means "not ready"; the reason is in the database's log
            return unavailable()
        return JSONResponse({"status": "ready", "rules": rules.fingerprint[:12], "database": store.dialect})

    @app.get("/fhir/metadata", openapi_extra={"x-fhir-interaction": "capabilities", "responses": fhir_responses("406")})
    def metadata(request: Request) -> Response:
        now = datetime.now(UTC).replace(microsecond=0).isoformat()
        return fhir_response(capability_statement(now, token_url(public_base(request))))

    @app.get(
        "/fhir/OperationDefinition/claim-from-encounter",
        openapi_extra={"x-fhir-interaction": "read", "responses": fhir_responses("406")},
    )
    def read_operation_definition(request: Request) -> Response:
        audit_of(request).interaction = "read"
        audit_of(request).entities.append("OperationDefinition/claim-from-encounter")
        return fhir_response(operation_definition())

    @app.post(
        "/fhir/Claim/$from-encounter",
        openapi_extra=_operation(
            "operation",
            "c",
            fhir_responses("400", "406", "412", "413", "415", "422", "503", success="an identical Claim existed")
            | {
                "201": {
                    "description": "a Claim or a new version was stored (Location names it)",
                    "content": FHIR_CONTENT,
                }
            },
        ),
    )
    async def from_encounter(request: Request) -> Response:
        writer = access(request, "from-encounter")
        writer.principal.require("Claim", "c")
        body = await read_body(request, settings.max_bytes)
        pushed, payer, encounter = _operation_input(body, settings, request.query_params.get("payer"))
        if pushed is not None and not pulls.fills:  # nothing to ask the source: no worker thread needed
            payload, report = pushed, None
        else:
            payload, report = await run_in_threadpool(pulls.prepare, pushed, encounter)

        async def matched(existing: Stored) -> Response:
            """If-None-Exist matched: nothing is processed; the answer is the existing Claim."""
            writer.context.entities.append(f"Claim/{existing.resource['id']}/_history/{existing.version_id}")
            await run_in_threadpool(claims.record_no_op, payload, existing)
            found = collection_of([existing], fhir_base(request, settings))
            return _answer(request, 200, found, [existing], fhir_base(request, settings))

        condition = request.headers.get("if-none-exist")
        if_none_exist = None
        if condition:
            writer.principal.require("Claim", "s")
            tenant = writer.principal.tenant
            existing = await run_in_threadpool(conditional_match, store, condition, "Claim", tenant)
            if existing is not None:
                return await matched(existing)
            if_none_exist = IfNoneExist("Claim", condition, tenant)  # matched again as the Claim is written
        if_match = _if_match(request.headers.get("if-match"))
        validation = request.query_params.get("validation")
        if validation is not None and validation not in VALIDATION_LEVELS:
            raise FhirError(400, "invalid-parameter", f"validation must be one of {VALIDATION_LEVELS}", "invalid")
        try:
            result = await run_in_threadpool(
                claims.from_encounter, payload, payer, if_match, validation, writer, report, if_none_exist
            )
        except MatchChanged as changed:  # another writer stored a match meanwhile (the early match found none)
            (existing,) = changed.found.values()
            assert existing is not None
            return await matched(existing)
        return _answer(request, result.http_status, result.bundle, result.claims, fhir_base(request, settings))

    @app.get("/fhir/Claim/$from-encounter", include_in_schema=False)
    def from_encounter_needs_post() -> Response:
        raise FhirError(
            405, "method-not-allowed", "$from-encounter takes a POST", "not-supported", headers={"Allow": "POST"}
        )

    @app.post(
        "/fhir",
        openapi_extra=_operation(
            "transaction batch",
            "c u",
            fhir_responses("400", "406", "412", "413", "415", "503", success="transaction-response or batch-response"),
        ),
    )
    async def transaction(request: Request) -> Response:
        writer = access(request)
        body = await read_body(request, settings.max_bytes)
        document = _json(body, settings)
        if document.get("type") == "batch":
            writer.context.interaction = "batch"
        response = await run_in_threadpool(transactions.process, document, fhir_base(request, settings), writer)
        return fhir_response(response, 200)

    @app.post(
        "/fhir/{resource_type}/$validate",
        openapi_extra=_operation(
            "operation", "r", fhir_responses("404", "406", "413", "415", success="OperationOutcome: every problem")
        ),
    )
    async def validate(resource_type: str, request: Request) -> Response:
        audit_of(request).operation = "validate"  # any valid token may validate; nothing is stored
        if resource_type not in VALIDATE_TYPES:
            raise FhirError(404, "not-supported", f"$validate is not supported for {resource_type}", "not-supported")
        body = await read_body(request, settings.max_bytes)
        return fhir_response(await run_in_threadpool(_validate, resource_type, body, settings), 200)

    app.include_router(create_rest_router(store, settings))

    app.state.store = store
    app.state.pull_worker = worker
    app.state.rules = rules
    app.state.policy = policy
    return app


def _operation(interaction: str, scope: str, responses: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI extra of a route taking a FHIR JSON body: its interaction, SMART scope letters, responses."""
    return FHIR_BODY | {"x-fhir-interaction": interaction, "x-smart-scope": scope, "responses": responses}


def _json(body: bytes, settings: Settings) -> dict[str, Any]:
    try:
        return parse_document(body, settings.limits)
    except InputError as error:
        raise _unprocessable(error, 400) from error


def _unprocessable(error: InputError, status: int = 422) -> FhirError:
    first = error.problems[0]
    return FhirError(status, first.code, str(error), first.issue_type, first.expression)


def _operation_input(
    body: bytes, settings: Settings, payer: str | None
) -> tuple[dict[str, Any] | None, str | None, tuple[int, dict[str, Any]] | None]:
    """The Bundle and payer from the body: a Bundle itself, or Parameters (bundle, payer), or
    Parameters with ``encounter`` (to pull from the source) instead of ``bundle``."""
    document = _json(body, settings)
    if document.get("resourceType") != "Parameters":
        return document, payer, None
    bundle = None
    encounter = None
    for i, parameter in enumerate(_parameters(document)):
        name = parameter.get("name")
        if name == "bundle":
            bundle = parameter.get("resource")
        elif name == "encounter":
            encounter = (i, parameter)
        elif name == "payer":
            payer = parameter.get("valueString") or parameter.get("valueCode")
            if not isinstance(payer, str):
                raise FhirError(
                    400, "invalid-parameter", "payer must be a string", "invalid", f"Parameters.parameter[{i}]"
                )
    if encounter is not None and bundle is None:
        return None, payer, encounter
    if not isinstance(bundle, dict):
        raise FhirError(
            400,
            "missing-parameter",
            "Parameters needs a 'bundle' parameter with the Bundle resource (or 'encounter' to pull it)",
            "required",
            "Parameters.parameter",
        )
    return bundle, payer, None


def _parameters(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The entries of a Parameters resource that are objects (anything else is skipped)."""
    raw = document.get("parameter")
    return [p for p in raw if isinstance(p, dict)] if isinstance(raw, list) else []


def _if_match(header: str | None) -> int | None:
    if header is None:
        return None
    match = re.fullmatch(r'(?:W/)?"([^"]*)"', header.strip())
    version = wire_int(match.group(1)) if match else None
    if version is None:
        raise FhirError(400, "invalid-if-match", 'If-Match must be an ETag such as W/"3" (ASCII digits)', "invalid")
    return version


def _answer(request: Request, status: int, bundle: dict[str, Any], claims: list[Stored], base: str) -> Response:
    """Honour ``Prefer: return=``; Location and ETag name the (first) Claim."""
    headers: dict[str, str] = {}
    if claims:
        first = claims[0]
        headers["Location"] = f"{base}/Claim/{first.resource['id']}/_history/{first.version_id}"
        headers.update(version_headers(first.version_id, first.last_updated))
    if status == 422:
        return fhir_response(bundle, 422)
    prefer = request.headers.get("prefer", "")
    if "return=minimal" in prefer:
        return fhir_response(None, status, headers)
    if "return=OperationOutcome" in prefer:
        found = [e["resource"] for e in bundle.get("entry", []) if e["resource"]["resourceType"] == "OperationOutcome"]
        body = found[0] if found else outcome("ok", "request processed", "informational", "information")
        return fhir_response(body, status, headers)
    return fhir_response(bundle, status, headers)


def _validate(resource_type: str, body: bytes, settings: Settings) -> dict[str, Any]:
    """Always an OperationOutcome listing every problem (or one information issue when there is none)."""
    try:
        document = parse_document(body, settings.limits)
        if document.get("resourceType") == "Parameters":
            document = next(
                (
                    p["resource"]
                    for p in _parameters(document)
                    if p.get("name") == "resource" and isinstance(p.get("resource"), dict)
                ),
                document,
            )
        if document.get("resourceType") != resource_type:
            problems = [
                Problem(
                    "wrong-resource-type",
                    f"expected a {resource_type}, got {document.get('resourceType')!r}",
                    "resourceType",
                )
            ]
        elif resource_type == "Bundle":
            read_bundle(document, settings.limits, "full")
            problems = []
        else:
            problems = validate_resource(document, resource_type, "full")
    except InputError as error:
        problems = error.problems
    if not problems:
        return outcome(
            "valid", f"the {resource_type} has no problems theraclaim checks for", "informational", "information"
        )
    return {"resourceType": "OperationOutcome", "issue": [problem_issue(p) for p in problems]}


def main_app() -> FastAPI:
    """Entry point for ``uvicorn --factory adapter.service.api:main_app`` (settings from the environment)."""
    return create_app()
