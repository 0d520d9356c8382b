"""Schemas of the contraindication and body-site rule data (``mappings/contraindications/``,
``mappings/body-sites.yaml``).

Codes are stored without the ICD-10-CM dot (``I82401``), so matching never depends on it.  A
*tier* says how strongly a match applies before site, verification and override adjustments:
``full`` (the contraindication as such), ``lesser`` (chronic, unconfirmed, different site...),
``minor`` (worth a note, e.g. antiplatelets) and ``none`` (history, sequela: no finding).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from adapter.rules.rulefile import RuleFile, Strict

Tier = Literal["full", "lesser", "minor", "none"]
Side = Literal["left", "right", "bilateral", "unspecified"]
Action = Literal["hold", "block", "warn", "ignore"]
IcdKey = Annotated[
    str, Field(pattern=r"^[A-Z][0-9A-Z]{2,6}$", description="ICD-10-CM code or prefix (a category at least), no dot")
]


# --- body sites ---------------------------------------------------------------------------------


class BodyRegion(Strict):
    id: Annotated[str, Field(pattern=r"^[a-z][a-z-]*$")]
    display: str
    parents: list[str] = Field(default=[], description="enclosing regions (lower-back -> back, spine)")


class SiteCode(Strict):
    """A SNOMED CT body structure (or laterality qualifier) and what it says about region and side."""

    code: Annotated[str, Field(pattern=r"^[0-9]{6,18}$")]
    display: str
    region: str | None = Field(description="region id; null for a pure laterality qualifier")
    side: Side | None = None
    verified: bool = Field(description="confirmed by two independent publishers (body-sites.md §0)")
    source: str


class LateralityRule(Strict):
    position: Annotated[int, Field(ge=4, le=7, description="1-based character position in the dot-less code")]
    values: dict[str, Side]


class IcdRegionRule(Strict):
    prefix: IcdKey
    region: str
    laterality: LateralityRule | None = None
    source: str


class BodySiteMap(RuleFile):
    kind: Literal["body-site-map"]
    regions: list[BodyRegion]
    snomed: list[SiteCode]
    icd10cm: list[IcdRegionRule] = Field(description="the longest matching prefix wins")

    @model_validator(mode="after")
    def _regions_exist(self) -> BodySiteMap:
        known = {r.id for r in self.regions}
        used = {p for r in self.regions for p in r.parents} | {s.region for s in self.snomed if s.region}
        used |= {rule.region for rule in self.icd10cm}
        unknown = sorted(used - known)
        if unknown:
            raise ValueError(f"unknown region ids: {unknown}")
        codes = [s.code for s in self.snomed]
        if len(set(codes)) != len(codes):
            raise ValueError("a SNOMED code is listed twice")
        prefixes = [rule.prefix for rule in self.icd10cm]
        if len(set(prefixes)) != len(prefixes):
            raise ValueError("an ICD-10-CM prefix has two region rules")
        return self


# --- contraindications ----------------------------------------------------------------------------


class SeventhCharacter(Strict):
    characters: Annotated[str, Field(pattern=r"^[A-Z]+$")]
    tier: Tier
    meaning: str


class IcdMatch(Strict):
    prefix: IcdKey
    exclude: list[IcdKey] = Field(default=[], description="more specific prefixes that do not match")
    tier: Tier = "full"
    seventh_character: list[SeventhCharacter] = Field(
        default=[], description="tiers by the 7th character (encounter extension); codes without one keep `tier`"
    )
    display: str
    source: str


class CodeMatch(Strict):
    code: str
    tier: Tier = "full"
    display: str
    source: str


class SevereObservation(Strict):
    """An Observation whose latest final value marks the class as severe (e.g. a low platelet count)."""

    loinc: list[str]
    comparator: Literal["<", "<="]
    threshold: float
    unit: str = Field(description="UCUM unit of the threshold; values in other listed units are converted")
    unit_factors: dict[str, float] = Field(default={}, description="other UCUM units -> factor to `unit`")
    unconfirmed: bool = Field(description="true while the code or threshold has no confirmed source")
    source: str


class ContraindicationClass(Strict):
    id: Annotated[str, Field(pattern=r"^[a-z][a-z-]*$")]
    display: str
    scope: Literal["systemic", "regional"]
    why: str = Field(description="why it matters, written for a biller")
    icd10cm: list[IcdMatch] = []
    snomed: list[CodeMatch] = []
    rxnorm: list[CodeMatch] = []
    severe_observation: SevereObservation | None = None


class ContraindicationSet(RuleFile):
    kind: Literal["contraindication-set"]
    screened_cpt: list[Annotated[str, Field(pattern=r"^[0-9]{5}$")]] = Field(
        description="CPT codes whose procedures are screened (massage and manual therapy)"
    )
    classes: list[ContraindicationClass]

    @field_validator("classes")
    @classmethod
    def _unique(cls, value: list[ContraindicationClass]) -> list[ContraindicationClass]:
        ids = [c.id for c in value]
        if len(set(ids)) != len(ids):
            raise ValueError("a contraindication class is defined twice")
        return value


# --- payer policy -------------------------------------------------------------------------------------


class TierActions(Strict):
    full: Action = "hold"
    lesser: Action = "warn"
    minor: Action = "warn"


class ContraindicationPolicy(Strict):
    """What a finding does to the Claim, by tier, with optional per-class overrides."""

    default: TierActions = TierActions()
    by_class: dict[str, TierActions] = {}

    def action(self, class_id: str, tier: Tier) -> Action:
        if tier == "none":
            return "ignore"
        actions = self.by_class.get(class_id, self.default)
        result: Action = getattr(actions, tier)
        return result
