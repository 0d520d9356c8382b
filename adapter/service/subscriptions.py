"""Subscription notifications (FHIR R4 Subscriptions R5 Backport IG) read into events.

A notification is a Bundle of type ``history`` whose first entry is the status: a ``Parameters``
(backport-subscription-status-r4) or, from an R4B server, a ``SubscriptionStatus``.  Its ``type``
is handshake, heartbeat, event-notification, query-status or query-event; each
``notification-event`` has an ``event-number`` and, for id-only and full-resource content, a
``focus`` reference.  ``events-since-subscription-start`` lets the subscriber notice missed events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adapter.service.fhirhttp import FhirError

TYPES = ("handshake", "heartbeat", "event-notification", "query-status", "query-event")


@dataclass(frozen=True, slots=True)
class Event:
    number: int
    focus: str | None  # the reference as sent (absolute on the source, or Type/id)
    timestamp: datetime | None


@dataclass(frozen=True, slots=True)
class Notification:
    subscription: str
    type: str
    events_since_start: int | None
    events: tuple[Event, ...]
    resources: tuple[dict[str, Any], ...]  # full-resource content: the entries after the status


def _bad(message: str, expression: str) -> FhirError:
    return FhirError(400, "invalid-notification", message, "invalid", expression)


MAX_EVENT = 2**31 - 1  # the column is a 32-bit integer


def _number(value: Any, where: str) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 12:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_EVENT:
        return value
    raise _bad(f"an event number must be an integer from 0 to {MAX_EVENT}", where)


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _list(value: Any) -> list[dict[str, Any]]:
    """The objects of a JSON array (anything else: none)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _reference(value: Any) -> str | None:
    reference = value.get("reference") if isinstance(value, dict) else None
    return reference if isinstance(reference, str) else None


def _value(parameter: dict[str, Any]) -> Any:
    return next((v for k, v in parameter.items() if k.startswith("value")), None)


def read_notification(document: dict[str, Any]) -> Notification:
    if document.get("resourceType") != "Bundle" or document.get("type") != "history":
        raise _bad("a notification is a Bundle of type history", "Bundle.type")
    entries = document.get("entry")
    if not isinstance(entries, list) or not entries or not isinstance(entries[0], dict):
        raise _bad("the notification Bundle has no status entry", "Bundle.entry")
    status = entries[0].get("resource")
    resources = tuple(e["resource"] for e in entries[1:] if isinstance(e, dict) and isinstance(e.get("resource"), dict))
    if isinstance(status, dict) and status.get("resourceType") == "Parameters":
        return _from_parameters(status, resources)
    if isinstance(status, dict) and status.get("resourceType") == "SubscriptionStatus":
        return _from_subscription_status(status, resources)
    raise _bad("the first entry must be the SubscriptionStatus Parameters", "Bundle.entry[0].resource")


def _from_parameters(status: dict[str, Any], resources: tuple[dict[str, Any], ...]) -> Notification:
    where = "Bundle.entry[0].resource.parameter"
    subscription = kind = None
    since: int | None = None
    events = []
    for i, parameter in enumerate(_list(status.get("parameter"))):
        name, value = parameter.get("name"), _value(parameter)
        if name == "subscription":
            subscription = _reference(value)
        elif name == "type":
            kind = value
        elif name == "events-since-subscription-start":
            since = _number(value, f"{where}[{i}]")
        elif name == "notification-event":
            parts = {p["name"]: _value(p) for p in _list(parameter.get("part")) if isinstance(p.get("name"), str)}
            events.append(
                Event(
                    _number(parts.get("event-number"), f"{where}[{i}].part"),
                    _reference(parts.get("focus")),
                    _instant(parts.get("timestamp")),
                )
            )
    return _checked(subscription, kind, since, events, resources, where)


def _from_subscription_status(status: dict[str, Any], resources: tuple[dict[str, Any], ...]) -> Notification:
    where = "Bundle.entry[0].resource"
    subscription = _reference(status.get("subscription"))
    since = status.get("eventsSinceSubscriptionStart")
    events = [
        Event(
            _number(e.get("eventNumber"), f"{where}.notificationEvent[{i}]"),
            _reference(e.get("focus")),
            _instant(e.get("timestamp")),
        )
        for i, e in enumerate(_list(status.get("notificationEvent")))
    ]
    return _checked(
        subscription, status.get("type"), None if since is None else _number(since, where), events, resources, where
    )


def _checked(
    subscription: Any,
    kind: Any,
    since: int | None,
    events: list[Event],
    resources: tuple[dict[str, Any], ...],
    where: str,
) -> Notification:
    if not isinstance(subscription, str) or not subscription or len(subscription) > 400:
        raise _bad("the status names no subscription", where)
    if not isinstance(kind, str) or kind not in TYPES:
        raise _bad(f"the notification type must be one of {', '.join(TYPES)}", where)
    return Notification(subscription, kind, since, tuple(events), resources)
