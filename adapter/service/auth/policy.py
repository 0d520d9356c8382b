"""The one auth policy every door calls: who is calling (a Principal), may they, for which tenant.

- ``AuthPolicy.authenticate`` turns an ``Authorization: Bearer`` header into a Principal, or
  refuses with 401.  Without a client registry authentication is disabled (protected loopback
  mode, see ``service/protection.py``) and every caller is the local operator.
- ``Principal.require`` checks a SMART scope (403 naming the scope it lacks).
- ``Principal.sees`` / ``Principal.may_write_for`` are the tenant rules: a client registered with
  an ``organization`` reads and writes only resources of that billing Organization's NPI; another
  tenant's resource is "not found" to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from adapter.service.auth.assertion import AssertionRefused, AssertionVerifier
from adapter.service.auth.audit import AuditRecorder
from adapter.service.auth.registry import ClientRegistry, load_registry
from adapter.service.auth.scopes import ACTION_NAMES, ScopeSet, scope_needed
from adapter.service.auth.tokens import InvalidToken, TokenAuthority
from adapter.service.fhirhttp import FhirError
from adapter.service.store import Store

OPERATOR_SCOPES = ScopeSet.parse("system/*.cruds")


class Unauthenticated(FhirError):
    """401 with ``WWW-Authenticate: Bearer error="invalid_token"`` (RFC 6750 §3)."""

    def __init__(self, message: str, error: str = "invalid_token") -> None:
        challenge = f'Bearer realm="theraclaim", error="{error}", error_description="{message}"'
        super().__init__(401, "unauthenticated", message, "login", headers={"WWW-Authenticate": challenge})


@dataclass(frozen=True, slots=True)
class Principal:
    client_id: str | None  # None: authentication is disabled (the local operator)
    scopes: ScopeSet
    organization: str | None  # the tenant's NPI; None for an operator
    address: str | None = None

    def require(self, resource_type: str, action: str) -> None:
        """403 unless a granted scope allows ``action`` (one of c r u d s) on ``resource_type``."""
        if not self.scopes.allows(resource_type, action):
            needed = scope_needed(resource_type, action)
            raise FhirError(
                403,
                "insufficient-scope",
                f"{ACTION_NAMES[action]} of {resource_type} needs the scope {needed} "
                f"(or system/{resource_type}.{_v1(action)}); this token has: {self.scopes or 'no scope'}",
                "forbidden",
                headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{needed}"'},
            )

    def sees(self, tenant: str | None) -> bool:
        """A tenant client sees its own organization's resources only; an operator sees all."""
        return self.organization is None or tenant == self.organization

    def may_write_for(self, billing_npi: str | None) -> bool:
        return self.organization is None or billing_npi == self.organization

    @property
    def tenant(self) -> str | None:
        return self.organization


def _v1(action: str) -> str:
    return "read" if action in "rs" else "write"


class AuthPolicy:
    def __init__(self, registry: ClientRegistry | None, store: Store, token_lifetime: int) -> None:
        self.registry = registry
        self.verifier = AssertionVerifier(registry, store) if registry else None
        self.tokens = TokenAuthority(store, token_lifetime)
        self.audit = AuditRecorder(store)

    @classmethod
    def from_settings(cls, clients: Path | None, store: Store, token_lifetime: int) -> AuthPolicy:
        return cls(load_registry(clients) if clients else None, store, token_lifetime)

    @property
    def enabled(self) -> bool:
        return self.registry is not None

    @property
    def authenticates_in_memory(self) -> bool:
        """``authenticate`` reads no database (no registry, or the token key loaded): a few
        microseconds, not worth a worker thread's round trip."""
        return self.registry is None or self.tokens.key_loaded

    def authenticate(self, authorization: str | None, address: str | None) -> Principal:
        if self.registry is None:
            return Principal(None, OPERATOR_SCOPES, None, address)
        if not authorization:
            raise Unauthenticated("this endpoint needs an access token (Authorization: Bearer ...)")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header must be 'Bearer <access token>'")
        try:
            claims = self.tokens.verify(token.strip())
        except InvalidToken as error:
            raise Unauthenticated(str(error)) from error
        client = self.registry.get(claims.client_id)
        if client is None or client.organization != claims.organization:
            raise Unauthenticated("the access token's client is no longer registered")
        # the granted scope can only narrow if the registry narrowed since the token was issued
        granted = client.allowed.grant(ScopeSet.parse(claims.scope))
        return Principal(client.client_id, granted, client.organization, address)

    def issue(self, assertion: str, requested_scope: str, token_url: str) -> tuple[str, int, str, str]:
        """Verify a client assertion and mint a token: (token, lifetime, granted scope, client_id)."""
        assert self.verifier is not None and self.registry is not None
        verified = self.verifier.verify(assertion, token_url)
        client = verified.client
        granted = client.allowed.grant(ScopeSet.parse(requested_scope))
        if not granted.scopes:
            raise ScopeRefused(client.client_id, f"none of the requested scopes is allowed for {client.client_id}")
        token, lifetime = self.tokens.issue(client.client_id, str(granted), client.organization)
        return token, lifetime, str(granted), client.client_id


class ScopeRefused(Exception):
    def __init__(self, client_id: str, message: str) -> None:
        super().__init__(message)
        self.client_id = client_id


__all__ = ["AssertionRefused", "AuthPolicy", "Principal", "ScopeRefused", "Unauthenticated"]
