"""The CapabilityStatement and the OperationDefinition of ``$from-encounter``: what the server really does."""

from __future__ import annotations

from typing import Any

from adapter.version import __version__

BASE = "https://theraclaim.org/fhir"
OPERATION_URL = f"{BASE}/OperationDefinition/claim-from-encounter"
# Resource types the server stores and reads; the outputs also support search.
OUTPUT_TYPES = ("Claim", "DetectedIssue", "Provenance")
INPUT_TYPES = (
    "Encounter",
    "Procedure",
    "Condition",
    "Coverage",
    "Patient",
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "MedicationStatement",
    "MedicationRequest",
    "Medication",
    "Observation",
    "ServiceRequest",
    "CarePlan",
    "BodyStructure",
)
VALIDATE_TYPES = ("Bundle", "Claim", "Encounter", "Procedure", "Condition")
SEARCH_PARAMS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "Claim": (
        ("encounter", "reference", "Encounters the Claim's items refer to"),
        ("patient", "reference", "Claim.patient"),
        ("status", "token", "Claim.status"),
    ),
    "DetectedIssue": (("patient", "reference", "DetectedIssue.patient"), ("status", "token", "DetectedIssue.status")),
}
COMMON_PARAMS = (("_id", "token", "logical id"), ("_lastUpdated", "date", "meta.lastUpdated (gt, ge, lt, le, eq)"))


def _search_params(resource_type: str) -> list[dict[str, str]]:
    params = SEARCH_PARAMS.get(resource_type, ()) + COMMON_PARAMS
    return [{"name": name, "type": kind, "documentation": doc} for name, kind, doc in params]


def capability_statement(now_iso: str) -> dict[str, Any]:
    resources = []
    for resource_type in OUTPUT_TYPES + INPUT_TYPES:
        entry: dict[str, Any] = {
            "type": resource_type,
            "versioning": "versioned",
            "readHistory": True,
            "interaction": [{"code": "read"}, {"code": "vread"}, {"code": "history-instance"}, {"code": "search-type"}],
            "searchParam": _search_params(resource_type),
        }
        if resource_type == "Claim":
            entry["operation"] = [{"name": "from-encounter", "definition": OPERATION_URL}]
        if resource_type in VALIDATE_TYPES:
            entry.setdefault("operation", []).append(
                {"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"}
            )
        resources.append(entry)
    resources.append(
        {  # no interaction on Bundle: FHIR JSON forbids an empty array, so the element is left out
            "type": "Bundle",
            "operation": [
                {"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"}
            ],
        }
    )
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": now_iso,
        "publisher": "theraclaim",
        "kind": "instance",
        "software": {"name": "theraclaim", "version": __version__},
        "implementation": {
            "description": "theraclaim FHIR R4 claims adapter (massage and manual therapy). "
            "JSON only: FHIR XML requests are answered with 406."
        },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Push finished therapy encounters to Claim/$from-encounter, or as a transaction or "
                "batch Bundle to the base URL; read and search the Claims and DetectedIssues made.",
                "resource": resources,
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
                "operation": [{"name": "from-encounter", "definition": OPERATION_URL}],
            }
        ],
    }


def operation_definition() -> dict[str, Any]:
    return {
        "resourceType": "OperationDefinition",
        "id": "claim-from-encounter",
        "url": OPERATION_URL,
        "version": __version__,
        "name": "ClaimFromEncounter",
        "status": "active",
        "kind": "operation",
        "code": "from-encounter",
        "resource": ["Claim"],
        "system": False,
        "type": True,
        "instance": False,
        "description": "Converts the finished Encounters of a Bundle into Claims (CPT 97124/97140 and the other "
        "timed therapy codes of the visit), screens for contraindications and stores the result. "
        "201 when a Claim or a new version was stored, 200 when an identical Claim existed, 422 "
        "when the input is invalid or nothing is billable.",
        "parameter": [
            {
                "name": "bundle",
                "use": "in",
                "min": 1,
                "max": "1",
                "type": "Bundle",
                "documentation": "collection, transaction, batch, searchset or message Bundle with the visit",
            },
            {
                "name": "payer",
                "use": "in",
                "min": 0,
                "max": "1",
                "type": "string",
                "documentation": "payer rule pack id, overriding the match on the Coverage",
            },
            {
                "name": "return",
                "use": "out",
                "min": 1,
                "max": "1",
                "type": "Bundle",
                "documentation": "collection with the Claims, DetectedIssues, Provenance and an OperationOutcome",
            },
        ],
    }
