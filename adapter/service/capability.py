"""The CapabilityStatement and the OperationDefinition of ``$from-encounter``: what the server really does."""

from __future__ import annotations

from typing import Any

from adapter.service.auth.capability import AUDIT_EVENT, document_scopes, security_component
from adapter.service.search_params import INPUT_TYPES as INPUT_TYPES  # re-exported: the stored input types
from adapter.service.search_params import REFERENCE, SEARCH_PARAMS, params_of
from adapter.version import __version__

BASE = "https://theraclaim.org/fhir"
OPERATION_URL = f"{BASE}/OperationDefinition/claim-from-encounter"
# Resource types the server stores and reads; the outputs also support search.
OUTPUT_TYPES = ("Claim", "DetectedIssue", "Provenance")
VALIDATE_TYPES = ("Bundle", "Claim", "Encounter", "Procedure", "Condition")
RESULT_PARAMS_DOC = (
    "Result parameters: _count (at most 1000), _sort (_id, _lastUpdated or a date parameter; - descends), "
    "_include, _revinclude, _summary (true, false, count, data), _elements, _total (none, estimate, accurate). "
    "Reference parameters take id, Type/id or an absolute URL on this base and the :[type] and :missing "
    "modifiers; tokens take code, system|code, |code, system| and :not, :missing; dates every precision and "
    "the prefixes eq ne gt lt ge le sa eb ap. Comma is OR, a repeated parameter AND. Anything else is 400 "
    "unless Prefer: handling=lenient. POST [type]/_search takes the same parameters as a form body."
)


# Deliveries downstream (adapter/service/delivery/tasks.py): one Task per Claim version per destination.
TASK_RESOURCE: dict[str, Any] = {
    "type": "Task",
    "interaction": [{"code": "read"}, {"code": "search-type"}],
    "searchParam": [
        {"name": "_id", "type": "token", "documentation": "logical id"},
        {"name": "focus", "type": "reference", "documentation": "the Claim, or Claim version, delivered"},
        {"name": "status", "type": "token", "documentation": "requested | in-progress | completed | failed"},
    ],
    "operation": [{"name": "retry", "definition": "https://theraclaim.org/fhir/OperationDefinition/task-retry"}],
}


def _search_params(resource_type: str) -> list[dict[str, str]]:
    return [
        {"name": p.name, "type": p.type, "documentation": p.documentation} for p in params_of(resource_type).values()
    ]


def _includes(resource_type: str) -> list[str]:
    return [f"{resource_type}:{p.name}" for p in SEARCH_PARAMS.get(resource_type, ()) if p.type == REFERENCE]


def _revincludes(resource_type: str) -> list[str]:
    return [
        f"{source}:{p.name}"
        for source, params in SEARCH_PARAMS.items()
        for p in params
        if p.type == REFERENCE and resource_type in p.targets
    ]


def capability_statement(now_iso: str, token_url: str) -> dict[str, Any]:
    resources = []
    for resource_type in OUTPUT_TYPES + INPUT_TYPES:
        entry: dict[str, Any] = {
            "type": resource_type,
            "versioning": "versioned",
            "readHistory": True,
            "interaction": [
                {"code": "read"},
                {"code": "vread"},
                {"code": "history-instance"},
                {"code": "history-type"},
                {"code": "search-type"},
            ],
            "conditionalRead": "full-support",
            "searchParam": _search_params(resource_type),
        }
        for key, values in (
            ("searchInclude", _includes(resource_type)),
            ("searchRevInclude", _revincludes(resource_type)),
        ):
            if values:
                entry[key] = values
        if resource_type == "Claim":
            entry["operation"] = [{"name": "from-encounter", "definition": OPERATION_URL}]
        if resource_type in VALIDATE_TYPES:
            entry.setdefault("operation", []).append(
                {"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"}
            )
        resources.append(entry)
    resources.append(TASK_RESOURCE)
    resources.append(AUDIT_EVENT)
    resources.append(
        {  # no interaction on Bundle: FHIR JSON forbids an empty array, so the element is left out
            "type": "Bundle",
            "operation": [
                {"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"}
            ],
        }
    )
    statement: dict[str, Any] = {
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
                "batch Bundle to the base URL; read and search the Claims and DetectedIssues made. "
                + RESULT_PARAMS_DOC,
                "resource": resources,
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
                "security": security_component(token_url),
            }
        ],
    }
    document_scopes(statement["rest"][0])
    return statement


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
