"""The pull doors go through the one auth policy (issue 9): scopes, and no tenant on the queue."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from adapter.rules.catalog import Rules
from adapter.service.api import create_app
from adapter.service.settings import Settings
from tests.api.auth_support import Client, token_form, write_registry
from tests.source.double import Double
from tests.source.test_notify import notification

CLIENTS = {
    "integration": ("system/*.cruds", None),
    "reader": ("system/*.rs", None),
    "tenant": ("system/*.cruds", "1234567893"),
}


@pytest.fixture
def locked(double: Double, rules: Rules, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    made = {name: Client.new(name) for name in CLIENTS}
    registry = write_registry(
        tmp_path / "clients.yaml", [made[n].entry(scope, organization) for n, (scope, organization) in CLIENTS.items()]
    )
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        clients=registry,
        source_fhir_base=double.base,
        source_workers=0,
    )
    with TestClient(create_app(settings, rules), raise_server_exceptions=False) as client:
        url = "http://testserver/auth/token"
        tokens = {}
        for name, (scope, _) in CLIENTS.items():
            answer = client.post("/auth/token", data=token_form(made[name].assertion(url), scope))
            assert answer.status_code == 200, answer.text
            tokens[name] = answer.json()["access_token"]
        yield client, tokens


def _post(client: TestClient, path: str, token: str, document: dict[str, Any]) -> Any:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    return client.post(path, content=json.dumps(document), headers=headers)


def test_notifications_need_the_claim_create_scope_and_no_tenant(
    locked: tuple[TestClient, dict[str, str]], visit: tuple[dict[str, Any], str]
) -> None:
    client, tokens = locked
    document = notification("event-notification", 1, [(1, f"Encounter/{visit[1]}")])
    assert _post(client, "/subscriptions/notify", tokens["reader"], document).status_code == 403
    refused = _post(client, "/subscriptions/notify", tokens["tenant"], document)
    assert (
        refused.status_code == 403
        and refused.json()["issue"][0]["details"]["coding"][0]["code"] == "tenant-not-allowed"
    )
    assert _post(client, "/subscriptions/notify", tokens["integration"], document).status_code == 200
    listed = client.get("/subscriptions/pulls", headers={"Authorization": f"Bearer {tokens['integration']}"})
    assert listed.status_code == 200 and listed.json()["total"] == 1
    assert (
        client.get("/subscriptions/pulls", headers={"Authorization": f"Bearer {tokens['tenant']}"}).status_code == 403
    )


def test_a_pull_by_reference_needs_the_claim_create_scope(
    locked: tuple[TestClient, dict[str, str]], double: Double, visit: tuple[dict[str, Any], str]
) -> None:
    client, tokens = locked
    parameters = {
        "resourceType": "Parameters",
        "parameter": [{"name": "encounter", "valueReference": {"reference": f"Encounter/{visit[1]}"}}],
    }
    assert _post(client, "/fhir/Claim/$from-encounter", tokens["reader"], parameters).status_code == 403
    assert double.count("/Encounter") == 0, "nothing is fetched for a caller who may not make the Claim"
    made = _post(client, "/fhir/Claim/$from-encounter", tokens["integration"], parameters)
    assert made.status_code == 201, made.text[:600]
