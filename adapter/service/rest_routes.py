"""The FHIR REST interactions on stored resources: search, read, vread, history (instance and type).

Each route names its FHIR interaction (``interaction`` in its OpenAPI extra, and the ``scope``
letter SMART v2 gives it: r read, s search); the resource type is the path's ``resource_type``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from adapter.intake.slim import FHIR_ID
from adapter.service.capability import INPUT_TYPES, OUTPUT_TYPES
from adapter.service.docs_routes import fhir_responses
from adapter.service.fhirhttp import FhirError, fhir_response, version_headers
from adapter.service.guard import audit_of, principal_of
from adapter.service.links import fhir_base
from adapter.service.numbers import wire_int
from adapter.service.search import collection_of, run_search
from adapter.service.search_params import date_range, params_of
from adapter.service.settings import Settings
from adapter.service.store import Store, Stored

READABLE = frozenset(OUTPUT_TYPES + INPUT_TYPES)
NOT_MODIFIED = {"304": {"description": "Not Modified (If-None-Match / If-Modified-Since)"}}
FORM = "application/x-www-form-urlencoded"


def interaction(code: str, scope: str, *, form: bool = False) -> dict[str, Any]:
    """The OpenAPI extra of a route: its FHIR interaction, SMART scope letter and responses."""
    extra: dict[str, Any] = {
        "x-fhir-interaction": code,
        "x-smart-scope": scope,
        "responses": fhir_responses("400", "401", "403", "404", "406", "503")
        | (NOT_MODIFIED if code.endswith("read") else {}),
    }
    if code.startswith("search"):
        extra["parameters"] = _search_parameters()
    if form:
        extra["requestBody"] = {"content": {FORM: {"schema": {"type": "object", "additionalProperties": True}}}}
    return extra


def _search_parameters() -> list[dict[str, Any]]:
    names: dict[str, str] = {}
    for rtype in sorted(READABLE):
        for param in params_of(rtype).values():
            names.setdefault(param.name, "")
            kinds = names[param.name]
            names[param.name] = f"{kinds}, {rtype}" if kinds else rtype
    documented = [
        {
            "name": name,
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": f"FHIR search parameter of {types}",
        }
        for name, types in names.items()
    ]
    for name, text in (
        ("_count", "page size (at most 1000; 0: the total only)"),
        ("_sort", "_id, _lastUpdated or a date parameter; - for descending"),
        ("_include", "Type:parameter[:target] of the searched type"),
        ("_revinclude", "Type:parameter[:target] pointing at the searched type"),
        ("_summary", "true, false, count or data"),
        ("_elements", "comma-separated element names"),
        ("_total", "none, estimate or accurate"),
        ("_cursor", "opaque page cursor from a next link"),
    ):
        documented.append(
            {"name": name, "in": "query", "required": False, "schema": {"type": "string"}, "description": text}
        )
    return documented


def create_rest_router(store: Store, settings: Settings) -> APIRouter:
    router = APIRouter()

    def search_answer(resource_type: str, request: Request, params: list[tuple[str, str]]) -> Response:
        known_type(resource_type)
        principal = principal_of(request)
        principal.require(resource_type, "s")
        context = audit_of(request)
        context.interaction, context.query = "search-type", urlencode(params)
        lenient = "handling=lenient" in request.headers.get("prefer", "").replace(" ", "")
        bundle = run_search(
            store,
            resource_type,
            params,
            base=fhir_base(request, settings),
            lenient=lenient,
            page_size=settings.page_size,
            tenant=principal.tenant,
        )
        context.entities += [
            f"{e['resource']['resourceType']}/{e['resource']['id']}"
            for e in bundle.get("entry", [])
            if "id" in e["resource"]
        ]
        return fhir_response(bundle)

    @router.get("/fhir/{resource_type}", openapi_extra=interaction("search-type", "s"))
    async def search(resource_type: str, request: Request) -> Response:
        params = list(request.query_params.multi_items())
        return await run_in_threadpool(search_answer, resource_type, request, params)

    @router.post("/fhir/{resource_type}/_search", openapi_extra=interaction("search-type", "s", form=True))
    async def search_by_post(resource_type: str, request: Request) -> Response:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != FORM:
            raise FhirError(415, "unsupported-media-type", f"POST _search takes {FORM}", "not-supported")
        body = (await request.body()).decode("utf-8", errors="replace")
        params = list(request.query_params.multi_items()) + parse_qsl(body, keep_blank_values=True)
        return await run_in_threadpool(search_answer, resource_type, request, params)

    @router.get("/fhir/{resource_type}/_history", openapi_extra=interaction("history-type", "r"))
    def type_history(resource_type: str, request: Request) -> Response:
        known_type(resource_type)
        principal = principal_of(request)
        principal.require(resource_type, "r")
        context = audit_of(request)
        context.interaction, context.query = "history-type", str(request.url.query)
        since, limit = history_params(request)
        versions = store.history(resource_type, None, since, limit, principal.tenant)
        return fhir_response(collection_of(versions, fhir_base(request, settings), bundle_type="history"))

    @router.get("/fhir/{resource_type}/{resource_id}", openapi_extra=interaction("read", "r"))
    def read(resource_type: str, resource_id: str, request: Request) -> Response:
        stored = current(request, resource_type, resource_id, "read")
        return conditional(request, stored) or fhir_response(
            stored.resource, 200, version_headers(stored.version_id, stored.last_updated)
        )

    @router.get("/fhir/{resource_type}/{resource_id}/_history", openapi_extra=interaction("history-instance", "r"))
    def history(resource_type: str, resource_id: str, request: Request) -> Response:
        current(request, resource_type, resource_id, "history-instance")
        since, limit = history_params(request)
        versions = store.history(resource_type, resource_id, since, limit)
        return fhir_response(collection_of(versions, fhir_base(request, settings), bundle_type="history"))

    @router.get("/fhir/{resource_type}/{resource_id}/_history/{version_id}", openapi_extra=interaction("vread", "r"))
    def vread(resource_type: str, resource_id: str, version_id: str, request: Request) -> Response:
        current(request, resource_type, resource_id, "vread")
        number = wire_int(version_id)
        stored = None if number is None else store.read(resource_type, resource_id, number)
        if stored is None:
            missing = f"{resource_type}/{resource_id} has no version {version_id[:24]!r}"
            raise FhirError(404, "not-found", missing, "not-found")
        return conditional(request, stored) or fhir_response(
            stored.resource, 200, version_headers(stored.version_id, stored.last_updated)
        )

    def current(request: Request, resource_type: str, resource_id: str, interaction: str) -> Stored:
        """The current version, if the caller may read it: another tenant's resource is not found."""
        known_type(resource_type)
        principal = principal_of(request)
        principal.require(resource_type, "r")
        context = audit_of(request)
        context.interaction = interaction
        context.entities.append(f"{resource_type}/{resource_id}"[:200])
        stored = store.read(resource_type, resource_id) if FHIR_ID.match(resource_id) else None
        if stored is None or not principal.sees(stored.tenant):
            raise FhirError(404, "not-found", f"{resource_type}/{resource_id} is not known", "not-found")
        return stored

    return router


def known_type(resource_type: str) -> None:
    if resource_type not in READABLE:
        raise FhirError(404, "unknown-type", f"this server does not store {resource_type} resources", "not-supported")


def history_params(request: Request) -> tuple[datetime | None, int | None]:
    """``_since`` (an instant) and ``_count`` of a history request; anything else is refused."""
    since = limit = None
    for name, value in request.query_params.multi_items():
        if name == "_since":
            bounds = date_range(value)
            if bounds is None or "T" not in value:
                raise FhirError(
                    400, "invalid-history", f"_since must be an instant, got {value[:40]!r}", "invalid", name
                )
            since = bounds[0].replace(tzinfo=UTC)
        elif name == "_count":
            limit = wire_int(value)
            if limit is None:
                raise FhirError(400, "invalid-history", "_count must be a non-negative integer", "invalid", name)
            limit = min(limit, 1000)
        elif name != "_format":
            raise FhirError(
                400, "invalid-history", f"history does not support {name[:40]!r}", "not-supported", name[:40]
            )
    return since, limit


def conditional(request: Request, stored: Stored) -> Response | None:
    """304 Not Modified for a matching ``If-None-Match`` or a not-older ``If-Modified-Since``."""
    headers = version_headers(stored.version_id, stored.last_updated)
    match = request.headers.get("if-none-match")
    if match is not None:
        tags = {t.strip().removeprefix("W/") for t in match.split(",")}
        if "*" in tags or f'"{stored.version_id}"' in tags:
            return Response(status_code=304, headers=headers)
        return None
    since = request.headers.get("if-modified-since")
    if since is not None:
        try:
            when = parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return None  # RFC 9110 §13.1.3: an invalid date is ignored
        if when.tzinfo is not None and stored.last_updated.replace(microsecond=0) <= when:
            return Response(status_code=304, headers=headers)
    return None
