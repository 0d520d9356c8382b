"""``/docs``: the API page (Swagger UI) from assets packaged with fastapi-offline, never a CDN
(hospital networks are often offline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSET_URL = "/docs/assets"


FHIR_CONTENT = {"application/fhir+json": {"schema": {"type": "object"}}}
ERRORS = {
    "400": "OperationOutcome: invalid request (a search parameter, modifier or value it names)",
    "401": 'OperationOutcome: no valid access token (WWW-Authenticate: Bearer error="invalid_token")',
    "403": "OperationOutcome: the access token lacks the scope it names, or another organization's visit",
    "404": "OperationOutcome: unknown resource type, id or version",
    "406": "OperationOutcome: only FHIR JSON is served (no FHIR XML)",
    "413": "OperationOutcome: the body is over THERACLAIM_MAX_BYTES",
    "412": "OperationOutcome: If-Match / If-None-Exist precondition failed",
    "415": "OperationOutcome: the body is not FHIR JSON",
    "422": "OperationOutcome: invalid input or nothing billable",
    "503": "OperationOutcome: the database does not answer, or the request ran past its time budget (Retry-After)",
}


def fhir_responses(*codes: str, success: str = "FHIR resource or Bundle") -> dict[str, Any]:
    """OpenAPI responses of a FHIR route: the success and the listed errors, all FHIR JSON."""
    found = {"200": {"description": success, "content": FHIR_CONTENT}}
    for code in codes:
        found[code] = {"description": ERRORS.get(code, "OperationOutcome"), "content": FHIR_CONTENT}
    return found


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document without its generic 422 (this server answers 400 with an OperationOutcome)."""
    if app.openapi_schema is None:
        document = get_openapi(title=app.title, version=app.version, routes=app.routes)
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                generic = operation.get("responses", {}).get("422", {})
                if "HTTPValidationError" in str(generic):
                    del operation["responses"]["422"]
        schemas = document.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        app.openapi_schema = document
    return app.openapi_schema


def install_docs(app: FastAPI) -> None:
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.mount(ASSET_URL, StaticFiles(directory=ASSETS), name="docs-assets")
    router = APIRouter()

    @router.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} FHIR API",
            swagger_js_url=f"{ASSET_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSET_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSET_URL}/favicon.png",
        )

    app.include_router(router)
