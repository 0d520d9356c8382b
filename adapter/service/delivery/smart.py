"""SMART Backend Services client authentication (SMART App Launch 2.x, "Backend Services").

The client signs a JWT assertion (iss = sub = client_id, aud = the token URL, a fresh jti, exp at
most five minutes ahead) with its private key (RS384 or ES384) and trades it for an access token
with ``grant_type=client_credentials``; the token is reused until shortly before it expires.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import httpx
import orjson
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey, import_key

from adapter.service.delivery.config import SmartAuth

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 300  # seconds; the specification's upper bound
EARLY = 30  # seconds before expiry a token is renewed


class TokenRefused(Exception):
    """The token endpoint did not give a token (retried like a destination that is down)."""


def load_key(auth: SmartAuth) -> RSAKey | ECKey:
    """The private key of a JWK (JSON) or PEM file."""
    data = auth.key_file.read_bytes()
    parsed: Any = orjson.loads(data) if data.lstrip().startswith(b"{") else data
    key = import_key(parsed, "RSA" if auth.algorithm == "RS384" else "EC")
    if not isinstance(key, RSAKey | ECKey) or not key.is_private:
        raise ValueError(f"{auth.key_file} is not a private {auth.algorithm} key")
    return key


class TokenSource:
    """Access tokens for one destination, fetched with a signed assertion and cached."""

    def __init__(self, auth: SmartAuth, client: httpx.Client) -> None:
        self.auth = auth
        self.client = client
        self.key = load_key(auth)
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires = 0.0

    def assertion(self) -> str:
        now = int(time.time())
        header = {"alg": self.auth.algorithm, "typ": "JWT"}
        kid = self.auth.key_id or self.key.kid
        if kid:
            header["kid"] = kid
        claims = {
            "iss": self.auth.client_id,
            "sub": self.auth.client_id,
            "aud": str(self.auth.token_url),
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        }
        return jwt.encode(header, claims, self.key, algorithms=[self.auth.algorithm])

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires:
                self._token, lifetime = self._fetch()
                self._expires = time.monotonic() + max(lifetime - EARLY, 1)
            return self._token

    def forget(self) -> None:
        with self._lock:
            self._token = None

    def _fetch(self) -> tuple[str, float]:
        form = {
            "grant_type": "client_credentials",
            "scope": self.auth.scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": self.assertion(),
        }
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
        lifetime = body.get("expires_in", 300)
        return token, float(lifetime) if isinstance(lifetime, int | float) else 300.0
