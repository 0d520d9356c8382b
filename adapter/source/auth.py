"""SMART Backend Services client authentication (SMART App Launch 2.x, "Backend Services").

The token endpoint comes from ``{base}/.well-known/smart-configuration``; the client proves its
identity with a JWT client assertion signed by its private key (RS384 for an RSA key, ES384 for a
P-384 EC key), ``iss`` = ``sub`` = client id, ``aud`` = token endpoint, ``exp`` at most five
minutes ahead, a fresh ``jti``.  The access token is cached until shortly before it expires.
The one client of the kind: the EHR source (adapter/source/client.py) and the delivery destinations
(adapter/service/delivery/smart.py) both use it.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey, import_key

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 300  # seconds; the SMART spec allows no more than five minutes
EXPIRY_MARGIN = 60  # seconds before expiry when a cached token is replaced


class KeyFileError(Exception):
    """The private key file cannot be used (the message never holds key material)."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    key: RSAKey | ECKey
    algorithm: str
    kid: str


def load_signing_key(path: Path) -> SigningKey:
    """A PEM private key, a JWK, or a JWKS (its first private key) from a file."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise KeyFileError(f"cannot read the private key file: {error.strerror}") from None
    try:
        data: Any = json.loads(raw) if raw.lstrip().startswith(b"{") else raw
        if isinstance(data, dict) and "keys" in data:
            data = next(k for k in data["keys"] if isinstance(k, dict) and "d" in k)
        key = import_key(data) if isinstance(data, dict) else _import_pem(data)
    except (StopIteration, ValueError, TypeError, JoseError):
        raise KeyFileError("the private key file holds no usable RSA or EC private key (PEM, JWK or JWKS)") from None
    if not key.is_private:
        raise KeyFileError("the key file holds a public key; a private key is needed to sign")
    if isinstance(key, RSAKey):
        algorithm = "RS384"
    elif isinstance(key, ECKey) and key.curve_name == "P-384":
        algorithm = "ES384"
    else:
        raise KeyFileError("SMART Backend Services needs an RSA key (RS384) or a P-384 EC key (ES384)")
    kid = key.kid or key.thumbprint()
    return SigningKey(key, algorithm, str(kid))


def _import_pem(data: bytes) -> RSAKey | ECKey:
    for key_type in (RSAKey, ECKey):
        try:
            return key_type.import_key(data)
        except (ValueError, TypeError, JoseError):
            continue
    raise ValueError("not an RSA or EC key")


def client_assertion(signing: SigningKey, client_id: str, token_endpoint: str, now: float) -> str:
    header = {"alg": signing.algorithm, "kid": signing.kid, "typ": "JWT"}
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_endpoint,
        "exp": int(now) + ASSERTION_LIFETIME,
        "iat": int(now),
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(header, claims, signing.key, algorithms=[signing.algorithm])


def token_request(signing: SigningKey, client_id: str, token_endpoint: str, scope: str, now: float) -> dict[str, str]:
    """The form of a client_credentials grant authenticated by a fresh signed assertion."""
    return {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": client_assertion(signing, client_id, token_endpoint, now),
    }


@dataclass
class CachedToken:
    value: str
    expires_at: float


class TokenCache:
    """Holds the access token; ``fetch`` (given a fresh assertion) asks the token endpoint for one."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._token: CachedToken | None = None
        self._lock = threading.Lock()

    def get(self, fetch: Callable[[], tuple[str, int]]) -> str:
        with self._lock:
            now = self._clock()
            if self._token is None or now >= self._token.expires_at:
                value, expires_in = fetch()
                margin = min(EXPIRY_MARGIN, expires_in // 2)
                self._token = CachedToken(value, now + max(expires_in - margin, 0))
            return self._token.value

    def forget(self) -> None:
        with self._lock:
            self._token = None
