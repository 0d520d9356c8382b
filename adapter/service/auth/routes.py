"""The SMART Backend Services endpoints: discovery and the token endpoint (RFC 6749 §4.4, RFC 7523).

Errors are RFC 6749 §5.2 JSON (``invalid_request``, ``invalid_client``, ``invalid_scope``,
``unsupported_grant_type``), never a stack trace; every token request, granted or refused, leaves
an AuditEvent (DICOM 110114 User Authentication).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from adapter.service.auth.assertion import AssertionRefused
from adapter.service.auth.policy import AuthPolicy, ScopeRefused
from adapter.service.auth.registry import SIGNING_ALGORITHMS
from adapter.service.auth.scopes import ACTIONS

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_FORM_BYTES = 32 * 1024
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def token_url(base: str) -> str:
    return f"{base}/auth/token"


def smart_configuration(base: str, types: tuple[str, ...]) -> dict[str, Any]:
    """``.well-known/smart-configuration`` for a backend-services-only server (SMART App Launch 2.x)."""
    return {
        "issuer": base,
        "token_endpoint": token_url(base),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": list(SIGNING_ALGORITHMS),
        "scopes_supported": ["system/*.cruds", "system/*.rs", "system/*.read", "system/*.write", "system/*.*"]
        + [f"system/{t}.{ACTIONS}" for t in types],
        "capabilities": ["client-confidential-asymmetric", "permission-v1", "permission-v2"],
    }


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def auth_router(policy: AuthPolicy, public_base: Any, types: tuple[str, ...]) -> APIRouter:
    """``public_base(request)`` is the server's external base URL (no trailing slash)."""
    router = APIRouter()

    @router.get("/fhir/.well-known/smart-configuration", tags=["authorization"])
    @router.get("/.well-known/smart-configuration", include_in_schema=False)
    def discovery(request: Request) -> JSONResponse:
        return JSONResponse(smart_configuration(public_base(request), types))

    @router.post(
        "/auth/token",
        tags=["authorization"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}},
            }
        },
    )
    async def token(request: Request) -> Response:
        context = request.state.audit
        context.login = True
        try:
            form = await _form(request)
            context.client_id = _client_hint(form)
            if policy.verifier is None:
                raise OAuthError("invalid_client", "no clients are registered on this server", 401)
            issued = await run_in_threadpool(_issue, policy, form, token_url(public_base(request)))
        except OAuthError as refused:
            await run_in_threadpool(policy.audit.record_after, context, refused.status, refused.error)
            body = {"error": refused.error, "error_description": refused.description}
            return JSONResponse(body, refused.status, headers=NO_STORE)
        access_token, lifetime, scope, client_id = issued
        context.client_id = client_id
        await run_in_threadpool(policy.audit.record_after, context, 200, f"token issued: {scope}")
        granted = {"access_token": access_token, "token_type": "bearer", "expires_in": lifetime, "scope": scope}
        return JSONResponse(granted, 200, headers=NO_STORE)

    return router


async def _form(request: Request) -> dict[str, str]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "send the token request as application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise OAuthError("invalid_request", "the token request is too large")
    try:
        parsed = parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError) as error:
        raise OAuthError("invalid_request", "the token request is not a URL-encoded form") from error
    repeated = sorted(k for k, v in parsed.items() if len(v) > 1)
    if repeated:  # RFC 6749 §3.2: request parameters MUST NOT be included more than once
        raise OAuthError("invalid_request", f"parameters repeated: {', '.join(repeated)}")
    return {k: v[0] for k, v in parsed.items()}


def _client_hint(form: dict[str, str]) -> str | None:
    """For the audit record only: the client_id the caller claims (verified or not)."""
    claimed = form.get("client_id")
    return claimed[:255] if claimed else None


def _issue(policy: AuthPolicy, form: dict[str, str], url: str) -> tuple[str, int, str, str]:
    if form.get("grant_type") != "client_credentials":
        raise OAuthError("unsupported_grant_type", "grant_type must be client_credentials")
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise OAuthError("invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}")
    assertion, scope = form.get("client_assertion"), form.get("scope")
    if not assertion:
        raise OAuthError("invalid_request", "client_assertion is missing")
    if not scope:
        raise OAuthError("invalid_scope", "scope is missing (e.g. system/Claim.rs)")
    try:
        issued = policy.issue(assertion, scope, url)
    except AssertionRefused as refused:
        raise OAuthError("invalid_client", str(refused), 401) from refused
    except ScopeRefused as refused:
        raise OAuthError("invalid_scope", str(refused)) from refused
    claimed = form.get("client_id")
    if claimed is not None and claimed != issued[3]:  # RFC 7523 §3.1: it must name the assertion's client
        raise OAuthError("invalid_client", "client_id does not match the client_assertion's iss", 401)
    return issued
