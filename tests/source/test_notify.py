"""Subscription notifications (R4 Backport IG) queue pulls that the server's workers turn into Claims."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from adapter.rules.catalog import Rules
from adapter.service import pull_queue
from tests.api.conftest import Api, assert_outcome, database_url, make_api
from tests.source.double import Double

__all__ = ["database_url"]  # the fixture, imported so these tests run on both databases
SUBSCRIPTION = "https://ehr.example.org/fhir/Subscription/encounter-finished"
TOPIC = "http://hl7.org/fhir/us/core/SubscriptionTopic/encounter-finished"


def notification(
    kind: str, since: int, events: list[tuple[int, str]] = (), full: list[dict[str, Any]] = ()
) -> dict[str, Any]:  # type: ignore[assignment]
    parameters: list[dict[str, Any]] = [
        {"name": "subscription", "valueReference": {"reference": SUBSCRIPTION}},
        {"name": "topic", "valueCanonical": TOPIC},
        {"name": "status", "valueCode": "active"},
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": str(since)},
    ]
    for number, focus in events:
        parameters.append(
            {
                "name": "notification-event",
                "part": [
                    {"name": "event-number", "valueString": str(number)},
                    {"name": "timestamp", "valueInstant": f"2025-06-0{min(number, 9)}T10:00:00Z"},
                    {"name": "focus", "valueReference": {"reference": focus}},
                ],
            }
        )
    status = {"resourceType": "Parameters", "parameter": parameters}
    entries = [
        {
            "fullUrl": "urn:uuid:7f0e6a4c-4d6b-4f8e-9a55-3b8f2f4f6e01",
            "resource": status,
            "request": {"method": "GET", "url": f"{SUBSCRIPTION}/$status"},
            "response": {"status": "200"},
        }
    ]
    entries += [{"fullUrl": f"urn:uuid:{i}", "resource": r} for i, r in enumerate(full)]
    return {"resourceType": "Bundle", "type": "history", "timestamp": "2025-06-01T10:00:01Z", "entry": entries}


@pytest.fixture
def api(double: Double, rules: Rules, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    """The app on SQLite and on PostgreSQL (the queue is claimed differently on each)."""
    monkeypatch.setattr(pull_queue, "RETRY_BASE", timedelta(0))
    with make_api(database_url, rules, source_fhir_base=double.base, source_workers=0) as made:
        yield made


def notify(api: Api, document: dict[str, Any]) -> str:
    body = assert_outcome(api.post("/subscriptions/notify", document), 200)
    return str(body["issue"][0]["details"]["text"])


def work(api: Api) -> int:
    """Run the worker until the queue has nothing due; the number of rows processed."""
    worker = api.client.app.state.pull_worker  # type: ignore[attr-defined]
    done = 0
    while worker.run_once():
        done += 1
    return done


def tasks(api: Api) -> list[dict[str, Any]]:
    response = api.client.get("/subscriptions/pulls")
    assert response.status_code == 200
    return [e["resource"] for e in response.json()["entry"]]


def claims(api: Api) -> list[dict[str, Any]]:
    return [r for r in api.rows("resource_current") if r["resource_type"] == "Claim"]


@pytest.mark.parametrize("kind", ["handshake", "heartbeat"])
def test_handshake_and_heartbeat_are_answered_200(api: Api, kind: str) -> None:
    assert notify(api, notification(kind, 0)).startswith(f"{kind}: 0 pull(s) queued")
    assert api.count("pull_queue") == 0


def test_an_id_only_event_queues_a_pull_that_makes_the_claim(
    api: Api, double: Double, visit: tuple[dict[str, Any], str]
) -> None:
    focus = f"{double.base}/Encounter/{visit[1]}"
    assert notify(api, notification("event-notification", 1, [(1, focus)])).startswith(
        "event-notification: 1 pull(s) queued"
    )
    assert double.count("/Encounter") == 0, "answered at once: the pull happens later"
    (task,) = tasks(api)
    assert task["status"] == "requested" and task["focus"]["reference"] == focus
    assert work(api) == 1
    (task,) = tasks(api)
    assert task["status"] == "completed"
    (claim,) = claims(api)
    assert task["output"][0]["valueReference"]["reference"] == f"Claim/{claim['id']}"


def test_the_same_event_twice_is_processed_once(api: Api, double: Double, visit: tuple[dict[str, Any], str]) -> None:
    document = notification("event-notification", 1, [(1, f"Encounter/{visit[1]}")])
    notify(api, document)
    assert "0 pull(s) queued, 1 already known" in notify(api, document)
    assert work(api) == 1
    assert len(claims(api)) == 1


def test_out_of_order_events_and_a_gap_give_one_claim(
    api: Api, double: Double, visit: tuple[dict[str, Any], str]
) -> None:
    encounter = f"Encounter/{visit[1]}"
    double.put(double.resources[("Encounter", visit[1])], version=2, last_updated="2025-06-02T09:00:00Z")
    notify(api, notification("event-notification", 1, [(1, encounter)]))
    text = notify(api, notification("event-notification", 3, [(3, encounter)]))  # event 2 not here (yet)
    assert "catch-up search of the source is queued" in text
    assert "catch-up" not in notify(api, notification("event-notification", 3, [(2, encounter)]))  # late, not a gap
    work(api)
    assert double.count("_lastUpdated=gt2025-06-01") == 1 and double.count("status=finished") == 1
    assert {t["status"] for t in tasks(api)} == {"completed"}
    assert len(tasks(api)) == 5  # events 1, 3, 2, the catch-up, and the Encounter the catch-up found
    (claim,) = claims(api)
    assert claim["version_id"] == 1


def test_a_heartbeat_that_reveals_missed_events_starts_a_catch_up(api: Api, visit: tuple[dict[str, Any], str]) -> None:
    notify(api, notification("event-notification", 1, [(1, f"Encounter/{visit[1]}")]))
    assert "catch-up" in notify(api, notification("heartbeat", 4))
    assert "catch-up" not in notify(api, notification("heartbeat", 4))


def test_a_full_resource_event_for_an_unfinished_encounter_queues_nothing(
    api: Api, double: Double, visit: tuple[dict[str, Any], str]
) -> None:
    encounter = dict(double.resources[("Encounter", visit[1])], status="in-progress")
    assert notify(api, notification("event-notification", 1, [(1, f"Encounter/{visit[1]}")], [encounter])).startswith(
        "event-notification: 0 pull(s) queued"
    )


def test_a_failing_source_is_retried_then_the_claim_is_made(
    api: Api, double: Double, visit: tuple[dict[str, Any], str]
) -> None:
    fault = double.fault("/Encounter", status=503, retry_after="0", times=4)
    notify(api, notification("event-notification", 1, [(1, f"Encounter/{visit[1]}")]))
    worker = api.client.app.state.pull_worker  # type: ignore[attr-defined]
    assert worker.run_once()
    (task,) = tasks(api)
    assert task["status"] == "requested" and task["statusReason"]["text"] == "source answered 503"
    assert fault.times == 0
    work(api)
    (task,) = tasks(api)
    assert task["status"] == "completed" and task["businessStatus"]["text"] == "attempts: 2"
    assert len(claims(api)) == 1


def test_an_r4b_subscription_status_is_read_too(api: Api, visit: tuple[dict[str, Any], str]) -> None:
    status = {
        "resourceType": "SubscriptionStatus",
        "status": "active",
        "type": "event-notification",
        "eventsSinceSubscriptionStart": 1,
        "subscription": {"reference": SUBSCRIPTION},
        "topic": TOPIC,
        "notificationEvent": [{"eventNumber": 1, "focus": {"reference": f"Encounter/{visit[1]}"}}],
    }
    document = {"resourceType": "Bundle", "type": "history", "entry": [{"resource": status}]}
    assert notify(api, document).startswith("event-notification: 1 pull(s) queued")


@pytest.mark.parametrize(
    ("document", "expression"),
    [
        ({"resourceType": "Bundle", "type": "collection", "entry": []}, "Bundle.type"),
        (
            {"resourceType": "Bundle", "type": "history", "entry": [{"resource": {"resourceType": "Patient"}}]},
            "Bundle.entry[0].resource",
        ),
        (notification("bogus", 0), "Bundle.entry[0].resource.parameter"),
    ],
    ids=["not-history", "no-status", "unknown-type"],
)
def test_a_bad_notification_is_refused_400(api: Api, document: dict[str, Any], expression: str) -> None:
    body = assert_outcome(api.post("/subscriptions/notify", document), 400)
    assert body["issue"][0]["expression"] == [expression]
    assert api.count("pull_queue") == 0


def test_the_server_workers_process_the_queue(
    double: Double, rules: Rules, tmp_path: Path, visit: tuple[dict[str, Any], str]
) -> None:
    with make_api(f"sqlite:///{tmp_path / 'db.sqlite3'}", rules, source_fhir_base=double.base) as api:
        notify(api, notification("event-notification", 1, [(1, f"Encounter/{visit[1]}")]))
        for _ in range(300):  # the worker thread polls once a second; wait for it, at most a minute
            if tasks(api)[0]["status"] == "completed":
                break
            time.sleep(0.2)
        assert tasks(api)[0]["status"] == "completed"
        assert len(claims(api)) == 1


@pytest.fixture
def cloud_api(double: Double, rules: Rules, tmp_path: Path) -> Iterator[Api]:
    with make_api(
        f"sqlite:///{tmp_path / 'db.sqlite3'}",
        rules,
        source_fhir_base=double.base,
        source_workers=0,
        source_events="backport,azure,google",
    ) as made:
        yield made


def _azure(event_id: str, encounter: str, kind: str = "Microsoft.HealthcareApis.FhirResourceUpdated") -> dict[str, Any]:
    return {
        "id": event_id,
        "topic": "/subscriptions/x/resourceGroups/y/providers/Microsoft.HealthcareApis/workspaces/w",
        "subject": f"w-fhir.fhir.azurehealthcareapis.com/Encounter/{encounter}",
        "eventType": kind,
        "eventTime": "2025-06-01T10:00:00Z",
        "dataVersion": "1",
        "metadataVersion": "1",
        "data": {
            "resourceType": "Encounter",
            "resourceFhirAccount": "w-fhir.fhir.azurehealthcareapis.com",
            "resourceFhirId": encounter,
            "resourceVersionId": 2,
        },
    }


def test_azure_event_grid_validation_and_events(cloud_api: Api, visit: tuple[dict[str, Any], str]) -> None:
    handshake = [
        {
            "id": "v1",
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"},
        }
    ]
    answer = cloud_api.post("/subscriptions/notify", handshake)
    assert answer.status_code == 200 and answer.json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    events = [_azure("e-1", visit[1]), _azure("e-2", "x", "Microsoft.HealthcareApis.FhirResourceDeleted")]
    assert notify(cloud_api, events) == "Azure events: 1 pull(s) queued, 0 already known, 1 ignored"
    assert "0 pull(s) queued, 1 already known" in notify(cloud_api, events[:1])  # Event Grid redelivers
    assert work(cloud_api) == 1 and len(claims(cloud_api)) == 1


def test_google_pubsub_push(cloud_api: Api, visit: tuple[dict[str, Any], str]) -> None:
    name = f"projects/p/locations/us/datasets/d/fhirStores/s/fhir/Encounter/{visit[1]}"
    push = {
        "message": {
            "attributes": {
                "action": "UpdateResource",
                "resourceType": "Encounter",
                "payloadType": "NameOnly",
                "storeName": "projects/p/locations/us/datasets/d/fhirStores/s",
            },
            "data": base64.b64encode(name.encode()).decode(),
            "messageId": "m-77",
            "publishTime": "2025-06-01T10:00:00Z",
        },
        "subscription": "projects/p/subscriptions/theraclaim",
    }
    assert notify(cloud_api, push) == "Google events: 1 pull(s) queued, 0 already known, 0 ignored"
    assert work(cloud_api) == 1 and len(claims(cloud_api)) == 1


def test_cloud_shapes_are_refused_unless_configured(api: Api, visit: tuple[dict[str, Any], str]) -> None:
    body = assert_outcome(api.post("/subscriptions/notify", [_azure("e-1", visit[1])]), 400)
    assert "backport" in body["issue"][0]["details"]["text"]
