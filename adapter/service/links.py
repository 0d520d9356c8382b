"""The base URL of this server's FHIR endpoint, for links, fullUrls and Location headers.

``THERACLAIM_PUBLIC_BASE_URL`` (e.g. ``https://claims.example.org/fhir``) wins; without it the
base is the address the request came to.  Trusted ``X-Forwarded-*`` headers from a configured
proxy are the security work's to add (issue 9): this function is the one place to add them.
"""

from __future__ import annotations

from fastapi import Request

from adapter.service.settings import Settings


def fhir_base(request: Request, settings: Settings) -> str:
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")
    return f"{str(request.base_url).rstrip('/')}/fhir"
