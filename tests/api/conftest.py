"""Fixtures for the REST API tests: the app on SQLite and on PostgreSQL, and request helpers.

Every API test runs twice, once per database.  THERACLAIM_TEST_POSTGRES_URL (default: the local CI
cluster) names the PostgreSQL server to use: each test run creates its own database there (a unique
name, dropped when the run ends), so two runs at once never drop each other's tables.  When the
server does not answer, the PostgreSQL half is skipped with the reason, the SQLite half still runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, make_url, text

from adapter.rules.catalog import Rules
from adapter.service.api import create_app
from adapter.service.settings import Settings
from adapter.service.store import Store, sqlalchemy_url
from tests import bundle_builder as bb
from tests.conftest import NOW, VALIDATE_FHIR, validate_fhir

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
FHIR_JSON = "application/fhir+json"
OPERATION = "/fhir/Claim/$from-encounter"


def server_url() -> str:
    """The PostgreSQL server (and the database to connect to while creating this run's own)."""
    return os.environ.get("THERACLAIM_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


_postgres_problem: dict[str, str | None] = {}
_run_database: dict[str, str] = {}


def postgres_unreachable() -> str | None:
    """Why the test PostgreSQL cannot be used (None when it answers); asked once per session."""
    url = server_url()
    if url not in _postgres_problem:
        try:
            engine = create_engine(sqlalchemy_url(url), connect_args={"connect_timeout": 3})
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            engine.dispose()
            _postgres_problem[url] = None
        except Exception as error:  # any failure to connect means "skip the PostgreSQL half"
            _postgres_problem[url] = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return _postgres_problem[url]


def postgres_url() -> str:
    """This run's own database on the test server, created on first use (dropped by ``drop_run_database``)."""
    server = server_url()
    if server not in _run_database:
        name = f"theraclaim_test_{os.getpid()}_{uuid.uuid4().hex[:12]}"
        admin = create_engine(sqlalchemy_url(server), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        _run_database[server] = make_url(server).set(database=name).render_as_string(hide_password=False)
    return _run_database[server]


def drop_run_database() -> None:
    """Drop the database this run created (connections still open to it are closed by the server)."""
    for server, url in list(_run_database.items()):
        name = make_url(url).database
        admin = create_engine(sqlalchemy_url(server), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        del _run_database[server]


@pytest.fixture(scope="session", autouse=True)
def _own_postgres_database() -> Iterator[None]:
    """Drop this run's PostgreSQL database, if one was created, when the session ends."""
    yield
    drop_run_database()


def reset_postgres(url: str) -> None:
    """Drop the app's tables so the next app starts from an empty, freshly migrated database."""
    engine = create_engine(sqlalchemy_url(url))
    with engine.begin() as connection:
        for table in inspect(connection).get_table_names():  # every helper's tables, whoever added them
            connection.execute(text(f'DROP TABLE IF EXISTS "{table}" CASCADE'))
    engine.dispose()


def require_postgres() -> str:
    problem = postgres_unreachable()
    if problem is not None:
        pytest.skip(f"PostgreSQL at {server_url()} (THERACLAIM_TEST_POSTGRES_URL) is unreachable: {problem}")
    return postgres_url()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'theraclaim.sqlite3'}"
    url = require_postgres()
    reset_postgres(url)
    return url


@dataclass
class Api:
    """The app under test, its HTTP client and its store (to check what was, or was not, stored)."""

    client: TestClient
    store: Store
    settings: Settings

    def post(self, path: str, document: Any, **kwargs: Any) -> Any:
        headers = {"Content-Type": FHIR_JSON, **kwargs.pop("headers", {})}
        return self.client.post(path, content=json.dumps(document), headers=headers, **kwargs)

    def push(self, document: Any, **kwargs: Any) -> Any:
        return self.post(OPERATION, document, **kwargs)

    def rows(self, table: str) -> list[dict[str, Any]]:
        with self.store.engine.connect() as connection:
            return [dict(r._mapping) for r in connection.execute(text(f"SELECT * FROM {table}"))]

    def count(self, table: str) -> int:
        with self.store.engine.connect() as connection:
            return int(connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())

    def stored_counts(self) -> tuple[int, int, int]:
        return self.count("resource_current"), self.count("resource_history"), self.count("submissions")

    def assert_alive(self) -> None:
        assert self.client.get("/healthz").status_code == 200


def service_clock() -> datetime:
    """The test data's dates of service are 2025-01-14: the service decides as on the day after, like
    the golden files (a wall clock years later would hold every Claim past timely filing)."""
    return NOW


@contextmanager
def make_api(database_url: str, rules: Rules | None = None, **settings: Any) -> Iterator[Api]:
    """The app on a database, with settings overridden; server errors become 500 responses, as in production."""
    config = Settings(database_url=database_url, **settings)
    app = create_app(config, rules, clock=service_clock)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            client.event_hooks["response"].append(_record_body)
            yield Api(client, app.state.store, config)
    finally:
        app.state.store.engine.dispose()


# Every FHIR JSON body the API tests receive, once per distinct content (issue 11: each is
# handed to ../shared/tools/validate-fhir when the session ends).
_BODIES: dict[str, bytes] = {}
ZERO_VALUE = re.compile(rb'"value(?:UnsignedInt|Integer|Decimal|PositiveInt)":0[,}]')


def _record_body(response: httpx.Response) -> None:
    if response.headers.get("content-type", "").startswith(FHIR_JSON):
        body = response.read()
        if body:
            _BODIES.setdefault(hashlib.sha256(body).hexdigest(), body)


@pytest.fixture(scope="session", autouse=True)
def _every_response_validates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """At the end of the session, every FHIR JSON body the API tests received passes validate-fhir."""
    yield
    if not _BODIES or not VALIDATE_FHIR.exists() or shutil.which("node") is None:
        return  # nothing received, or no validator here (the tests that need it say so themselves)
    folder = tmp_path_factory.mktemp("responses")
    paths, zero_valued = [], []
    for digest, body in sorted(_BODIES.items()):
        path = folder / f"{digest[:16]}.json"
        path.write_bytes(body)
        (zero_valued if ZERO_VALUE.search(body) else paths).append(path)
    validate_fhir(paths)
    if zero_valued:  # FHIR.js reports a value[x] of 0 as missing (valueUnsignedInt 0 is valid R4): the other layers
        validate_fhir(zero_valued, layers="medplum,fhirkit,schema,extra")


@pytest.fixture
def api(database_url: str, rules: Rules) -> Iterator[Api]:
    with make_api(database_url, rules) as made:
        yield made


def assert_outcome(response: Any, status: int | tuple[int, ...]) -> dict[str, Any]:
    """The response has the status and an OperationOutcome body (FHIR JSON); returns the body."""
    expected = (status,) if isinstance(status, int) else status
    assert response.status_code in expected, (response.status_code, response.text[:2000])
    assert response.headers["content-type"].startswith(FHIR_JSON), response.headers
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert body["issue"], body
    return dict(body)


def entries(bundle: dict[str, Any], resource_type: str | None = None) -> list[dict[str, Any]]:
    found = [e["resource"] for e in bundle.get("entry", []) if "resource" in e]
    return [r for r in found if resource_type is None or r["resourceType"] == resource_type]


DVT_DISPLAY = "Acute embolism and thrombosis of unspecified deep veins of right lower extremity"


def visit_for(
    enc_id: str = "enc-1",
    minutes: int = 30,
    *,
    patient: str = "pat-1",
    code: str = "97124",
    dvt: bool = False,
    day: str | None = None,
    **encounter_args: Any,
) -> dict[str, Any]:
    """A one-encounter visit Bundle for Encounter ``enc_id`` (its own id, identifier and Procedure),
    optionally for another patient, optionally with an acute DVT (I82.401: a DetectedIssue, the
    Claim held); ``day`` (YYYY-MM-DD) moves the visit from 2025-01-14 to another date.  Visits of one
    patient on one date make the day's one Claim (issue 12); give them other days or patients."""
    if dvt:
        encounter_args.setdefault("diagnoses", ("Condition/dx-1", "Condition/dx-dvt"))
    if day is not None:
        encounter_args.setdefault("start", f"{day}T08:55:00-05:00")
    start = f"{day or '2025-01-14'}T09:00:00-05:00"
    document = bb.visit(
        bb.procedure(code, minutes, start=start, encounter=f"Encounter/{enc_id}", proc_id=f"proc-{enc_id}"),
        enc_id=enc_id,
        **encounter_args,
    )
    if dvt:
        condition = bb.condition("dx-dvt", "I82.401", DVT_DISPLAY)
        document["entry"].append({"fullUrl": "http://ehr.example.org/fhir/Condition/dx-dvt", "resource": condition})
    if patient != "pat-1":
        text = json.dumps(document).replace('"Patient/pat-1"', f'"Patient/{patient}"')
        document = json.loads(text)
        find_resource(document, "Patient")["id"] = patient
        for entry in document["entry"]:
            if entry["resource"]["resourceType"] == "Patient":
                entry["fullUrl"] = entry["fullUrl"].replace("/pat-1", f"/{patient}")
    return document


def find_resource(document: dict[str, Any], resource_type: str) -> dict[str, Any]:
    """The first resource of a type in a Bundle (by type, not position: the builder evolves)."""
    return next(e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == resource_type)
