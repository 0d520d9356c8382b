"""Access tokens: short-lived JWTs (HS256) signed with a key kept in the database.

Every worker and replica reads the same key row, so a token issued by one is honoured by all,
without a database read per request once the key is loaded.  The token is bound to the client,
its organization and the granted scope.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from adapter.service.store import Store, auth_signing_key

KEY_ID = "access-token-key-1"
ALGORITHM = "HS256"
ISSUER = "theraclaim"
VERIFIED_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class AccessClaims:
    client_id: str
    scope: str
    organization: str | None
    expires: int


class InvalidToken(Exception):
    """The bearer token is malformed, forged, expired or not ours; the message is safe to show."""


class TokenAuthority:
    def __init__(self, store: Store, lifetime: int) -> None:
        self.lifetime = lifetime
        self._store = store
        self._loaded: OctKey | None = None  # read on first use: the server may start before its database
        self._verified: dict[str, AccessClaims] = {}

    @property
    def key_loaded(self) -> bool:
        """Whether ``verify`` can run without the database (the key is read on first use)."""
        return self._loaded is not None

    @property
    def _key(self) -> OctKey:
        if self._loaded is None:
            self._loaded = OctKey.import_key(_shared_secret(self._store))
        return self._loaded

    def issue(self, client_id: str, scope: str, organization: str | None) -> tuple[str, int]:
        now = int(datetime.now(UTC).timestamp())
        claims = {
            "iss": ISSUER,
            "sub": client_id,
            "scope": scope,
            "iat": now,
            "exp": now + self.lifetime,
            "jti": str(uuid.uuid4()),
        }
        if organization:
            claims["org"] = organization
        token = jwt.encode({"alg": ALGORITHM, "kid": KEY_ID}, claims, self._key, algorithms=[ALGORITHM])
        return token, self.lifetime

    def verify(self, token: str) -> AccessClaims:
        """The token's claims; a token verified before is looked up, not verified again, until it expires."""
        known = self._verified.get(token)
        if known is not None and known.expires > datetime.now(UTC).timestamp():
            return known
        claims = self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            self._verified.clear()  # bounded: a flood of tokens costs a re-verification, never memory
        self._verified[token] = claims
        return claims

    def _verify(self, token: str) -> AccessClaims:
        try:
            decoded = jwt.decode(token, self._key, algorithms=[ALGORITHM])
        except (JoseError, ValueError, TypeError) as error:
            raise InvalidToken("the access token is malformed or its signature is wrong") from error
        claims = decoded.claims
        if decoded.header.get("kid") != KEY_ID or claims.get("iss") != ISSUER:
            raise InvalidToken("the access token was not issued by this server")
        expires = claims.get("exp")
        if not isinstance(expires, int) or expires <= datetime.now(UTC).timestamp():
            raise InvalidToken("the access token has expired")
        client_id, scope, organization = claims.get("sub"), claims.get("scope"), claims.get("org")
        if not isinstance(client_id, str) or not isinstance(scope, str):
            raise InvalidToken("the access token lacks its client or scope")
        return AccessClaims(client_id, scope, organization if isinstance(organization, str) else None, expires)


def _shared_secret(store: Store) -> str:
    """The database's token key, created by the first process that needs it (a race is harmless)."""
    query = select(auth_signing_key.c.secret).where(auth_signing_key.c.id == KEY_ID)
    with store.engine.connect() as connection:
        secret = connection.execute(query).scalar_one_or_none()
    if secret is not None:
        return str(secret)
    try:
        with store.transaction() as connection:
            connection.execute(
                insert(auth_signing_key).values(
                    id=KEY_ID, secret=secrets.token_urlsafe(48), created_at=datetime.now(UTC)
                )
            )
    except IntegrityError:  # another worker created it first: use theirs
        pass
    with store.engine.connect() as connection:
        return str(connection.execute(query).scalar_one())
