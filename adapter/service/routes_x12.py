"""``GET /fhir/Claim/{id}/$export-x12``: the 837P of one Claim (Content-Type application/EDI-X12).

The answer is what ``export-837`` would send for the Claim's current version (or sent last): an
original, a replacement or a void, in a fresh interchange whose bytes are kept (``export-837
--again`` reproduces it).  It does not mark the Claim exported.  A held (draft) Claim answers 409,
one the visit lacks 837P data for 422, both with an OperationOutcome saying why.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response

from adapter.errors import RuleDataError
from adapter.output.x12 import NotExportable, load_profile
from adapter.service.fhirhttp import FhirError
from adapter.service.guard import audit_of, principal_of
from adapter.service.settings import Settings
from adapter.service.store import Store
from adapter.service.x12store import NotAvailable, X12Store

EDI_X12 = "application/EDI-X12"
PATH_SUFFIX = "/$export-x12"
ACCEPTED = ("application/edi-x12", "*/*", "application/*", "application/fhir+json", "application/json")


_OUTCOME = {"application/fhir+json": {"schema": {"type": "object", "description": "OperationOutcome"}}}
OPENAPI = {
    "x-fhir-interaction": "operation",
    "x-smart-scope": "r",
    "responses": {
        "200": {"description": "the 837P interchange", "content": {EDI_X12: {"schema": {"type": "string"}}}},
        "400": {"description": "unknown clearinghouse profile", "content": _OUTCOME},
        "404": {"description": "unknown Claim", "content": _OUTCOME},
        "406": {"description": "Accept excludes application/EDI-X12", "content": _OUTCOME},
        "409": {"description": "held for review (draft), or cancelled before it was exported", "content": _OUTCOME},
        "422": {"description": "the visit lacks what an 837P needs", "content": _OUTCOME},
    },
}


def x12_router(store: Store, exports: X12Store, settings: Settings) -> APIRouter:
    router = APIRouter()

    @router.get(f"/fhir/Claim/{{claim_id}}{PATH_SUFFIX}", response_class=Response, openapi_extra=OPENAPI)
    def export_x12(claim_id: str, request: Request, profile: str | None = None) -> Response:
        _check_accept(request)
        principal = principal_of(request)  # the Claim's own read rules: scope, then tenant
        principal.require("Claim", "r")
        context = audit_of(request)
        context.interaction, context.operation = "operation", "export-x12"
        context.entities.append(f"Claim/{claim_id}"[:200])
        found = store.read("Claim", claim_id)
        if found is None or not principal.sees(found.tenant):
            raise FhirError(404, "not-found", f"Claim/{claim_id} is not known", "not-found")
        try:
            chosen = load_profile(profile, settings.mappings_dir)
        except RuleDataError as error:
            raise FhirError(400, "unknown-profile", str(error), "invalid") from error
        try:
            content = exports.claim_interchange(claim_id, chosen, datetime.now(UTC).replace(microsecond=0))
        except NotAvailable as why:
            raise FhirError(why.status, why.code, why.message, "business-rule") from why
        except NotExportable as error:
            first = error.problems[0]
            raise FhirError(422, first.code, str(error), first.issue_type, first.expression) from error
        return Response(content=content, media_type=EDI_X12)

    return router


def _check_accept(request: Request) -> None:
    accept = request.headers.get("accept", "")
    types = [part.split(";")[0].strip().lower() for part in accept.split(",") if part.strip()]
    if types and not any(t in ACCEPTED for t in types):
        raise FhirError(406, "unsupported-format", f"$export-x12 answers {EDI_X12}", "not-supported")
