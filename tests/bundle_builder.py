"""Builds small, valid FHIR R4 visit Bundles for tests and golden cases.

Each helper returns plain dicts; a test changes one element to make the case it needs.
No real patient data: names and identifiers are invented.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

CPT = "http://www.ama-assn.org/go/cpt"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SOPT = "https://nahdo.org/sopt"
TECHNIQUE = "https://theraclaim.org/fhir/CodeSystem/technique"
PAYER_TYPES = {"medicare": "1", "commercial": "5", "unmatched": "9"}
SESSION_START = "2025-01-14T09:00:00-05:00"


def procedure(
    code: str,
    minutes: int | None,
    *,
    start: str = "2025-01-14T09:00:00-05:00",
    proc_id: str | None = None,
    system: str = CPT,
    status: str = "completed",
    encounter: str = "Encounter/enc-1",
    performer: str | None = "Practitioner/pt-1",
    body_site: tuple[str, str] | None = None,
    reasons: tuple[str, ...] = (),
    performed: str | None = None,
    status_reason: str | None = None,
) -> dict[str, Any]:
    """A Procedure; ``minutes`` gives a performedPeriod from ``start``, ``performed`` a performedDateTime."""
    resource: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": proc_id or f"proc-{code}",
        "status": status,
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": "Patient/pat-1"},
        "encounter": {"reference": encounter},
    }
    if status_reason:
        resource["statusReason"] = {"text": status_reason}
    if performed is not None:
        resource["performedDateTime"] = performed
    if minutes is not None:
        begin = datetime.fromisoformat(start)
        resource["performedPeriod"] = {
            "start": begin.isoformat(),
            "end": (begin + timedelta(minutes=minutes)).isoformat(),
        }
    if performer:
        resource["performer"] = [{"actor": {"reference": performer}}]
    if body_site:
        resource["bodySite"] = [{"coding": [{"system": SNOMED, "code": body_site[0], "display": body_site[1]}]}]
    if reasons:
        resource["reasonReference"] = [{"reference": r} for r in reasons]
    return resource


def condition(cond_id: str, icd: str, display: str, *, clinical: str = "active") -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cond_id,
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": clinical}]
        },
        "code": {"coding": [{"system": ICD10CM, "code": icd, "display": display}]},
        "subject": {"reference": "Patient/pat-1"},
    }


def encounter(
    enc_id: str = "enc-1",
    *,
    status: str = "finished",
    diagnoses: tuple[str, ...] = ("Condition/dx-1",),
    start: str = "2025-01-14T08:55:00-05:00",
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": enc_id,
        "identifier": [{"system": "urn:example:visit", "value": f"V-{enc_id}"}],
        "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/pat-1"},
        "period": {"start": start},
        "serviceProvider": {"reference": "Organization/org-1"},
        "basedOn": [{"reference": "ServiceRequest/poc-1"}],
    }
    if diagnoses:
        resource["diagnosis"] = [{"condition": {"reference": d}, "rank": i} for i, d in enumerate(diagnoses, 1)]
    return resource


PHYSICAL_THERAPIST = "225100000X"
NUCC = "http://nucc.org/provider-taxonomy"


def practitioner(practitioner_id: str, taxonomy: str | None) -> dict[str, Any]:
    """A rendering practitioner with an NPI and, when given, an NUCC taxonomy qualification."""
    resource: dict[str, Any] = {
        "resourceType": "Practitioner",
        "id": practitioner_id,
        "name": [{"family": "Therapist"}],
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1245319599"}],
    }
    if taxonomy:
        resource["qualification"] = [{"code": {"coding": [{"system": NUCC, "code": taxonomy}]}}]
    return resource


def plan_of_care(
    plan_id: str = "poc-1", *, start: str = "2025-01-01", end: str = "2025-03-31", category: str = "91251008"
) -> dict[str, Any]:
    """A physical therapy plan of care (ServiceRequest) covering the visits of the golden cases."""
    return {
        "resourceType": "ServiceRequest",
        "id": plan_id,
        "status": "active",
        "intent": "plan",
        "category": [{"coding": [{"system": SNOMED, "code": category}]}],
        "code": {"coding": [{"system": SNOMED, "code": "91251008", "display": "Physical therapy procedure"}]},
        "subject": {"reference": "Patient/pat-1"},
        "occurrencePeriod": {"start": start, "end": end},
    }


def base_resources(payer: str = "medicare") -> list[dict[str, Any]]:
    return [
        {
            "resourceType": "Patient",
            "id": "pat-1",
            "name": [{"family": "Example", "given": ["Pat"]}],
            "birthDate": "1950-02-03",
        },
        {
            "resourceType": "Organization",
            "id": "org-1",
            "name": "Example Therapy Clinic",
            "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}],
        },
        practitioner("pt-1", PHYSICAL_THERAPIST),
        {
            "resourceType": "Coverage",
            "id": "cov-1",
            "status": "active",
            "type": {"coding": [{"system": SOPT, "code": PAYER_TYPES[payer]}]},
            "beneficiary": {"reference": "Patient/pat-1"},
            "payor": [{"identifier": {"system": "urn:example:payer-id", "value": payer.upper()}}],
        },
        condition("dx-1", "M54.50", "Low back pain, unspecified"),
    ]


def bundle(*resources: dict[str, Any], bundle_type: str = "collection") -> dict[str, Any]:
    entries = []
    for resource in resources:
        entry: dict[str, Any] = {
            "fullUrl": f"http://ehr.example.org/fhir/{resource['resourceType']}/{resource['id']}",
            "resource": resource,
        }
        if bundle_type in ("transaction", "batch"):
            entry["request"] = {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}
        entries.append(entry)
    return {"resourceType": "Bundle", "type": bundle_type, "entry": entries}


def visit(*procedures: dict[str, Any], payer: str = "medicare", **encounter_args: Any) -> dict[str, Any]:
    """A one-encounter Bundle: the base resources, the Encounter, the Procedures, then the plan of care."""
    return bundle(*base_resources(payer), encounter(**encounter_args), *procedures, plan_of_care())


def back_to_back(
    *services: tuple[str, int] | tuple[str, int, str],
    start: str = SESSION_START,
    encounter: str = "Encounter/enc-1",
    id_prefix: str = "proc",
) -> list[dict[str, Any]]:
    """Timed Procedures one after the other from ``start`` (no overlap), as (code, minutes[, system]).

    Ids are ``<prefix>-<code>``, numbered when a code repeats, so the order of the arguments is the
    order of the start times (which is what the CMS tie-break "earlier start" looks at).
    """
    result = []
    at = datetime.fromisoformat(start)
    seen: dict[str, int] = {}
    for service in services:
        code, minutes = service[0], service[1]
        system = service[2] if len(service) > 2 else CPT
        seen[code] = seen.get(code, 0) + 1
        proc_id = f"{id_prefix}-{code}" + (f"-{seen[code]}" if seen[code] > 1 else "")
        result.append(
            procedure(code, minutes, start=at.isoformat(), proc_id=proc_id, system=system, encounter=encounter)
        )
        at += timedelta(minutes=minutes)
    return result


def _rewrite_references(node: Any, urls: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            key: urls.get(value, value)
            if key == "reference" and isinstance(value, str)
            else _rewrite_references(value, urls)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_references(item, urls) for item in node]
    return node


def urn_transaction(resources: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """A transaction Bundle the way an EHR posts new data: no ids, urn:uuid fullUrls and references.

    Each resource's ``Type/id`` becomes a stable ``urn:uuid:`` (uuid5 of it), every reference to it is
    rewritten, and each entry gets ``request: POST <Type>``.
    """
    resources = list(resources)
    keys = [f"{r['resourceType']}/{r['id']}" for r in resources]
    urls = {key: f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, key)}" for key in keys}
    entries = []
    for resource in resources:
        url = urls[f"{resource['resourceType']}/{resource['id']}"]
        body = _rewrite_references({k: v for k, v in resource.items() if k != "id"}, urls)
        entries.append(
            {"fullUrl": url, "resource": body, "request": {"method": "POST", "url": resource["resourceType"]}}
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


# --- payer-edit inputs (issue 5): sender modifiers, year-to-date amounts, devices, plans ------------

MODIFIER_URL = "https://theraclaim.org/fhir/StructureDefinition/procedure-modifier"
YEAR_TO_DATE_URL = "https://theraclaim.org/fhir/StructureDefinition/therapy-year-to-date"
MASSAGE_DEVICE = "https://theraclaim.org/fhir/CodeSystem/massage-device"


def find(document: dict[str, Any], resource_type: str, resource_id: str) -> dict[str, Any]:
    """The resource ``resource_type/resource_id`` of a Bundle built here (to change one element)."""
    for entry in document["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == resource_type and resource.get("id") == resource_id:
            return resource  # type: ignore[no-any-return]
    raise KeyError(f"{resource_type}/{resource_id}")


def with_modifiers(resource: dict[str, Any], *codes: str) -> dict[str, Any]:
    """A Procedure carrying modifiers the sender attached (procedure-modifier extension, valueCode)."""
    resource.setdefault("extension", []).extend({"url": MODIFIER_URL, "valueCode": code} for code in codes)
    return resource


def with_year_to_date(coverage: dict[str, Any], *, pt_slp: float | None = None, ot: float | None = None) -> None:
    """Adds the therapy amounts allowed so far this year to a Coverage (therapy-year-to-date extension)."""
    parts = [
        {"url": url, "valueMoney": {"value": value, "currency": "USD"}}
        for url, value in (("pt-slp", pt_slp), ("ot", ot))
        if value is not None
    ]
    coverage.setdefault("extension", []).append({"url": YEAR_TO_DATE_URL, "extension": parts})


def device(device_id: str, code: str, display: str) -> dict[str, Any]:
    """A Device whose type is a massage device code (https://theraclaim.org/fhir/CodeSystem/massage-device)."""
    return {
        "resourceType": "Device",
        "id": device_id,
        "status": "active",
        "type": {"coding": [{"system": MASSAGE_DEVICE, "code": code, "display": display}]},
    }


def care_plan(
    plan_id: str = "cp-1", *, start: str = "2025-01-01", end: str = "2025-03-31", category: str = "91251008"
) -> dict[str, Any]:
    """A plan of care as a CarePlan (period), the alternative to plan_of_care()'s ServiceRequest."""
    return {
        "resourceType": "CarePlan",
        "id": plan_id,
        "status": "active",
        "intent": "plan",
        "category": [{"coding": [{"system": SNOMED, "code": category}]}],
        "subject": {"reference": "Patient/pat-1"},
        "period": {"start": start, "end": end},
    }
