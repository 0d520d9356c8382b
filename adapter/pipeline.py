"""intake -> rules -> output, as one pure function of the payload, the rule data and ``now``."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from msgspec.structs import replace

from adapter.deadline import checkpoint
from adapter.digest import canonical_digest
from adapter.errors import InputError, Problem
from adapter.intake.fhir import read_bundle
from adapter.intake.wire import Limits, check_surveyed, parse_surveyed
from adapter.model import ClaimDecision, EncounterFacts, Frozen
from adapter.output.fhir import render_bundle, render_invalid
from adapter.rules.catalog import Rules
from adapter.rules.claim import NOT_BILLABLE, ClaimOptions, decide
from adapter.rules.dates import localize
from adapter.rules.day import DAY_PREFIX, pool_days
from adapter.version import __version__

DEFAULT_OPTIONS = ClaimOptions()
DEFAULT_LIMITS = Limits()


class EncounterOutcome(Frozen, frozen=True):
    """What happened to one Encounter, for callers that do not want to read the Bundle."""

    encounter_ref: str
    claim_id: str | None
    status: str | None  # Claim.status: active | draft; None when no Claim was produced
    lines: tuple[tuple[str, int], ...]  # (CPT, units)
    findings: tuple[str, ...]  # finding codes
    cancels_claim: str | None = None  # the Claim a cancelled / entered-in-error Encounter withdraws
    billing_npi: str | None = None  # the billing Organization's NPI (the tenant of the Claim)
    day: str | None = None  # the day's identity (patient, billing provider, date) when the Claim is the day's
    visit_identities: tuple[str, ...] = ()  # the identities of the visits of that day in this input

    @classmethod
    def of(cls, decision: ClaimDecision) -> EncounterOutcome:
        status = decision.status  # (a property that looks at every finding: read once)
        return cls(
            encounter_ref=decision.encounter.ref,
            claim_id=decision.claim_id if status else None,
            status=status,
            lines=tuple((line.cpt, line.units) for line in decision.lines) if status else (),
            findings=tuple(f.code for f in decision.findings),
            cancels_claim=decision.claim_id if decision.encounter.status in NOT_BILLABLE else None,
            billing_npi=decision.encounter.billing_npi,
            day=decision.encounter.identity if decision.encounter.identity.startswith(DAY_PREFIX) else None,
            visit_identities=decision.encounter.visit_identities,
        )


class Result(Frozen, frozen=True):
    bundle: dict[str, Any]
    outcomes: tuple[EncounterOutcome, ...]
    invalid: bool = False
    decisions: tuple[ClaimDecision, ...] = ()  # what the Bundle was rendered from (other outputs start here)
    source: dict[str, Any] | None = None  # the parsed input (the service pools a day's visits across pushes)
    visits: tuple[EncounterFacts, ...] = ()  # the input's visits as read, before the day's pool (stored per visit)
    decider: Decider | None = None  # decides again over more visits of the same days

    @property
    def exit_code(self) -> int:
        """0: every Encounter produced a Claim; 1: at least one produced none; 2: invalid input."""
        if self.invalid:
            return 2
        return 0 if all(o.status for o in self.outcomes) else 1


def _digest(document: Any) -> str:
    try:
        return canonical_digest(document)
    except orjson.JSONEncodeError as exc:  # a dict payload holding non-JSON keys or values
        raise InputError([Problem("not-json", f"the document is not JSON data: {exc}", None, "structure")]) from exc


class Decider(Frozen, frozen=True):
    """The rules and settings a Result was decided with, to decide again over other visits of its days."""

    rules: Rules
    now: datetime
    payer: str | None
    options: ClaimOptions

    def __call__(
        self, visits: Sequence[EncounterFacts], digest: str, lost: Mapping[str, tuple[str, ...]] | None = None
    ) -> Result:
        """The Result of ``visits`` as one input (pooled per day); ``lost``: per day, the visits left out
        because they no longer convert (a held finding on the day's Claim).  Problems: an invalid Result."""
        try:
            return _decided(visits, self, digest, lost or {}, None)
        except InputError as error:
            return Result(render_invalid(error, digest, self.now), (), invalid=True)


def _decided(
    visits: Sequence[EncounterFacts],
    decider: Decider,
    digest: str,
    lost: Mapping[str, tuple[str, ...]],
    document: dict[str, Any] | None,
) -> Result:
    rules, payer, options = decider.rules, decider.payer, decider.options
    decisions, problems, local = [], [], []
    for facts in visits:
        checkpoint()  # a request's time budget (adapter/deadline.py) is looked at per Encounter
        try:  # dates of service in the clinic's time zone, before the day's pool is formed
            local.append(localize(facts, rules, payer, options.default_payer))
        except InputError as error:
            problems += [p for p in error.problems if p not in problems]
    for facts in pool_days(local):
        checkpoint()
        if facts.identity in lost:
            facts = replace(facts, lost_visits=lost[facts.identity])
        try:  # report the problems of every Encounter, not only the first one's
            decisions.append(decide(facts, rules, payer=payer, options=options, now=decider.now))
        except InputError as error:
            problems += [p for p in error.problems if p not in problems]
    if problems:
        raise InputError(problems)
    bundle = render_bundle(
        decisions, now=decider.now, input_digest=digest, version=__version__, cpt_displays=rules.procedures.displays
    )
    outcomes = tuple(EncounterOutcome.of(d) for d in decisions)
    return Result(bundle, outcomes, decisions=tuple(decisions), source=document, visits=tuple(visits), decider=decider)


def run(
    payload: bytes | str | dict[str, Any],
    *,
    rules: Rules,
    now: datetime,
    payer: str | None = None,
    options: ClaimOptions = DEFAULT_OPTIONS,
    limits: Limits = DEFAULT_LIMITS,
    validation: str = "fields",
) -> Result:
    """Convert one FHIR Bundle. Input problems come back as a Result with ``invalid`` set."""
    try:
        if isinstance(payload, dict):
            document, found = check_surveyed(payload, limits)
        else:
            document, found = parse_surveyed(payload, limits)
        digest = _digest(document)
        visits = read_bundle(document, limits, validation, found)
        return _decided(visits, Decider(rules, now, payer, options), digest, {}, document)
    except InputError as error:
        try:
            seed = payload if isinstance(payload, bytes | str) else repr(payload)
        except RecursionError:  # a dict nested too deep to print; its problem is already reported
            seed = "unprintable"
        digest = hashlib.sha256(seed.encode() if isinstance(seed, str) else seed).hexdigest()
        return Result(render_invalid(error, digest, now), (), invalid=True)
