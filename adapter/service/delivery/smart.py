"""SMART Backend Services for a delivery destination: its configured token URL and client, on the
assertion, key loading and token cache the EHR source client uses too (adapter/source/auth.py).

The client signs a JWT assertion (iss = sub = client_id, aud = the token URL, a fresh jti, exp at
most five minutes ahead) with its private key (RS384 or ES384) and trades it for an access token
with ``grant_type=client_credentials``; the token is reused until shortly before it expires.
"""

from __future__ import annotations

import time

import httpx

from adapter.service.delivery.config import SmartAuth
from adapter.source.auth import KeyFileError, SigningKey, TokenCache, load_signing_key, token_request

DEFAULT_LIFETIME = 300  # seconds, when the token endpoint does not say (expires_in is recommended, not required)


class TokenRefused(Exception):
    """The token endpoint did not give a token (retried like a destination that is down)."""


def load_key(auth: SmartAuth) -> SigningKey:
    """The destination's private key (PEM, JWK or JWKS), for the algorithm it is configured with."""
    signing = load_signing_key(auth.key_file)
    if signing.algorithm != auth.algorithm:
        raise KeyFileError(f"{auth.key_file} holds a key for {signing.algorithm}, not for {auth.algorithm}")
    return signing if auth.key_id is None else SigningKey(signing.key, signing.algorithm, auth.key_id)


class TokenSource:
    """Access tokens for one destination, fetched with a signed assertion and cached."""

    def __init__(self, auth: SmartAuth, client: httpx.Client) -> None:
        self.auth = auth
        self.client = client
        self.signing = load_key(auth)
        self._cache = TokenCache()

    def token(self) -> str:
        return self._cache.get(self._fetch)

    def forget(self) -> None:
        self._cache.forget()

    def _fetch(self) -> tuple[str, int]:
        form = token_request(self.signing, self.auth.client_id, str(self.auth.token_url), self.auth.scope, time.time())
        try:
            response = self.client.post(str(self.auth.token_url), data=form, headers={"Accept": "application/json"})
        except httpx.TransportError as error:
            raise TokenRefused(f"token endpoint: no answer: {type(error).__name__}") from error
        if not response.is_success:
            raise TokenRefused(f"token endpoint: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as error:
            raise TokenRefused("token endpoint: the answer is not JSON") from error
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise TokenRefused("token endpoint: the answer has no access_token")
        lifetime = body.get("expires_in", DEFAULT_LIFETIME)
        valid = isinstance(lifetime, int | float) and not isinstance(lifetime, bool) and 0 < lifetime < 10**7
        return token, int(lifetime) if valid else DEFAULT_LIFETIME
