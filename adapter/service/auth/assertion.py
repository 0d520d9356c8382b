"""The client assertion of SMART Backend Services (RFC 7523 private_key_jwt), checked to the letter.

Refused: an algorithm outside RS384 / ES384 (so ``none`` and every HS* — including an HS256 token
"signed" with the public key — never reach a verifier), an unknown ``kid``, a bad signature,
``iss`` or ``sub`` other than a registered client_id, ``aud`` other than our token endpoint, no
``exp``, an ``exp`` in the past or more than five minutes ahead, no ``jti``, and a ``jti`` seen
before (kept in the database until it expires, so the replay is refused by every worker).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError

from adapter.service.auth.keys import ClientKeys, KeyUnavailable
from adapter.service.auth.registry import SIGNING_ALGORITHMS, ClientEntry, ClientRegistry
from adapter.service.store import Store, auth_jti

MAX_LIFETIME = timedelta(minutes=5)
CLOCK_SKEW = timedelta(seconds=30)
MAX_ASSERTION_BYTES = 16 * 1024


class AssertionRefused(Exception):
    """Why the assertion is refused (safe to show: it never quotes the token)."""


@dataclass(frozen=True, slots=True)
class Verified:
    client: ClientEntry


class AssertionVerifier:
    def __init__(self, registry: ClientRegistry, store: Store) -> None:
        self.registry = registry
        self.store = store
        self.keys = ClientKeys()

    def verify(self, assertion: str, token_url: str) -> Verified:
        if len(assertion) > MAX_ASSERTION_BYTES:
            raise AssertionRefused("client_assertion is too long")
        header, claims = _unverified(assertion)
        alg = header.get("alg")
        if alg not in SIGNING_ALGORITHMS:
            raise AssertionRefused(f"client_assertion alg must be one of {', '.join(SIGNING_ALGORITHMS)}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AssertionRefused("client_assertion header needs a kid")
        issuer = claims.get("iss")
        client = self.registry.get(issuer) if isinstance(issuer, str) else None
        if client is None:
            raise AssertionRefused("client_assertion iss is not a registered client")
        try:
            keys = self.keys.key_set(client, kid)
        except KeyUnavailable as error:
            raise AssertionRefused(str(error)) from error
        if not any(key.kid == kid for key in keys.keys):
            raise AssertionRefused(f"no key {kid!r} is registered for client {client.client_id}")
        try:
            verified = jwt.decode(assertion, keys, algorithms=[alg])
        except (JoseError, ValueError, TypeError) as error:
            raise AssertionRefused("client_assertion signature does not verify") from error
        self._check_claims(verified.claims, client, token_url)
        return Verified(client)

    def _check_claims(self, claims: dict[str, Any], client: ClientEntry, token_url: str) -> None:
        if claims.get("sub") != client.client_id:
            raise AssertionRefused("client_assertion sub must equal iss (the client_id)")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if token_url not in audiences:
            raise AssertionRefused(f"client_assertion aud must be the token endpoint {token_url}")
        expires = claims.get("exp")
        if not isinstance(expires, int | float) or isinstance(expires, bool):
            raise AssertionRefused("client_assertion needs a numeric exp")
        now = datetime.now(UTC)
        try:
            expiry = datetime.fromtimestamp(expires, UTC)
        except (OverflowError, OSError, ValueError) as error:
            raise AssertionRefused("client_assertion exp is out of range") from error
        if expiry <= now - CLOCK_SKEW:
            raise AssertionRefused("client_assertion has expired")
        if expiry > now + MAX_LIFETIME + CLOCK_SKEW:
            raise AssertionRefused("client_assertion exp is more than 5 minutes ahead")
        not_before = claims.get("nbf")
        if isinstance(not_before, int | float) and not_before > (now + CLOCK_SKEW).timestamp():
            raise AssertionRefused("client_assertion is not valid yet (nbf)")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 0 < len(jti) <= 255:
            raise AssertionRefused("client_assertion needs a jti (at most 255 characters)")
        self._remember(client.client_id, jti, expiry + CLOCK_SKEW)

    def _remember(self, client_id: str, jti: str, until: datetime) -> None:
        """Record the jti once; the primary key makes a second use fail on any worker."""
        try:
            with self.store.transaction() as connection:
                connection.execute(delete(auth_jti).where(auth_jti.c.expires_at < datetime.now(UTC)))
                connection.execute(insert(auth_jti).values(client_id=client_id, jti=jti, expires_at=until))
        except IntegrityError as error:
            raise AssertionRefused("client_assertion jti was already used") from error


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims before verification: only to pick the client and key, never trusted."""
    parts = token.split(".")
    if len(parts) != 3:
        raise AssertionRefused("client_assertion is not a compact JWS")
    try:
        header, claims = (json.loads(_b64(part)) for part in parts[:2])
    except ValueError as error:
        raise AssertionRefused("client_assertion is not a compact JWS") from error
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AssertionRefused("client_assertion is not a JWT")
    return header, claims


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
