"""Contraindication screening of massage and manual therapy.

What counts as present (documented decisions):

* Condition: ``clinicalStatus`` active / recurrence / relapse counts; inactive / remission /
  resolved does not.  ``verificationStatus`` refuted or entered-in-error never counts;
  unconfirmed / provisional / differential count one tier lower.  A Condition without a
  clinicalStatus (FHIR allows that for encounter diagnoses, con-3) counts fully when this
  Encounter names it as a diagnosis or it is categorised ``encounter-diagnosis``, and one tier
  lower otherwise (an unmaintained problem-list entry).  Onset after the date of service or
  abatement before it: no hit.
* Medication: MedicationStatement / MedicationRequest ``active``, or ``completed`` with an
  effective period that covers the date of service; never one that started (effective start,
  or a request's ``authoredOn``) after the date of service.
* Observation: the latest final (or amended / corrected) value on or before the date of service.

Systemic classes concern every screened procedure; regional classes compare the Condition's
site (``Condition.bodySite``, else the region its ICD-10-CM code implies) with each
procedure's ``bodySite``: the same region, or either side unknown, keeps the tier; a clearly
different region lowers it one tier.

A clinician override (the ``contraindication-override`` extension on a Procedure) turns a finding
into a warning only when every Procedure the finding concerns documents one for its class.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TypeVar

from adapter.model import (
    Coding,
    ConditionFact,
    Contraindication,
    EncounterFacts,
    Frozen,
    MedicationFact,
    ObservationFact,
    ProcedureFact,
)
from adapter.rules.catalog import Rules
from adapter.rules.per_patient import once_per_patient
from adapter.rules.screening_data import (
    ContraindicationClass,
    ContraindicationPolicy,
    IcdMatch,
    SevereObservation,
    Tier,
)
from adapter.rules.sites import Site, SiteResolver, normalize_icd

ICD10CM_SYSTEM = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED_SYSTEM = "http://snomed.info/sct"
RXNORM_SYSTEM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC_SYSTEM = "http://loinc.org"
PRESENT = frozenset({"active", "recurrence", "relapse"})
NEVER = frozenset({"refuted", "entered-in-error"})
UNCERTAIN = frozenset({"unconfirmed", "provisional", "differential"})
FINAL = frozenset({"final", "amended", "corrected"})
_LOWER: dict[Tier, Tier] = {"full": "lesser", "lesser": "minor", "minor": "minor", "none": "none"}


class Match(Frozen, frozen=True):
    """A code that matched a class, and the tier its data gives."""

    klass: ContraindicationClass
    tier: Tier
    code: str
    system: str


def icd_tier(match: IcdMatch, key: str) -> Tier:
    """Tier of a dot-less ICD-10-CM code under a matching prefix rule (7th character rules first)."""
    if len(key) == 7:
        for rule in match.seventh_character:
            if key[6] in rule.characters:
                return rule.tier
    return match.tier


def match_icd(classes: list[ContraindicationClass], code: str) -> list[Match]:
    """Classes an ICD-10-CM code belongs to; per class the longest matching prefix decides."""
    key = normalize_icd(code)
    by_class: dict[str, tuple[ContraindicationClass, IcdMatch]] = {}
    for klass, match in _icd_index(classes).get(key[:3], ()):
        if key.startswith(match.prefix) and not any(key.startswith(x) for x in match.exclude):
            best = by_class.get(klass.id)
            if best is None or len(match.prefix) > len(best[1].prefix):
                by_class[klass.id] = (klass, match)
    return [Match(klass, icd_tier(match, key), code, ICD10CM_SYSTEM) for klass, match in by_class.values()]


_INDEXES: dict[int, tuple[list[ContraindicationClass], dict[str, list[tuple[ContraindicationClass, IcdMatch]]]]] = {}


def _icd_index(classes: list[ContraindicationClass]) -> dict[str, list[tuple[ContraindicationClass, IcdMatch]]]:
    """Prefix rules by their first three characters (every ICD-10-CM category has three), built once
    per loaded class list (the list is kept with its index, so its id cannot be reused)."""
    cached = _INDEXES.get(id(classes))
    if cached is not None and cached[0] is classes:
        return cached[1]
    index: dict[str, list[tuple[ContraindicationClass, IcdMatch]]] = defaultdict(list)
    for klass in classes:
        for match in klass.icd10cm:
            index[match.prefix[:3]].append((klass, match))
    _INDEXES[id(classes)] = (classes, index)
    return index


def match_codes(classes: list[ContraindicationClass], system: str, code: str) -> list[Match]:
    """Classes a SNOMED CT or RxNorm code belongs to (exact code match)."""
    found = []
    for klass in classes:
        entries = klass.snomed if system == SNOMED_SYSTEM else klass.rxnorm if system == RXNORM_SYSTEM else []
        found += [Match(klass, e.tier, code, system) for e in entries if e.code == code]
    return found


def _condition_matches(classes: list[ContraindicationClass], condition: ConditionFact) -> list[Match]:
    matches: dict[str, Match] = {}
    for coding in condition.codes:
        if coding.system == ICD10CM_SYSTEM:
            found = match_icd(classes, coding.code)
        else:
            found = match_codes(classes, coding.system, coding.code)
        for match in found:
            # one match per class: an ICD-10-CM code (it carries 7th character and region) wins
            if match.klass.id not in matches or match.system == ICD10CM_SYSTEM:
                matches[match.klass.id] = match
    return list(matches.values())


_Fact = TypeVar("_Fact")


def _matching(
    kind: str,
    classes: list[ContraindicationClass],
    facts: Sequence[_Fact],
    matches_of: Callable[[list[ContraindicationClass], _Fact], list[Match]],
) -> list[tuple[_Fact, list[Match]]]:
    """The facts that belong to at least one class, with their matches (computed once per patient)."""
    return once_per_patient(
        kind, (classes, facts), lambda: [(fact, found) for fact in facts if (found := matches_of(classes, fact))]
    )


def _medication_matches(classes: list[ContraindicationClass], medication: MedicationFact) -> list[Match]:
    return list({m.klass.id: m for c in medication.codes for m in match_codes(classes, c.system, c.code)}.values())


def shift_reasons(condition: ConditionFact, named_diagnoses: set[str]) -> tuple[str, ...]:
    """Why a counted Condition is lowered (the words for DetectedIssue.detail; see condition_tier_shift)."""
    reasons = []
    if condition.verification_status in UNCERTAIN:
        reasons.append(f"the condition is {condition.verification_status}, not confirmed")
    if condition.clinical_status is None:
        named = condition.ref in named_diagnoses or "encounter-diagnosis" in condition.categories
        if not named:
            reasons.append("it has no clinical status and is not a diagnosis of this visit")
    return tuple(reasons)


def condition_tier_shift(condition: ConditionFact, day: date, named_diagnoses: set[str]) -> int | None:
    """None when the Condition does not count on ``day``; else how many tiers it is lowered."""
    if condition.verification_status in NEVER:
        return None
    if condition.onset and condition.onset > day:
        return None
    if condition.abatement and condition.abatement < day:
        return None
    shift = 1 if condition.verification_status in UNCERTAIN else 0
    if condition.clinical_status is None:
        named = condition.ref in named_diagnoses or "encounter-diagnosis" in condition.categories
        return shift if named else shift + 1
    return shift if condition.clinical_status in PRESENT else None


def medication_counts(medication: MedicationFact, day: date) -> bool:
    if medication.effective_start is not None and medication.effective_start > day:
        return False  # started (or ordered) after the date of service
    if medication.status == "active":
        return True
    if medication.status != "completed" or medication.effective_start is None:
        return False
    return medication.effective_start <= day and (medication.effective_end or medication.effective_start) >= day


def _named(code: str, codes: tuple[Coding, ...]) -> str:
    """The code with the name the input gave it (its display), e.g. ``855332 warfarin sodium 5 MG Oral Tablet``."""
    display = next((c.display for c in codes if c.code == code and c.display), None)
    display = display or next((c.display for c in codes if c.display), None)
    return f"{code} {display}" if display and code else display or code


def lower(tier: Tier, steps: int) -> Tier:
    for _ in range(steps):
        tier = _LOWER[tier]
    return tier


def severe_observation(
    rule: SevereObservation, observations: tuple[ObservationFact, ...], day: date
) -> ObservationFact | None:
    """The latest final Observation of the rule's codes on or before ``day``, when it meets the threshold."""
    candidates = [
        o
        for o in observations
        if o.status in FINAL
        and o.effective is not None
        and o.effective <= day
        and o.value is not None
        and any(c.system == LOINC_SYSTEM and c.code in rule.loinc for c in o.codes)
    ]
    if not candidates:
        return None
    latest = max(candidates, key=lambda o: (o.effective, o.path))
    assert latest.value is not None
    factor = 1.0 if latest.unit in (None, rule.unit) else rule.unit_factors.get(latest.unit or "")
    if factor is None:
        return None  # a unit we cannot convert is not evidence either way
    value = latest.value * factor
    meets = value < rule.threshold if rule.comparator == "<" else value <= rule.threshold
    return latest if meets else None


@dataclass
class _Screen:
    """The working state of one Encounter's screening."""

    rules: Rules
    resolver: SiteResolver
    policy: ContraindicationPolicy
    encounter: EncounterFacts
    procedures: list[ProcedureFact]
    day: date

    def __post_init__(self) -> None:
        self.classes = self.rules.contraindications.classes
        self.label = f"contraindications/screen {self.rules.contraindications.label}"
        observations = self.encounter.observations
        self.severe = {
            klass.id: observation
            for klass in (self.classes if observations else ())  # (most visits have no Observation)
            if klass.severe_observation is not None
            and (observation := severe_observation(klass.severe_observation, observations, self.day))
        }

    def conditions(self) -> list[Contraindication]:
        named = {d.condition_ref for d in self.encounter.diagnoses}
        found = []
        for condition, matches in _matching("condition", self.classes, self.encounter.conditions, _condition_matches):
            shift = condition_tier_shift(condition, self.day, named)
            if shift is None:
                continue
            reasons = shift_reasons(condition, named)
            for match in matches:
                tier = lower(match.tier, shift)
                if tier == "none":
                    continue
                name = _named(match.code, condition.codes)
                if match.klass.scope == "systemic":
                    site = self._condition_site(match, condition)
                    place = f", condition at {site.describe()}" if site.known else ""
                    found.append(
                        self._finding(
                            match, tier, "COND", condition.ref, condition.path, self.procedures, name, place, reasons
                        )
                    )
                else:
                    found += self._regional(match, tier, condition, name, reasons)
        return found

    def _condition_site(self, match: Match, condition: ConditionFact) -> Site:
        site = self.resolver.of_codings(condition.body_sites)
        if not site.known and match.system == ICD10CM_SYSTEM:
            implied = self.resolver.of_icd(match.code)
            # a bodySite with only a laterality qualifier still tells the side of the code's region
            site = Site(implied.regions, site.side if site.side != "unspecified" else implied.side)
        return site

    def _regional(
        self, match: Match, tier: Tier, condition: ConditionFact, name: str, reasons: tuple[str, ...]
    ) -> list[Contraindication]:
        site = self._condition_site(match, condition)
        by_tier: dict[Tier, list[ProcedureFact]] = defaultdict(list)
        for procedure in self.procedures:
            treated = self.resolver.of_codings(procedure.body_sites)
            by_tier[tier if self.resolver.meet(site, treated) else lower(tier, 1)].append(procedure)
        other = ("the treated site is not the condition's",)
        return [
            self._finding(
                match,
                site_tier,
                "COND",
                condition.ref,
                condition.path,
                procs,
                name,
                self._where(site, procs),
                reasons + (other if site_tier != tier else ()),
            )
            for site_tier, procs in by_tier.items()
        ]

    def _where(self, site: Site, procedures: list[ProcedureFact]) -> str:
        treated = sorted({self.resolver.of_codings(p.body_sites).describe() for p in procedures})
        return f", condition at {site.describe()}, treated at {', '.join(treated)}"

    def medications(self) -> list[Contraindication]:
        found = []
        for medication, matches in _matching(
            "medication", self.classes, self.encounter.medications, _medication_matches
        ):
            if not medication_counts(medication, self.day):
                continue
            found += [
                self._finding(
                    m, m.tier, "DRG", medication.ref, medication.path, self.procedures, _named(m.code, medication.codes)
                )
                for m in matches
                if m.tier != "none"
            ]
        return found

    def observations(self, found: list[Contraindication]) -> list[Contraindication]:
        """A severe Observation is a finding of its own when no code named its class."""
        named = {f.class_id for f in found}
        by_id = {klass.id: klass for klass in self.classes}
        return [
            self._finding(
                Match(by_id[class_id], "full", "", LOINC_SYSTEM), "full", "COND", obs.ref, obs.path, self.procedures
            )
            for class_id, obs in self.severe.items()
            if class_id not in named
        ]

    def _finding(
        self,
        match: Match,
        tier: Tier,
        kind: str,
        source_ref: str,
        source_path: str,
        procedures: list[ProcedureFact],
        name: str = "",
        place: str = "",
        lowered: tuple[str, ...] = (),
    ) -> Contraindication:
        klass = match.klass
        severe = self.severe.get(klass.id)
        if severe is not None:
            tier = "full"  # objective evidence outranks an uncertain or chronic code
        # an override is per Procedure: it covers the finding only when every Procedure it concerns documents one
        overrides = [next((o for o in p.overrides if o.class_id == klass.id), None) for p in procedures]
        override = overrides[0] if all(overrides) else None
        action = "warn" if override else self.policy.action(klass.id, tier)
        coded = f" ({name or match.code})" if name or match.code else ""
        evidence = f" (severe: {severe.value:g} {severe.unit or ''} on {severe.effective})" if severe else ""
        if match.tier != "full" and not severe:
            lowered = (f"the rule data ranks {match.code} {match.tier}", *lowered)
        because = f" (lowered: {'; '.join(lowered)})" if lowered and tier != "full" else ""
        detail = (
            f"{klass.display}{coded}{evidence}{place}: {klass.why}. "
            f"Tier {tier}{because} -> {action}; rule {self.rules.contraindications.label}."
        )
        if override:
            detail += f" Clinician override documented: {override.reason}"
        return Contraindication(
            class_id=klass.id,
            class_display=klass.display,
            tier=tier,
            kind=kind,
            source_ref=source_ref,
            source_path=source_path,
            procedure_refs=tuple(p.ref for p in procedures),
            action=action,
            detail=detail,
            rule=self.label,
            evidence_refs=(severe.ref,) if severe and severe.ref != source_ref else (),
            override_reason=override.reason if override else None,
        )


def screen(
    encounter: EncounterFacts,
    procedures: list[ProcedureFact],
    rules: Rules,
    resolver: SiteResolver,
    policy: ContraindicationPolicy,
) -> list[Contraindication]:
    """Contraindications for the screened (massage / manual therapy) procedures of an Encounter."""
    days = [p.service_date for p in procedures if p.service_date is not None]
    if not days:
        return []
    state = _Screen(rules, resolver, policy, encounter, procedures, min(days))
    found = state.conditions() + state.medications()
    return found + state.observations(found)
