"""Every door is locked: with a client registry, each route of the app except the open ones
(conformance, discovery, the token endpoint, liveness) refuses an anonymous caller with 401, and
the MLLP listener disconnects a peer that presents no certificate of a registered client."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from adapter.service.api import create_app
from adapter.service.guard import OPEN_PATHS, is_open
from adapter.service.settings import Settings
from tests.api.auth_support import Client, write_registry
from tests.hl7v2.messages import visit
from tests.hl7v2.peer import Peer, frame

PLACEHOLDER = {"resource_type": "Claim", "resource_id": "c-1", "version_id": "1", "event_id": "e-1"}


def _routes(routes: list[Any]) -> list[APIRoute]:
    """Every APIRoute, also those of included routers (FastAPI keeps them behind a wrapper)."""
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            found += _routes(route.original_router.routes)
    return found


def _doors(app: Any) -> list[tuple[str, str]]:
    doors = []
    for route in _routes(app.routes):
        path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: PLACEHOLDER.get(m[1], "x"), route.path)
        doors += [(method, path) for method in sorted(route.methods)]
    return doors


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[TestClient]:
    """The app with a client registry and every listener it has (MLLP on a free loopback port)."""
    registry = write_registry(tmp_path / "clients.yaml", [Client.new("someone").entry("system/*.cruds")])
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite3'}", clients=registry, mllp_port=0, mllp_host="127.0.0.1"
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def test_every_door_refuses_an_anonymous_caller(locked: TestClient) -> None:
    doors = _doors(locked.app)
    assert len(doors) >= 10, doors
    protected = [(m, p) for m, p in doors if not is_open(p)]
    assert ("POST", "/fhir/Claim/$from-encounter") in protected and ("GET", "/fhir/Claim/c-1") in protected
    for method, path in protected:
        response = locked.request(method, path, headers={"Content-Type": "application/fhir+json"}, content=b"{}")
        assert response.status_code == 401, (method, path, response.status_code)
        assert 'error="invalid_token"' in response.headers["www-authenticate"], (method, path)
        assert response.json()["resourceType"] == "OperationOutcome"


def test_the_mllp_listener_refuses_an_anonymous_peer(locked: TestClient) -> None:
    """MLLP has no bearer token: its caller is the client its TLS certificate names.  A peer without
    one (plain TCP from an allowed network) is disconnected unanswered, and nothing is stored."""
    peer = Peer(int(locked.app.state.mllp.port))  # type: ignore[attr-defined]
    try:
        peer.send(frame(visit("ANON-1")))
        refused = peer.closed_by_listener()
    except OSError:  # closed before the message was written: refused as well
        refused = True
    finally:
        peer.close()
    assert refused
    assert locked.app.state.store.submission_count() == 0  # type: ignore[attr-defined]


def test_only_the_open_doors_are_open(locked: TestClient) -> None:
    opened = {p for _, p in _doors(locked.app) if is_open(p)}
    assert opened <= OPEN_PATHS
    assert {"/fhir/metadata", "/fhir/.well-known/smart-configuration", "/auth/token", "/healthz"} <= opened
    assert locked.get("/fhir/metadata").status_code == 200
    assert "data" not in locked.get("/healthz").text


def test_an_unknown_path_is_locked_too(locked: TestClient) -> None:
    """Deny by default: a path no route serves is refused before routing."""
    assert locked.get("/fhir/Claim/c-1/$everything").status_code == 401
    assert locked.get("/anything-else").status_code == 401
