"""A statement the database refuses (our bug) is a 500, not "the database is down" (503): a client told
to retry later would retry for ever, and the operator would look for an outage that is not there."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from adapter.rules.catalog import Rules
from adapter.service.faults import is_outage
from adapter.service.store import sqlalchemy_url
from tests.api.conftest import assert_outcome, make_api, require_postgres, visit_for


def refusal_of(url: str, statement: str) -> OperationalError:
    engine = create_engine(sqlalchemy_url(url))
    try:
        with pytest.raises(OperationalError) as raised, engine.connect() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()
    return raised.value


def test_sqlite_refusing_a_statement_is_no_outage(tmp_path: Path) -> None:
    assert not is_outage(refusal_of(f"sqlite:///{tmp_path / 'db.sqlite3'}", "SELECT * FROM no_such_table"))


def test_sqlite_file_that_cannot_be_opened_is_an_outage(tmp_path: Path) -> None:
    missing_directory = tmp_path / "gone" / "db.sqlite3"
    assert is_outage(refusal_of(f"sqlite:///{missing_directory}", "SELECT 1"))


def test_postgresql_refusing_a_statement_is_no_outage() -> None:
    # a row IN list PostgreSQL plans as one nested expression: 54001 stack depth limit exceeded
    rows = ",".join(f"({i}, {i})" for i in range(20_000))
    refusal = refusal_of(require_postgres(), f"SELECT 1 WHERE (1, 1) IN ({rows})")
    assert getattr(refusal.orig, "sqlstate", None) == "54001"
    assert not is_outage(refusal)


def test_postgresql_that_does_not_answer_is_an_outage() -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert is_outage(refusal_of(f"postgresql://postgres@127.0.0.1:{port}/test", "SELECT 1"))


def test_a_push_the_database_refuses_answers_500_internal_error(tmp_path: Path, rules: Rules) -> None:
    url = f"sqlite:///{tmp_path / 'theraclaim.sqlite3'}"
    with make_api(url, rules) as api:
        engine = create_engine(url)
        with engine.begin() as connection:  # a schema this version does not expect
            connection.execute(text("DROP TABLE day_visits"))
        engine.dispose()
        body = assert_outcome(api.push(visit_for("enc-1")), 500)
        assert body["issue"][0]["details"]["coding"][0]["code"] == "internal-error"
        assert api.client.get("/readyz").status_code == 200  # the database itself is up
