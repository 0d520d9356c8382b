"""Base models of every rule data file: strict, frozen, versioned."""

from __future__ import annotations

from datetime import date
from functools import cached_property
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

SEMVER = r"^\d+\.\d+\.\d+$"


class Strict(BaseModel):
    """Unknown keys are errors: a typo in rule data must not pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleFile(Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$")]
    version: Annotated[str, Field(pattern=SEMVER)]
    effective: date
    description: str = ""

    @cached_property  # (named in most findings' rule: formatted once per loaded file)
    def label(self) -> str:
        return f"{self.id}@{self.version}"
