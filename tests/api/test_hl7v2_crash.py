"""Commit before ACK, proven with a real server process killed (SIGKILL) between receipt and commit.

``theraclaim serve`` runs with THERACLAIM_MLLP_PORT on PostgreSQL.  The test holds a SHARE lock on
``hl7v2_messages`` (reads pass, inserts wait), sends a message, and waits until the server's
transaction is blocked on that lock: the visit's resources and its Claim are written but not
committed.  Then the server is killed.  No ACK reached the peer and nothing is in the database;
a new server takes the resend and exactly one Claim results.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from adapter.service.store import sqlalchemy_url
from tests.api.conftest import require_postgres, reset_postgres
from tests.conftest import ROOT
from tests.hl7v2.messages import visit
from tests.hl7v2.peer import Peer, fields, frame

WAITING_ON_A_LOCK = text(
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    " AND pid <> pg_backend_pid() AND datname = current_database()"
)
DEADLINE_SECONDS = 60  # a safety net for a server that never comes up, never a measured time


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    """``theraclaim serve`` in its own process, HTTP and MLLP on free loopback ports."""

    def __init__(self, database_url: str, log: Path, settings: dict[str, str] | None = None) -> None:
        self.http, self.mllp = _free_port(), _free_port()
        command = ROOT / ".venv" / "bin" / "theraclaim"
        env = (
            os.environ
            | {
                "THERACLAIM_DATABASE_URL": database_url,
                "THERACLAIM_MLLP_PORT": str(self.mllp),
                "THERACLAIM_MLLP_HOST": "127.0.0.1",
            }
            | (settings or {})
        )
        self.log = log
        with log.open("ab") as sink:
            self.process = subprocess.Popen(
                [str(command), "serve", "--host", "127.0.0.1", "--port", str(self.http)],
                cwd=ROOT,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"theraclaim serve exited with {self.process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.http}/readyz", timeout=2).status_code == 200:
                    socket.create_connection(("127.0.0.1", self.mllp), timeout=2).close()
                    return
            except (httpx.TransportError, OSError):
                pass
            time.sleep(0.2)
        self.kill()
        pytest.fail(f"theraclaim serve was not ready:\n{log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=DEADLINE_SECONDS)


def test_a_server_killed_before_the_commit_sends_no_ack_and_the_resend_gives_one_claim(tmp_path: Path) -> None:
    url = require_postgres()
    reset_postgres(url)
    engine = create_engine(sqlalchemy_url(url))
    log = tmp_path / "server.log"
    message = visit("CRASH-1", visit_number="V-CRASH")
    first = Served(url, log)
    try:
        with engine.connect() as locker:
            locker.execute(text("LOCK TABLE hl7v2_messages IN SHARE MODE"))  # inserts wait, reads pass
            peer = Peer(first.mllp)
            peer.send(frame(message))
            deadline = time.monotonic() + DEADLINE_SECONDS
            while True:  # the server's write transaction waits for the lock: received, not committed
                waiting = locker.execute(WAITING_ON_A_LOCK).scalar_one()
                if waiting:
                    break
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.05)
            first.kill()
            assert peer.closed_by_listener()  # no ACK was written before the crash
            peer.close()
            locker.rollback()
    finally:
        first.kill()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM resource_current")).scalar_one() == 0
        assert connection.execute(text("SELECT count(*) FROM hl7v2_messages")).scalar_one() == 0
    second = Served(url, log)
    try:
        peer = Peer(second.mllp)
        ack = peer.exchange(message)
        assert fields(ack, "MSA")[1:3] == ["AA", "CRASH-1"]
        assert peer.exchange(message) == ack  # and again: the same ACK, no second write
        peer.close()
    finally:
        second.kill()
    with engine.connect() as connection:
        claims = connection.execute(text("SELECT version_id FROM resource_current WHERE resource_type = 'Claim'")).all()
        assert [c.version_id for c in claims] == [1]
        assert connection.execute(text("SELECT count(*) FROM hl7v2_messages")).scalar_one() == 1
    engine.dispose()
