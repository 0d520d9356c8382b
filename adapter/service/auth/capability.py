"""What the CapabilityStatement says about security: SMART on FHIR, the token endpoint, and the
scope each interaction needs (so a client can ask for exactly what it will use)."""

from __future__ import annotations

from typing import Any

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SERVICE_SYSTEM = "http://terminology.hl7.org/CodeSystem/restful-security-service"
INTERACTION_ACTION = {
    "read": "r",
    "vread": "r",
    "history-instance": "r",
    "history-type": "r",
    "search-type": "s",
    "create": "c",
    "update": "u",
    "patch": "u",
    "delete": "d",
}
OPERATION_SCOPES = {
    "from-encounter": "system/<type>.c for every type it stores: Claim, DetectedIssue, Provenance and the "
    "types of the visit's resources (and .u on each to change a stored one)",
    "validate": "any valid access token (nothing is stored)",
}


# The audit trail's entry of the CapabilityStatement (served by auth/audit_api.py).
AUDIT_EVENT: dict[str, Any] = {
    "type": "AuditEvent",
    "interaction": [{"code": "read"}, {"code": "search-type"}],
    "searchParam": [
        {"name": "date", "type": "date", "documentation": "AuditEvent.recorded (every precision and prefix)"},
        {"name": "agent", "type": "token", "documentation": "the requesting client's client_id"},
        {"name": "entity", "type": "reference", "documentation": "a resource the event names"},
        {"name": "outcome", "type": "token", "documentation": "0, 4, 8 or 12"},
    ],
}


def security_component(token_url: str) -> dict[str, Any]:
    return {
        "extension": [{"url": OAUTH_URIS, "extension": [{"url": "token", "valueUri": token_url}]}],
        "cors": False,
        "service": [{"coding": [{"system": SERVICE_SYSTEM, "code": "SMART-on-FHIR", "display": "SMART-on-FHIR"}]}],
        "description": "SMART App Launch 2.x Backend Services: POST a private_key_jwt client assertion (RS384 or "
        "ES384) to the token endpoint for a bearer token with system scopes (v2 system/Claim.rs or v1 "
        "system/Claim.read). A client registered for an organization sees only that billing provider's data.",
    }


def document_scopes(rest: dict[str, Any]) -> None:
    """Add to every interaction and operation of ``rest`` the scope it needs."""
    for resource in rest.get("resource", []):
        for interaction in resource.get("interaction", []):
            action = INTERACTION_ACTION.get(interaction["code"])
            if action:
                interaction["documentation"] = f"needs system/{resource['type']}.{action}"
        for operation in resource.get("operation", []):
            if operation["name"] in OPERATION_SCOPES:
                operation["documentation"] = f"needs {OPERATION_SCOPES[operation['name']]}"
    for interaction in rest.get("interaction", []):
        if interaction["code"] in ("transaction", "batch"):
            interaction["documentation"] = (
                "needs system/<type>.c for each type written (.u to change a stored resource) and the scopes "
                "of $from-encounter for the Claims made"
            )
