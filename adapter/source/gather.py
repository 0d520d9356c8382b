"""What a claim needs from the source, fetched around one Encounter.

``gather`` fetches the Encounter's Procedures, patient, Conditions (all of the patient's: the
screening decides what counts on the date of service, and encounter diagnoses may be resolved
since), MedicationStatements and MedicationRequests (with their Medications), the Observations
the screening reads (latest on or before the date of service; every match is kept, the screening
picks), active Coverages (and their payor Organizations), the performers, the billing
Organization, the ServiceRequests / CarePlans in ``basedOn`` and the Devices used.

Each category that cannot be fetched is recorded in ``failures`` with the source's answer;
the caller holds the Claim for it rather than treating the category as empty.  The Encounter,
its Procedures and the patient are essential: without them there is nothing to bill, so their
failure raises.  ``skip`` names categories the caller already has (fill ``missing``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from adapter.source.client import Fetched, SourceClient, SourceError

CATEGORIES = (
    "conditions",
    "medications",
    "observations",
    "coverage",
    "performers",
    "organization",
    "plan-of-care",
    "devices",
)
RELATIVE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[A-Za-z0-9\-.]{1,64})?\Z")


class NotOnSource(Exception):
    """The Encounter asked for does not exist on the source (or an identifier matches none / several)."""


@dataclass
class Gathered:
    base: str
    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    fetched: list[Fetched] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # category -> resources fetched
    failures: dict[str, str] = field(default_factory=dict)  # category -> why it could not be fetched

    def add(self, client: SourceClient, category: str, resources: Iterable[dict[str, Any]]) -> None:
        for resource in resources:
            key = (resource.get("resourceType"), resource.get("id"))
            if not isinstance(key[0], str) or not isinstance(key[1], str) or key in self.resources:
                continue
            self.resources[key] = resource  # type: ignore[index]
            self.fetched.append(client.fetched(resource))
            self.counts[category] = self.counts.get(category, 0) + 1

    def has(self, resource_type: str, resource_id: str) -> bool:
        return (resource_type, resource_id) in self.resources

    def of_type(self, *types: str) -> list[dict[str, Any]]:
        return [r for (t, _), r in self.resources.items() if t in types]

    def entries(self) -> list[dict[str, Any]]:
        return [{"fullUrl": f"{self.base}/{t}/{i}", "resource": r} for (t, i), r in self.resources.items()]

    def bundle(self) -> dict[str, Any]:
        """The pulled visit as a collection Bundle, each entry's fullUrl its URL on the source."""
        return {"resourceType": "Bundle", "type": "collection", "entry": self.entries()}


def source_id(client: SourceClient, reference: Any, resource_type: str | None = None) -> tuple[str, str] | None:
    """(type, id) of a reference to the source (relative or absolute on its base), else None."""
    value = reference.get("reference") if isinstance(reference, dict) else None
    if not isinstance(value, str):
        return None
    if value.startswith(client.config.root + "/"):
        value = value[len(client.config.root) + 1 :]
    match = RELATIVE.match(value)
    if match is None or (resource_type is not None and match.group(1) != resource_type):
        return None
    return match.group(1), match.group(2)


def find_encounter(
    client: SourceClient, encounter_id: str | None = None, identifier: str | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    """The Encounter by id or by ``system|value`` identifier (exactly one match), and its
    Procedures when the source offers ``_revinclude=Procedure:encounter`` (else None)."""
    revinclude = client.offers_revinclude("Encounter", "Procedure:encounter")
    if encounter_id is not None and not revinclude:
        found = client.read("Encounter", encounter_id)
        if found is None:
            raise NotOnSource("the source has no such Encounter")
        return found, None
    params = [("_id", encounter_id)] if encounter_id is not None else [("identifier", identifier or "")]
    if revinclude:
        params.append(("_revinclude", "Procedure:encounter"))
    results = client.search("Encounter", params)
    matches = [r for r in results if r.get("resourceType") == "Encounter"]
    if len(matches) != 1:
        raise NotOnSource(f"the source has {len(matches)} Encounters for that reference")
    return matches[0], [r for r in results if r.get("resourceType") == "Procedure"] if revinclude else None


def gather(
    client: SourceClient,
    encounter: dict[str, Any],
    *,
    observation_codes: tuple[str, ...],
    procedures: list[dict[str, Any]] | None = None,
    skip: frozenset[str] = frozenset(),
    have: Callable[[str, str], bool] = lambda _t, _i: False,
    fetch_encounter: bool = True,
) -> Gathered:
    """Fetch what the Encounter's claim needs.  ``procedures`` are its Procedures when known
    (else searched); ``have(type, id)`` tells what the caller holds already; ``fetch_encounter``
    false when the caller has the Encounter itself (fill)."""
    got = Gathered(client.config.root)
    if fetch_encounter:
        got.add(client, "encounter", [encounter])
    encounter_id = str(encounter.get("id"))
    patient = source_id(client, encounter.get("subject"), "Patient")
    if patient is None:
        raise NotOnSource("the Encounter's subject is not a Patient on the source")

    def held(resource_type: str, resource_id: str) -> bool:
        return got.has(resource_type, resource_id) or have(resource_type, resource_id)

    if procedures is None:
        procedures = client.search("Procedure", {"encounter": f"Encounter/{encounter_id}"})
    if fetch_encounter:
        got.add(client, "procedures", procedures)
    if not held(*patient):
        found = client.read(*patient)
        if found is None:
            raise NotOnSource("the Encounter's patient is not on the source")
        got.add(client, "patient", [found])

    service_date = _service_date(encounter, procedures)
    steps: dict[str, Callable[[], None]] = {
        "conditions": lambda: _conditions(client, got, patient[1], encounter, procedures, held),
        "medications": lambda: _medications(client, got, patient[1], held),
        "observations": lambda: _observations(client, got, patient[1], observation_codes, service_date),
        "coverage": lambda: _coverage(client, got, patient[1], held),
        "performers": lambda: _performers(client, got, encounter, procedures, held),
        "organization": lambda: _follow(client, got, "organization", [encounter.get("serviceProvider")], held),
        "plan-of-care": lambda: _follow(client, got, "plan-of-care", _refs([encounter, *procedures], "basedOn"), held),
        "devices": lambda: _follow(client, got, "devices", _device_refs(procedures), held),
    }
    for category in CATEGORIES:
        if category in skip:
            continue
        try:
            steps[category]()
        except SourceError as error:
            got.failures[category] = error.reason
    return got


def _refs(resources: Iterable[dict[str, Any]], element: str) -> list[Any]:
    found: list[Any] = []
    for resource in resources:
        value = resource.get(element)
        found += value if isinstance(value, list) else [value]
    return found


def _follow(
    client: SourceClient, got: Gathered, category: str, references: Iterable[Any], held: Callable[[str, str], bool]
) -> None:
    """Read each referenced resource that is on the source and not held yet."""
    for reference in references:
        target = source_id(client, reference)
        if target is None or held(*target):
            continue
        found = client.read(*target)
        if found is not None:
            got.add(client, category, [found])


def _conditions(
    client: SourceClient,
    got: Gathered,
    patient_id: str,
    encounter: dict[str, Any],
    procedures: list[dict[str, Any]],
    held: Callable[[str, str], bool],
) -> None:
    got.add(client, "conditions", client.search("Condition", {"patient": f"Patient/{patient_id}"}))
    diagnoses = [d.get("condition") for d in encounter.get("diagnosis") or [] if isinstance(d, dict)]
    reasons = _refs([encounter, *procedures], "reasonReference")
    _follow(client, got, "conditions", [*diagnoses, *reasons], held)  # diagnoses of another subject, if any


def _medications(client: SourceClient, got: Gathered, patient_id: str, held: Callable[[str, str], bool]) -> None:
    for resource_type in ("MedicationStatement", "MedicationRequest"):
        params = [("patient", f"Patient/{patient_id}")]
        if client.offers_include(resource_type, f"{resource_type}:medication"):
            params.append(("_include", f"{resource_type}:medication"))
        got.add(client, "medications", client.search(resource_type, params))
    orders = got.of_type("MedicationStatement", "MedicationRequest")
    _follow(client, got, "medications", [r.get("medicationReference") for r in orders], held)


def _observations(
    client: SourceClient, got: Gathered, patient_id: str, codes: tuple[str, ...], service_date: str | None
) -> None:
    if not codes:
        return
    params = [("patient", f"Patient/{patient_id}"), ("code", ",".join(codes))]
    if service_date is not None:
        params.append(("date", f"le{service_date}"))
    got.add(client, "observations", client.search("Observation", params))


def _coverage(client: SourceClient, got: Gathered, patient_id: str, held: Callable[[str, str], bool]) -> None:
    got.add(client, "coverage", client.search("Coverage", {"beneficiary": f"Patient/{patient_id}", "status": "active"}))
    _follow(client, got, "coverage", _refs(got.of_type("Coverage"), "payor"), held)


def _performers(
    client: SourceClient,
    got: Gathered,
    encounter: dict[str, Any],
    procedures: list[dict[str, Any]],
    held: Callable[[str, str], bool],
) -> None:
    people = [p.get("individual") for p in encounter.get("participant") or [] if isinstance(p, dict)]
    for procedure in procedures:
        for performer in procedure.get("performer") or []:
            if isinstance(performer, dict):
                people += [performer.get("actor"), performer.get("onBehalfOf")]
    _follow(client, got, "performers", people, held)
    roles = got.of_type("PractitionerRole")
    _follow(client, got, "performers", [*_refs(roles, "practitioner"), *_refs(roles, "organization")], held)


def _device_refs(procedures: list[dict[str, Any]]) -> list[Any]:
    found = _refs(procedures, "usedReference")
    for procedure in procedures:
        found += [d.get("manipulated") for d in procedure.get("focalDevice") or [] if isinstance(d, dict)]
    return found


def _service_date(encounter: dict[str, Any], procedures: list[dict[str, Any]]) -> str | None:
    """The latest local date a procedure (else the Encounter) started: observations up to it count."""
    starts = []
    for procedure in procedures:
        period = procedure.get("performedPeriod")
        value = period.get("start") if isinstance(period, dict) else procedure.get("performedDateTime")
        if isinstance(value, str) and len(value) >= 10:
            starts.append(value[:10])
    period = encounter.get("period")
    if not starts and isinstance(period, dict):
        starts += [v[:10] for v in (period.get("end"), period.get("start")) if isinstance(v, str) and len(v) >= 10]
    return max(starts) if starts else None
