"""Builds small, valid FHIR R4 visit Bundles for tests and golden cases.

Each helper returns plain dicts; a test changes one element to make the case it needs.
No real patient data: names and identifiers are invented.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

CPT = "http://www.ama-assn.org/go/cpt"
SNOMED = "http://snomed.info/sct"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
SOPT = "https://nahdo.org/sopt"
PAYER_TYPES = {"medicare": "1", "commercial": "5", "unmatched": "9"}


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
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": proc_id or f"proc-{code}",
        "status": status,
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": {"reference": "Patient/pat-1"},
        "encounter": {"reference": encounter},
    }
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
    }
    if diagnoses:
        resource["diagnosis"] = [{"condition": {"reference": d}, "rank": i} for i, d in enumerate(diagnoses, 1)]
    return resource


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
        {
            "resourceType": "Practitioner",
            "id": "pt-1",
            "name": [{"family": "Therapist"}],
            "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1245319599"}],
        },
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
    """A one-encounter Bundle with the base resources and the given Procedures."""
    return bundle(*base_resources(payer), encounter(**encounter_args), *procedures)
