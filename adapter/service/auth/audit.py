"""The audit recorder: one FHIR R4 AuditEvent per request that touches data or is refused.

A write records its AuditEvent inside the write's own transaction (``record_in``), so the two
commit or roll back together; every other request (reads, searches, refusals, failed writes) is
recorded once the response is known (``record_after``).  ``AuditContext.recorded`` makes sure a
request never leaves two.  AuditEvents hold references and the search query, never content.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import insert
from sqlalchemy.engine import Connection

from adapter.service.store import Store, audit_event

EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
INTERACTION = "http://hl7.org/fhir/restful-interaction"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
CLIENT_ID_SYSTEM = "https://theraclaim.org/fhir/sid/client-id"
OPERATION_SYSTEM = "https://theraclaim.org/fhir/OperationDefinition"
# restful-interaction code -> AuditEvent.action (C create, R read/view, U update, D delete, E execute)
ACTIONS = {
    "read": "R",
    "vread": "R",
    "history-instance": "R",
    "history-type": "R",
    "search-type": "E",
    "create": "C",
    "update": "U",
    "delete": "D",
    "transaction": "E",
    "batch": "E",
    "operation": "E",
}


def outcome_of(status: int) -> str:
    """AuditEvent.outcome: 0 success, 4 minor failure (refused, not found, bad input), 8 serious (ours)."""
    if status < 400:
        return "0"
    return "4" if status < 500 else "8"


@dataclass
class AuditContext:
    """What a request did, filled in by its handler; the recorder turns it into one AuditEvent."""

    interaction: str = "operation"
    operation: str | None = None  # e.g. "from-encounter"
    entities: list[str] = field(default_factory=list)  # references read or written
    query: str | None = None  # the search's query string (kept in the database only)
    client_id: str | None = None
    address: str | None = None
    login: bool = False  # a token request (DICOM 110114 user authentication)
    recorded: bool = False


class AuditRecorder:
    def __init__(self, store: Store, observer: str = "theraclaim") -> None:
        self.store = store
        self.observer = observer

    def record_in(self, connection: Connection, context: AuditContext, status: int, description: str = "") -> None:
        """Record inside the caller's transaction (a write): committed with the data or not at all."""
        connection.execute(insert(audit_event), self.row(context, status, description))
        context.recorded = True

    def row(self, context: AuditContext, status: int, description: str = "") -> dict[str, Any]:
        """The request's audit_event row (for a caller that inserts it with other rows)."""
        return _row(self.event(context, status, description), context)

    def record_after(self, context: AuditContext, status: int, description: str = "") -> None:
        """Record in a transaction of its own (reads, searches, refusals, failures)."""
        if context.recorded:
            return
        with self.store.transaction() as connection:
            self.record_in(connection, context, status, description)

    def event(self, context: AuditContext, status: int, description: str) -> dict[str, Any]:
        recorded = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if context.login:
            event_type = {"system": DICOM, "code": "110114", "display": "User Authentication"}
            subtype = [{"system": DICOM, "code": "110122", "display": "Login"}]
            action = "E"
        else:
            event_type = {"system": EVENT_TYPE, "code": "rest", "display": "RESTful Operation"}
            subtype = [{"system": INTERACTION, "code": context.interaction}]
            if context.operation:
                operation = {"system": OPERATION_SYSTEM, "code": context.operation, "display": f"${context.operation}"}
                subtype.append(operation)
            action = ACTIONS.get(context.interaction, "E")
        agent: dict[str, Any] = {
            "type": {"coding": [{"system": DICOM, "code": "110150", "display": "Application"}]},
            "requestor": True,
        }
        if context.client_id:
            agent["who"] = {"identifier": {"system": CLIENT_ID_SYSTEM, "value": context.client_id}}
        else:
            agent["who"] = {"display": "anonymous caller (no valid access token)"}
        if context.address:
            agent["network"] = {"address": context.address, "type": "2"}  # 2: IP address
        event: dict[str, Any] = {
            "resourceType": "AuditEvent",
            "id": str(uuid.uuid4()),
            "type": event_type,
            "subtype": subtype,
            "action": action,
            "recorded": recorded,
            "outcome": outcome_of(status),
            "outcomeDesc": description or f"HTTP {status}",
            "agent": [agent],
            "source": {
                "observer": {"display": self.observer},
                "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
            },
        }
        entities: list[dict[str, Any]] = [
            {"what": {"reference": reference}, "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"}}
            for reference in dict.fromkeys(context.entities)
        ]
        if context.query:
            entities.append(
                {
                    "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                    "role": {"system": OBJECT_ROLE, "code": "24", "display": "Query"},
                    "query": base64.b64encode(context.query.encode()).decode(),
                }
            )
        if entities:
            event["entity"] = entities
        return event


def _row(event: dict[str, Any], context: AuditContext) -> dict[str, Any]:
    references = [e["what"]["reference"] for e in event.get("entity", []) if "what" in e]
    # each reference also without its _history suffix, so entity=Claim/x finds every version's event
    plain = [r.split("/_history/")[0] for r in references]
    return {
        "id": event["id"],
        "recorded": datetime.fromisoformat(event["recorded"]),
        "agent": context.client_id,
        "outcome": event["outcome"],
        "entity": " " + " ".join(dict.fromkeys(references + plain)) + " ",
        "content": orjson.dumps(event).decode(),
    }
