"""Body regions and sides of Procedures and Conditions, and whether two sites meet.

A site is a set of region ids plus a side.  Two sites meet when a region of one equals or
encloses a region of the other and the sides are compatible (left never meets right; an
unspecified or bilateral side meets anything).  A site with no known region meets everything:
the conservative answer when the documentation does not say where.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from adapter.model import Coding
from adapter.rules.screening_data import BodySiteMap, Side

SNOMED_SYSTEM = "http://snomed.info/sct"


def normalize_icd(code: str) -> str:
    """ICD-10-CM without the dot, upper case: ``i82.401`` -> ``I82401``."""
    return code.replace(".", "").strip().upper()


@dataclass(frozen=True, slots=True)
class Site:
    regions: frozenset[str]
    side: Side = "unspecified"

    @property
    def known(self) -> bool:
        return bool(self.regions)

    def describe(self) -> str:
        if not self.regions:
            return "an undocumented site"
        where = ", ".join(sorted(self.regions))
        return where if self.side == "unspecified" else f"{self.side} {where}"


UNKNOWN_SITE = Site(frozenset())


class SiteResolver:
    """Answers region questions from the body-site map (loaded once per rule set)."""

    def __init__(self, site_map: BodySiteMap) -> None:
        self._map = site_map
        self._codes = {s.code: s for s in site_map.snomed}
        self._parents = {r.id: tuple(r.parents) for r in site_map.regions}
        self._icd_rules = sorted(site_map.icd10cm, key=lambda rule: -len(rule.prefix))

    @cached_property
    def _ancestors(self) -> dict[str, frozenset[str]]:
        result: dict[str, frozenset[str]] = {}
        for region in self._parents:
            seen: set[str] = set()
            stack = list(self._parents[region])
            while stack:
                parent = stack.pop()
                if parent not in seen:
                    seen.add(parent)
                    stack.extend(self._parents[parent])
            result[region] = frozenset(seen)
        return result

    def of_codings(self, codings: Iterable[Coding]) -> Site:
        """Regions and side of body-site codings (pre-coordinated sites and laterality qualifiers)."""
        regions: set[str] = set()
        sides: set[str] = set()
        for coding in codings:
            entry = self._codes.get(coding.code) if coding.system == SNOMED_SYSTEM else None
            if entry is None:
                continue
            if entry.region:
                regions.add(entry.region)
            if entry.side:
                sides.add(entry.side)
        return Site(frozenset(regions), _one_side(sides))

    def of_icd(self, code: str) -> Site:
        """Region and side implied by an ICD-10-CM code (body-sites.md §5), or an unknown site."""
        key = normalize_icd(code)
        for rule in self._icd_rules:
            if key.startswith(rule.prefix):
                side: Side = "unspecified"
                if rule.laterality and len(key) >= rule.laterality.position:
                    side = rule.laterality.values.get(key[rule.laterality.position - 1], "unspecified")
                return Site(frozenset({rule.region}), side)
        return UNKNOWN_SITE

    def meet(self, first: Site, second: Site) -> bool:
        if not first.known or not second.known:
            return True
        if {first.side, second.side} == {"left", "right"}:
            return False
        return any(
            a == b or b in self._ancestors[a] or a in self._ancestors[b] for a in first.regions for b in second.regions
        )


def _one_side(sides: set[str]) -> Side:
    if sides == {"left"}:
        return "left"
    if sides == {"right"}:
        return "right"
    if sides and sides <= {"left", "right", "bilateral"}:
        return "bilateral"
    return "unspecified"
