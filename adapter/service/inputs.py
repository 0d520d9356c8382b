"""The inputs of ``$from-encounter`` as stored resources: every entry of a type the server stores
gets an id (its own, else one derived from its fullUrl), and every reference to an entry becomes
``Type/id``, so each reference of the Claim, its Provenance and DetectedIssues resolves here."""

from __future__ import annotations

import uuid
from typing import Any

from adapter.digest import canonical_digest, name_uuid
from adapter.errors import Problem
from adapter.intake.bindings import code_binding_problems
from adapter.intake.slim import FHIR_ID
from adapter.service.capability import INPUT_TYPES

ID_NAMESPACE = uuid.UUID("d8e8f1a4-7c51-4a0c-b9f5-5f4b2c4b1e77").bytes  # the same as transactions' POST ids


def rewrite_references(value: Any, targets: dict[str, str]) -> Any:
    """Every ``reference`` found in ``targets`` replaced by its new value."""
    if isinstance(value, dict):
        return {
            k: (targets.get(v, v) if k == "reference" and isinstance(v, str) else rewrite_references(v, targets))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [rewrite_references(v, targets) for v in value]
    return value


def derived_id(resource_type: str, seed: str) -> str:
    return name_uuid(ID_NAMESPACE, f"{resource_type}|{seed}")


def storable_visit(
    document: dict[str, Any],
) -> tuple[dict[str, Any], tuple[dict[str, Any], ...], list[Problem]]:
    """The Bundle to convert (ids given, references rewritten), the input resources to store, and
    every code of those outside its required value set (whatever the validation level: nothing
    that breaks a required binding is stored).  Entries that are not objects with a resource are
    left for intake to report.
    """
    raw = document.get("entry")
    if document.get("resourceType") != "Bundle" or not isinstance(raw, list):
        return document, (), []
    targets: dict[str, str] = {}
    entries: list[Any] = []
    for entry in raw:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        rtype = resource.get("resourceType") if isinstance(resource, dict) else None
        if not isinstance(resource, dict) or rtype not in INPUT_TYPES:
            entries.append(entry)
            continue
        full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        rid = resource.get("id")
        if rid is None:
            rid = derived_id(str(rtype), full_url or canonical_digest(resource))
            resource = {"resourceType": rtype, "id": rid} | {k: v for k, v in resource.items() if k != "resourceType"}
        if full_url and isinstance(rid, str):
            targets[full_url] = f"{rtype}/{rid}"
        entries.append(entry | {"resource": resource})
    rewritten = rewrite_references(document | {"entry": entries}, targets)
    stored: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for i, entry in enumerate(rewritten["entry"]):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") not in INPUT_TYPES:
            continue
        problems += code_binding_problems(resource, f"Bundle.entry[{i}].resource")
        if isinstance(resource.get("id"), str) and FHIR_ID.match(resource["id"]):
            stored.append(resource)
    return rewritten, tuple(stored), problems
