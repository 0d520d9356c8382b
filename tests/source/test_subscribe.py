"""``theraclaim subscribe`` and ``theraclaim subscriptions`` against the source double."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapter.cli import main
from adapter.source.subscribe import BACKPORT
from tests.conftest import validate_fhir, write_json
from tests.source.double import Double

TOPIC = "http://example.org/fhir/SubscriptionTopic/encounter-finished"
ENDPOINT = "https://theraclaim.example.org/subscriptions/notify"


def test_subscribe_creates_a_backport_subscription_and_subscriptions_lists_it(
    double: Double, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("THERACLAIM_SOURCE_FHIR_BASE", double.base)
    monkeypatch.setenv("THERACLAIM_DATABASE_URL", f"sqlite:///{tmp_path / 'none.sqlite3'}")
    assert main(["subscribe", "--topic", TOPIC, "--endpoint", ENDPOINT, "--heartbeat", "600"]) == 0
    captured = capsys.readouterr()
    created = json.loads(captured.out)
    assert captured.err.startswith(f"Subscription/{created['id']} requested")
    assert created["meta"]["profile"] == [f"{BACKPORT}/backport-subscription"]
    assert created["criteria"] == TOPIC
    assert created["_criteria"]["extension"][0]["valueString"] == "Encounter?status=finished"
    channel = created["channel"]
    assert (channel["type"], channel["endpoint"], channel["payload"]) == (
        "rest-hook",
        ENDPOINT,
        "application/fhir+json",
    )
    assert channel["_payload"]["extension"][0] == {
        "url": f"{BACKPORT}/backport-payload-content",
        "valueCode": "id-only",
    }
    assert {"url": f"{BACKPORT}/backport-heartbeat-period", "valueUnsignedInt": 600} in channel["extension"]
    validate_fhir([write_json(tmp_path / "subscription.json", {k: v for k, v in created.items() if k != "meta"})])

    assert main(["subscriptions", "--endpoint", ENDPOINT]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"Subscription/{created['id']}  requested  topic {TOPIC}  -> {ENDPOINT}"
    assert "1 subscription(s) at the source" in captured.err


def test_subscribe_to_a_dead_source(
    double: Double, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("THERACLAIM_SOURCE_FHIR_BASE", double.base)
    double.fault("/Subscription", status=500)
    assert main(["subscribe", "--topic", TOPIC, "--endpoint", ENDPOINT]) == 4
    assert "source answered 500" in capsys.readouterr().err
