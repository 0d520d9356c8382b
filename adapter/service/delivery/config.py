"""Delivery destinations as data: the YAML file ``THERACLAIM_DESTINATIONS`` names, validated at start.

```yaml
destinations:
  - id: billing
    kind: fhir
    base: https://billing.example.org/fhir
    method: put            # PUT [base]/Claim/<id>; or submit: POST [base]/Claim/$submit + Idempotency-Key
    filter: {payers: [medicare], statuses: [active], tenants: ["1234567893"]}
    auth: {kind: smart, token_url: https://billing.example.org/token, client_id: theraclaim,
           key_file: /run/secrets/billing-key.jwk, algorithm: RS384, scope: system/Claim.write}
    timeout: {connect: 5, read: 30}
    retry: {max_attempts: 10, initial_seconds: 2, max_seconds: 600}
```
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, model_validator

DESTINATION_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
Status = Literal["active", "cancelled"]
STATUSES: tuple[Status, ...] = ("active", "cancelled")


class DestinationError(Exception):
    """The destinations file is unreadable or invalid; the message names the entry and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Filter(_Model):
    """Which Claim changes go to the destination; an absent list means every value."""

    payers: tuple[str, ...] | None = Field(None, description="payer pack ids (the pack the Claim was priced with)")
    statuses: tuple[Status, ...] = Field(
        STATUSES, min_length=1, description="active: new Claims and versions; cancelled: cancellations"
    )
    tenants: tuple[str, ...] | None = Field(None, description="billing Organization NPIs (the Claims' tenants)")

    def accepts(self, status: str, payer: str | None, tenant: str | None) -> bool:
        return (
            status in self.statuses
            and (self.payers is None or payer in self.payers)
            and (self.tenants is None or tenant in self.tenants)
        )


class NoAuth(_Model):
    kind: Literal["none"] = "none"


class SmartAuth(_Model):
    """SMART Backend Services: a client_credentials grant with a signed JWT client assertion."""

    kind: Literal["smart"]
    token_url: HttpUrl
    client_id: str = Field(min_length=1)
    key_file: Path = Field(description="the private key, a JWK (JSON) or PEM file")
    key_id: str | None = Field(None, description="kid of the key in the client's JWKS (default: the JWK's kid)")
    algorithm: Literal["RS384", "ES384"] = "RS384"
    scope: str = "system/Claim.write"

    @model_validator(mode="after")
    def _key_exists(self) -> SmartAuth:
        if not self.key_file.is_file():
            raise ValueError(f"key_file {self.key_file} is not a readable file")
        return self


class Timeout(_Model):
    connect: float = Field(5, gt=0)
    read: float = Field(30, gt=0)


class Retry(_Model):
    max_attempts: int | None = Field(None, gt=0, description="default: THERACLAIM_DELIVERY_MAX_ATTEMPTS")
    initial_seconds: float = Field(1, gt=0)
    max_seconds: float = Field(600, gt=0)


class FhirDestination(_Model):
    id: str = Field(pattern=DESTINATION_ID)
    kind: Literal["fhir"]
    base: HttpUrl
    method: Literal["put", "submit"] = "put"
    filter: Filter = Filter()
    auth: Annotated[NoAuth | SmartAuth, Field(discriminator="kind")] = NoAuth()
    timeout: Timeout = Timeout()
    retry: Retry = Retry()

    @property
    def base_url(self) -> str:
        return str(self.base).rstrip("/")


class FolderDestination(_Model):
    """837P interchanges dropped into a folder (for a clearinghouse's pickup job): every
    ``interval_seconds`` one interchange with every Claim version not exported yet, the same export
    as ``theraclaim export-837`` (original, replacement or void per version; adapter/service/x12store.py)."""

    id: str = Field(pattern=DESTINATION_ID)
    kind: Literal["folder"]
    path: Path = Field(description="an existing, writable directory")
    profile: str | None = Field(None, description="clearinghouse profile id (default: the only one there is)")
    interval_seconds: float = Field(60, gt=0)

    @model_validator(mode="after")
    def _writable(self) -> FolderDestination:
        if not self.path.is_dir() or not os.access(self.path, os.W_OK):
            raise ValueError(f"path {self.path} is not a writable directory")
        return self


Destination = Annotated[FhirDestination | FolderDestination, Field(discriminator="kind")]


class Destinations(_Model):
    destinations: tuple[Destination, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> Destinations:
        seen: set[str] = set()
        for destination in self.destinations:
            if destination.id in seen:
                raise ValueError(f"destination id {destination.id!r} is used twice")
            seen.add(destination.id)
        if len(self.folders) > 1:  # which Claim versions were exported is recorded once, not per folder
            raise ValueError("at most one destination of kind folder")
        return self

    @property
    def fhir(self) -> tuple[FhirDestination, ...]:
        return tuple(d for d in self.destinations if isinstance(d, FhirDestination))

    @property
    def folders(self) -> tuple[FolderDestination, ...]:
        return tuple(d for d in self.destinations if isinstance(d, FolderDestination))


def load_destinations(path: Path | None) -> Destinations | None:
    """The destinations of the file (None without a file); DestinationError names what is wrong."""
    if path is None:
        return None
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise DestinationError(f"{path}: cannot read it: {error.strerror}") from error
    except yaml.YAMLError as error:
        raise DestinationError(f"{path}: not YAML: {error}") from error
    try:
        return Destinations.model_validate(document)
    except ValidationError as error:
        raise DestinationError(f"{path}: {_describe(document, error)}") from error


def _describe(document: object, error: ValidationError) -> str:
    """Each problem as 'destinations[1] (id billing) auth.token_url: message' (no input values)."""
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        location = list(item["loc"])
        where = ""
        if len(location) >= 2 and location[0] == "destinations" and isinstance(location[1], int):
            index = location[1]
            entries = document.get("destinations") if isinstance(document, dict) else None
            entry = entries[index] if isinstance(entries, list) and index < len(entries) else None
            name = entry.get("id") if isinstance(entry, dict) else None
            where = f"destinations[{index}]" + (f" (id {name})" if isinstance(name, str) else "")
            location = location[2:]
        # the discriminated union adds its tag ('smart', 'none') to the path: not a field name
        fields = ".".join(str(part) for part in location if part not in ("smart", "none", "fhir", "folder"))
        problems.append(" ".join(part for part in (where, fields) if part) + f": {item['msg']}")
    return "; ".join(problems)
