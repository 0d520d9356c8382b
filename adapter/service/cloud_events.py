"""Cloud FHIR services' change events, read into (dedup key, Encounter id) pairs.

- Azure Health Data Services FHIR events, delivered by Event Grid to a webhook: a JSON array of
  events (Event Grid schema: ``eventType`` ``Microsoft.HealthcareApis.FhirResourceCreated`` /
  ``Updated``; CloudEvents schema: ``type``), ``data`` naming the resource (``resourceType`` /
  ``resourceFhirId``, or ``fhirResourceType`` / ``fhirResourceId``).  Event Grid first proves the
  endpoint with a ``Microsoft.EventGrid.SubscriptionValidationEvent`` whose ``validationCode`` is
  echoed back.
- Google Cloud Healthcare FHIR store notifications, pushed by Pub/Sub: ``message.attributes``
  (``action``, ``resourceType``) and ``message.data``, the base64 resource name
  ``projects/…/fhirStores/…/fhir/Encounter/<id>`` (or, with ``sendFullResource``, the resource).

Only created and updated Encounters count; deletions and other types are acknowledged and dropped.
Neither service numbers its events, so there is no gap detection: each event's id makes a
redelivery a no-op, and the worker checks the Encounter is finished when it pulls it.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

import orjson

from adapter.intake.slim import FHIR_ID

AZURE_CHANGES = ("Microsoft.HealthcareApis.FhirResourceCreated", "Microsoft.HealthcareApis.FhirResourceUpdated")
AZURE_VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"
GOOGLE_CHANGES = ("CreateResource", "UpdateResource", "PatchResource")
GOOGLE_NAME = re.compile(r"/fhir/Encounter/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?\Z")


@dataclass(frozen=True, slots=True)
class CloudEvents:
    pulls: tuple[tuple[str, str], ...]  # (event key, Encounter id)
    ignored: int
    validation_code: str | None = None  # Event Grid's handshake: answer {"validationResponse": code}


def is_azure(document: Any) -> bool:
    return isinstance(document, list) and all(
        isinstance(e, dict) and ("eventType" in e or "specversion" in e) for e in document
    )


def is_google(document: Any) -> bool:
    return (
        isinstance(document, dict) and isinstance(document.get("message"), dict) and "attributes" in document["message"]
    )


def read_azure(events: list[dict[str, Any]]) -> CloudEvents:
    pulls, ignored = [], 0
    for event in events:
        kind = event.get("eventType") or event.get("type")
        raw = event.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if kind == AZURE_VALIDATION and isinstance(data.get("validationCode"), str):
            return CloudEvents((), 0, data["validationCode"][:200])
        rtype = data.get("resourceType") or data.get("fhirResourceType")
        rid = data.get("resourceFhirId") or data.get("fhirResourceId")
        key = event.get("id")
        if kind in AZURE_CHANGES and rtype == "Encounter" and _is_id(rid) and isinstance(key, str) and key:
            pulls.append((f"azure#{key[:200]}", str(rid)))
        else:
            ignored += 1
    return CloudEvents(tuple(pulls), ignored)


def read_google(push: dict[str, Any]) -> CloudEvents:
    message = push["message"]
    raw = message.get("attributes")
    attributes: dict[str, Any] = raw if isinstance(raw, dict) else {}
    key = message.get("messageId") or message.get("message_id")
    if attributes.get("action") not in GOOGLE_CHANGES or attributes.get("resourceType") != "Encounter":
        return CloudEvents((), 1)
    encounter = _google_encounter(message.get("data"))
    if encounter is None or not isinstance(key, str) or not key:
        return CloudEvents((), 1)
    return CloudEvents(((f"google#{key[:200]}", encounter),), 0)


def _google_encounter(data: Any) -> str | None:
    if not isinstance(data, str):
        return None
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None
    if decoded.lstrip().startswith(b"{"):  # sendFullResource: the resource itself
        try:
            resource = orjson.loads(decoded)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(resource, dict) or resource.get("status") != "finished":
            return None
        rid = resource.get("id")
        return str(rid) if _is_id(rid) else None
    match = GOOGLE_NAME.search(decoded.decode("ascii", errors="replace"))
    return match.group(1) if match else None


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and FHIR_ID.match(value) is not None
