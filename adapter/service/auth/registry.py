"""The client registry (``THERACLAIM_CLIENTS``): who may ask for a token, with which keys and scopes.

A YAML or JSON file ``{clients: [{client_id, jwks | jwks_url, scope, organization?}]}``, validated
completely at start-up; a problem names the entry and the field.  A client with ``organization``
(the NPI of a billing Organization) is a tenant and acts only for that provider; one without is
an operator that sees every tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from adapter.service.auth.scopes import ScopeSet

SIGNING_ALGORITHMS = ("RS384", "ES384")  # SMART Backend Services: the algorithms servers SHALL support


class RegistryError(Exception):
    """The registry file is unusable; the message names the entry and field."""


class ClientEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str = Field(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")
    jwks: dict[str, Any] | None = None
    jwks_url: str | None = Field(None, pattern=r"^https?://\S+$")
    scope: str = Field(min_length=1)
    organization: str | None = Field(None, pattern=r"^\d{10}$", description="NPI of the billing Organization")

    @field_validator("jwks")
    @classmethod
    def _keys_parse(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        keys = value.get("keys")
        if not isinstance(keys, list) or not keys:
            raise ValueError("jwks needs a non-empty 'keys' list")
        for i, key in enumerate(keys):
            if not isinstance(key, dict) or not key.get("kid"):
                raise ValueError(f"keys[{i}] needs a 'kid'")
            if any(private in key for private in ("d", "p", "q", "k")):
                raise ValueError(f"keys[{i}] ({key.get('kid')}) holds private or symmetric key material")
            if key.get("kty") not in ("RSA", "EC"):
                raise ValueError(f"keys[{i}] ({key.get('kid')}): kty must be RSA or EC")
        try:
            KeySet.import_key_set(cast(Any, value))
        except (JoseError, ValueError, TypeError) as error:
            raise ValueError(f"jwks does not parse: {error}") from error
        return value

    @field_validator("scope")
    @classmethod
    def _scope_parses(cls, value: str) -> str:
        unknown = [word for word in value.split() if not ScopeSet.parse(word).scopes]
        if unknown:
            raise ValueError(f"not SMART system scopes: {unknown}")
        return value

    @model_validator(mode="after")
    def _one_key_source(self) -> ClientEntry:
        if (self.jwks is None) == (self.jwks_url is None):
            raise ValueError("give exactly one of jwks and jwks_url")
        return self

    @property
    def allowed(self) -> ScopeSet:
        return ScopeSet.parse(self.scope)


class RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    clients: list[ClientEntry] = Field(min_length=1)


@dataclass(frozen=True)
class ClientRegistry:
    clients: dict[str, ClientEntry]
    source: str

    def get(self, client_id: str) -> ClientEntry | None:
        return self.clients.get(client_id)


def load_registry(path: Path | str) -> ClientRegistry:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))  # YAML is a superset of JSON
    except OSError as error:
        raise RegistryError(f"{path}: cannot read the client registry: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise RegistryError(f"{path}: not YAML or JSON: {error}") from error
    try:
        parsed = RegistryFile.model_validate(raw)
    except ValidationError as error:
        raise RegistryError(f"{path}: {_describe(error, raw)}") from error
    clients: dict[str, ClientEntry] = {}
    for i, entry in enumerate(parsed.clients):
        if entry.client_id in clients:
            raise RegistryError(f"{path}: clients[{i}] ({entry.client_id}).client_id: registered twice")
        clients[entry.client_id] = entry
    return ClientRegistry(clients, str(path))


def _describe(error: ValidationError, raw: Any) -> str:
    """Each problem as ``clients[2] (riverside-ehr).scope: message``."""
    problems = []
    for item in error.errors():
        location = list(item["loc"])
        where = ""
        if len(location) >= 2 and location[0] == "clients" and isinstance(location[1], int):
            index = location[1]
            name = _client_id_at(raw, index)
            where = f"clients[{index}]" + (f" ({name})" if name else "")
            rest = ".".join(str(p) for p in location[2:])
            where += f".{rest}" if rest else ""
        else:
            where = ".".join(str(p) for p in location) or "(file)"
        problems.append(f"{where}: {item['msg']}")
    return "; ".join(problems)


def _client_id_at(raw: Any, index: int) -> str | None:
    try:
        value = raw["clients"][index]["client_id"]
    except (KeyError, IndexError, TypeError):
        return None
    return value if isinstance(value, str) else None


def describe_registry(registry: ClientRegistry) -> list[str]:
    """One line per client for ``theraclaim clients check``: tenant or cross-tenant operator."""
    lines = []
    for entry in registry.clients.values():
        keys = "jwks_url " + str(entry.jwks_url) if entry.jwks_url else f"{len((entry.jwks or {})['keys'])} key(s)"
        reach = (
            f"tenant: acts only for billing Organization NPI {entry.organization}"
            if entry.organization
            else "cross-tenant operator: sees every organization's data"
        )
        lines.append(f"{entry.client_id}: {keys}; scope {entry.allowed}; {reach}")
    return lines
