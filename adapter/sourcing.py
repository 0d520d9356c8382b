"""Pull and fill: the source's resources go through the same pipeline as a push.

``pull_encounter`` builds the Bundle a complete push would have been from an Encounter on the
source; ``fill`` adds to a pushed Bundle what it lacks (``THERACLAIM_SOURCE_FILL``).  ``amend``
then tells the result what happened: each Provenance names the fetched resources by their
source URL and version, the OperationOutcome says what was fetched and what could not be, and
a Claim whose Encounter lost a category to a failing source is held (``draft``) with a
``source-incomplete`` finding, never made as if the category were empty.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from msgspec.structs import replace

from adapter.errors import FINDING_SYSTEM, InputError
from adapter.intake.wire import parse_document
from adapter.pipeline import EncounterOutcome, Result
from adapter.rules.catalog import Rules
from adapter.service.settings import Settings
from adapter.source.client import SourceClient, SourceConfig, SourceError
from adapter.source.gather import CATEGORIES, Gathered, NotOnSource, find_encounter, gather, source_id

LOINC = "http://loinc.org"
ENCOUNTER_URL = re.compile(r"^(?P<base>https?://.+?)/Encounter/(?P<id>[A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?/?\Z")
PRESENT_IF = {  # fill "missing": a category counts as sent when the Bundle has one of these
    "conditions": ("Condition",),
    "medications": ("MedicationStatement", "MedicationRequest"),
    "observations": ("Observation",),
    "coverage": ("Coverage",),
}


def source_config(settings: Settings, base: str | None = None) -> SourceConfig | None:
    base = base or settings.source_fhir_base
    if base is None:
        return None
    return SourceConfig(
        base=base,
        client_id=settings.source_client_id,
        private_key=settings.source_private_key,
        scope=settings.source_scope,
        timeout=settings.source_timeout,
    )


def observation_codes(rules: Rules) -> tuple[str, ...]:
    """The Observation codes the screening reads (from the rule data), as ``system|code`` tokens."""
    codes = [
        f"{LOINC}|{code}"
        for klass in rules.contraindications.classes
        if klass.severe_observation is not None
        for code in klass.severe_observation.loinc
    ]
    return tuple(dict.fromkeys(codes))


@dataclass
class SourceReport:
    """What the source gave, per Encounter (``Encounter/<id>``)."""

    gathered: dict[str, Gathered] = field(default_factory=dict)
    mode: str = "pull"  # pull | fill

    @property
    def empty(self) -> bool:
        return not self.gathered


def pull_encounter(
    client: SourceClient, rules: Rules, *, encounter_id: str | None = None, identifier: str | None = None
) -> tuple[dict[str, Any], SourceReport]:
    """The Bundle of one Encounter fetched from the source.  Raises SourceError when the
    Encounter, its Procedures or its patient cannot be fetched, NotOnSource when absent."""
    encounter, procedures = find_encounter(client, encounter_id, identifier)
    got = gather(client, encounter, observation_codes=observation_codes(rules), procedures=procedures)
    return got.bundle(), SourceReport({f"Encounter/{encounter['id']}": got})


def fill(
    client: SourceClient, rules: Rules, document: dict[str, Any], mode: str
) -> tuple[dict[str, Any], SourceReport]:
    """The pushed Bundle plus what the source has that it lacks; the document is not changed."""
    report = SourceReport(mode="fill")
    entries = [e for e in document.get("entry") or [] if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    resources = [e["resource"] for e in entries]
    held = {(r.get("resourceType"), r.get("id")) for r in resources}
    by_url: dict[str, dict[str, Any]] = {
        e["fullUrl"]: e["resource"] for e in entries if isinstance(e.get("fullUrl"), str)
    }
    present = {r.get("resourceType") for r in resources}
    skip = frozenset(c for c, types in PRESENT_IF.items() if mode == "missing" and present & set(types))
    added: list[dict[str, Any]] = []
    for entry in entries:
        encounter = entry["resource"]
        if encounter.get("resourceType") != "Encounter" or not isinstance(encounter.get("id"), str):
            continue
        encounter = _with_source_subject(encounter, by_url)
        mine = {f"Encounter/{encounter['id']}", entry.get("fullUrl")}
        procedures = [
            r
            for r in resources
            if r.get("resourceType") == "Procedure" and (r.get("encounter") or {}).get("reference") in mine
        ]
        try:
            _same_patient(client, encounter, by_url, resources)
            got = gather(
                client,
                encounter,
                observation_codes=observation_codes(rules),
                procedures=procedures,
                skip=skip,
                have=lambda t, i: (t, i) in held,
                fetch_encounter=False,
            )
        except (SourceError, NotOnSource) as error:
            got = Gathered(client.config.root)
            reason = error.reason if isinstance(error, SourceError) else str(error)
            got.failures = {c: reason for c in CATEGORIES if c not in skip}
        report.gathered[f"Encounter/{encounter['id']}"] = got
        for key, resource in got.resources.items():
            if key not in held:
                held.add(key)
                added.append({"fullUrl": f"{got.base}/{key[0]}/{key[1]}", "resource": resource})
    if not added:
        return document, report
    filled = dict(document)
    if document.get("type") in ("transaction", "batch"):
        for extra in added:
            resource = extra["resource"]
            extra["request"] = {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}
    filled["entry"] = [*(document.get("entry") or []), *added]
    return filled, report


def _same_patient(
    client: SourceClient, encounter: dict[str, Any], by_url: dict[str, dict[str, Any]], resources: list[dict[str, Any]]
) -> None:
    """Refuse to fill from a source Patient that is not the pushed one: when the pushed Patient
    carries identifiers, the source's Patient of that id must share one (ids alone can collide)."""
    target = source_id(client, encounter.get("subject"), "Patient")
    if target is None:
        return
    pushed = next((r for r in resources if r.get("resourceType") == "Patient" and r.get("id") == target[1]), None)
    wanted = _identifiers(pushed)
    if not wanted:
        return
    found = client.read(*target)
    if found is None:
        raise NotOnSource("the pushed patient is not on the source")
    if not wanted & _identifiers(found):
        raise NotOnSource("the source's Patient of that id shares no identifier with the pushed one")


def _identifiers(patient: dict[str, Any] | None) -> set[tuple[str, str]]:
    raw = patient.get("identifier") if isinstance(patient, dict) else None
    items = raw if isinstance(raw, list) else []
    return {
        (i["system"], i["value"])
        for i in items
        if isinstance(i, dict) and isinstance(i.get("system"), str) and isinstance(i.get("value"), str)
    }


def _with_source_subject(encounter: dict[str, Any], by_url: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A pushed Encounter whose subject is a urn:uuid names its Patient by the Patient's id."""
    subject = (encounter.get("subject") or {}).get("reference")
    patient = by_url.get(subject) if isinstance(subject, str) else None
    if patient is None or not isinstance(patient.get("id"), str):
        return encounter
    return {**encounter, "subject": {"reference": f"Patient/{patient['id']}"}}


def amend(result: Result, report: SourceReport) -> Result:
    """The result, told what the source gave: provenance, outcome issues, holds."""
    if report.empty:
        return result
    bundle = copy.deepcopy(result.bundle)
    resources = [e["resource"] for e in bundle["entry"]]
    issues: list[dict[str, Any]] = []
    held: set[str] = set()
    for encounter_ref, got in report.gathered.items():
        issues.append(_fetched_issue(encounter_ref, got, report.mode))
        for category, reason in got.failures.items():
            issues.append(_failure_issue(encounter_ref, category, reason))
            held.add(encounter_ref)
    claim_of: dict[str, str] = {}
    for outcome in result.outcomes:
        if outcome.claim_id:
            claim_of[outcome.claim_id] = outcome.encounter_ref
    for resource in resources:
        if resource["resourceType"] == "Claim" and claim_of.get(resource["id"]) in held:
            resource["status"] = "draft"
        if resource["resourceType"] == "Provenance":
            _cite_sources(resource, report)
        if resource["resourceType"] == "OperationOutcome":
            resource["issue"] = issues + resource["issue"]
    outcomes = tuple(_held(o) if o.encounter_ref in held and o.status else o for o in result.outcomes)
    return replace(result, bundle=bundle, outcomes=outcomes)  # (keeps what the day pool needs)


def _held(outcome: EncounterOutcome) -> EncounterOutcome:
    return replace(outcome, status="draft", findings=(*outcome.findings, "source-incomplete"))


def _cite_sources(provenance: dict[str, Any], report: SourceReport) -> None:
    """Each fetched resource by its URL and version on the source (local references become those)."""
    entities = provenance.get("entity", [])
    refs = {e["what"].get("reference") for e in entities}
    got = next((g for ref, g in report.gathered.items() if ref in refs), None)
    if got is None:
        return
    by_local = {f"{f.resource_type}/{f.id}": f for f in got.fetched}
    for entity in entities:
        fetched = by_local.pop(entity["what"].get("reference"), None)
        if fetched is not None:
            entity["what"] = {"reference": fetched.versioned_url}
    entities += [{"role": "source", "what": {"reference": f.versioned_url}} for f in by_local.values()]
    provenance["entity"] = entities


def _fetched_issue(encounter_ref: str, got: Gathered, mode: str) -> dict[str, Any]:
    counts = ", ".join(f"{n} {category}" for category, n in got.counts.items()) or "nothing"
    verb = "pulled from the source" if mode == "pull" else "filled from the source"
    return {
        "severity": "information",
        "code": "informational",
        "details": {"coding": [{"system": FINDING_SYSTEM, "code": f"source-{mode}"}], "text": f"{verb}: {counts}"},
        "diagnostics": f"Encounter {encounter_ref}",
    }


def _failure_issue(encounter_ref: str, category: str, reason: str) -> dict[str, Any]:
    return {
        "severity": "warning",
        "code": "incomplete",
        "details": {
            "coding": [{"system": FINDING_SYSTEM, "code": "source-incomplete"}],
            "text": f"{category} could not be fetched: {reason}",
        },
        "diagnostics": f"Encounter {encounter_ref}; holds the Claim",
    }


class SourceProblem(Exception):
    """Why a pull could not start or finish (``unavailable``: the source failed, try later)."""

    def __init__(self, message: str, *, unavailable: bool = False) -> None:
        super().__init__(message)
        self.unavailable = unavailable


def pull_or_fill(
    settings: Settings, rules: Rules, payload: bytes | dict[str, Any], encounter_url: str | None
) -> tuple[bytes | dict[str, Any], SourceReport | None]:
    """For the CLI: pull the Encounter at ``encounter_url``, or fill a pushed document when a
    source is configured (an unparsable document is left to the pipeline to report)."""
    if encounter_url is not None:
        absolute = parse_encounter_url(encounter_url)
        if absolute is None and encounter_url.startswith("Encounter/") and settings.source_fhir_base:
            absolute = parse_encounter_url(f"{settings.source_fhir_base.rstrip('/')}/{encounter_url}")
        if absolute is None:
            raise SourceProblem("--encounter needs an Encounter URL (https://ehr.example/fhir/Encounter/<id>)")
        config = source_config(settings, absolute[0])
        assert config is not None
        try:
            with SourceClient(config) as client:
                return pull_encounter(client, rules, encounter_id=absolute[1])
        except NotOnSource as error:
            raise SourceProblem(str(error)) from None
        except SourceError as error:
            raise SourceProblem(f"the Encounter could not be fetched: {error.reason}", unavailable=True) from None
    config = source_config(settings)
    if config is None or settings.source_fill == "never":
        return payload, None
    try:
        document = payload if isinstance(payload, dict) else parse_document(payload, settings.limits)
    except InputError:
        return payload, None
    try:
        with SourceClient(config) as client:
            return fill(client, rules, document, settings.source_fill)
    except SourceError as error:  # the client could not even be made (a bad key file)
        raise SourceProblem(error.reason) from None


def parse_encounter_url(url: str) -> tuple[str, str] | None:
    """(base, id) of an absolute Encounter URL on a FHIR server."""
    match = ENCOUNTER_URL.match(url)
    return (match.group("base"), match.group("id")) if match else None


__all__ = [
    "NotOnSource",
    "SourceClient",
    "SourceError",
    "SourceProblem",
    "SourceReport",
    "amend",
    "fill",
    "observation_codes",
    "parse_encounter_url",
    "pull_encounter",
    "pull_or_fill",
    "source_config",
    "source_id",
]
