"""Topic-based Subscriptions at the source (Subscriptions R5 Backport IG, R4 profile).

``subscription`` builds the ``backport-subscription`` resource: ``criteria`` is the topic's
canonical URL, the filter (``Encounter?status=finished``) goes in the ``backport-filter-criteria``
extension on ``criteria``, the channel is a rest-hook to this server's ``/subscriptions/notify``
with ``id-only`` content (``backport-payload-content`` on ``payload``) and a heartbeat period.
"""

from __future__ import annotations

from typing import Any

import orjson

from adapter.source.client import SourceClient, SourceError

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"


def subscription(
    topic: str, endpoint: str, *, filter_criteria: str, heartbeat: int, header: str | None = None
) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "extension": [
            {"url": f"{BACKPORT}/backport-heartbeat-period", "valueUnsignedInt": heartbeat},
            {"url": f"{BACKPORT}/backport-timeout", "valueUnsignedInt": 60},
        ],
        "type": "rest-hook",
        "endpoint": endpoint,
        "payload": "application/fhir+json",
        "_payload": {"extension": [{"url": f"{BACKPORT}/backport-payload-content", "valueCode": "id-only"}]},
    }
    if header:
        channel["header"] = [header]
    return {
        "resourceType": "Subscription",
        "meta": {"profile": [f"{BACKPORT}/backport-subscription"]},
        "status": "requested",
        "reason": "theraclaim: make claims from finished therapy encounters",
        "criteria": topic,
        "_criteria": {"extension": [{"url": f"{BACKPORT}/backport-filter-criteria", "valueString": filter_criteria}]},
        "channel": channel,
    }


def create(client: SourceClient, resource: dict[str, Any]) -> dict[str, Any]:
    """POST the Subscription; the source's answer (or what its Location names)."""
    response = client.request(
        "POST",
        f"{client.config.root}/Subscription",
        content=orjson.dumps(resource),
        headers={"Content-Type": "application/fhir+json", "Prefer": "return=representation"},
    )
    if response.content:
        created = orjson.loads(response.content)
        if isinstance(created, dict) and created.get("resourceType") == "Subscription":
            return created
    location = response.headers.get("location")
    if not location or not client.on_source(location):
        raise SourceError("source created the Subscription but named no Location on itself")
    found = client.request("GET", location.split("/_history/")[0])
    created = orjson.loads(found.content)
    if not isinstance(created, dict):
        raise SourceError("source answered something that is not a Subscription")
    return created


def listed(client: SourceClient, endpoint: str | None = None) -> list[dict[str, Any]]:
    """The source's Subscriptions (those posting to ``endpoint`` when given), summarized."""
    rows = []
    for resource in client.search("Subscription", {}):
        raw = resource.get("channel")
        channel: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if endpoint is not None and channel.get("endpoint") != endpoint:
            continue
        rows.append(
            {
                "id": resource.get("id"),
                "status": resource.get("status"),
                "topic": resource.get("criteria"),
                "endpoint": channel.get("endpoint"),
                "error": resource.get("error"),
            }
        )
    return rows
