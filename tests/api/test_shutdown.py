"""Graceful shutdown (issue 10): SIGTERM to ``theraclaim serve`` with a long request in flight and an
MLLP connection open.  The request is given THERACLAIM_SHUTDOWN_SECONDS, then stopped (503, nothing
of it stored), the MLLP connection is closed, the process exits within seconds and the SQLite
write-ahead log is checkpointed into the database file."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import orjson

from tests.api.conftest import FHIR_JSON, OPERATION, assert_outcome, visit_for
from tests.api.test_crash_recovery import rows
from tests.api.test_hl7v2_crash import Served
from tests.api.test_request_budget import ENCOUNTERS, cpu_seconds, pathological  # noqa: F401 (the fixture)

GRACE_SECONDS = 1
# the grace, stopping the work (at its next checkpoint), closing, the WAL checkpoint: about 1.4 s; the
# slack is for a loaded machine, still far below the minutes the push would keep the process alive
EXIT_WITHIN_SECONDS = GRACE_SECONDS + 10
AT_WORK_CPU_SECONDS = 0.5  # the server has burnt this much on the push: its body is in, the pipeline at work


def wait_until_at_work(pid: int, since: float) -> None:
    until = time.monotonic() + 60
    while cpu_seconds(pid) - since < AT_WORK_CPU_SECONDS:
        assert time.monotonic() < until, "the server never started on the push"
        time.sleep(0.1)


def test_sigterm_stops_work_in_flight_and_exits_within_seconds(pathological: bytes, tmp_path: Path) -> None:  # noqa: F811
    database = tmp_path / "shutdown.sqlite3"
    server = Served(
        f"sqlite:///{database}",
        tmp_path / "server.log",
        {"THERACLAIM_SHUTDOWN_SECONDS": str(GRACE_SECONDS), "THERACLAIM_REQUEST_TIMEOUT_SECONDS": "600"},
    )
    base = f"http://127.0.0.1:{server.http}"
    try:
        headers = {"Content-Type": FHIR_JSON}
        ordinary = httpx.post(f"{base}{OPERATION}", content=orjson.dumps(visit_for()), headers=headers)
        assert ordinary.status_code == 201, ordinary.text[:300]
        stored_before = rows(f"sqlite:///{database}", "SELECT count(*) FROM resource_history")[0][0]
        peer = socket.create_connection(("127.0.0.1", server.mllp), timeout=30)
        answers: list[httpx.Response] = []
        idle_cpu = cpu_seconds(server.process.pid)
        long_push = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{base}{OPERATION}", content=pathological, headers={"Content-Type": FHIR_JSON}, timeout=60)
            )
        )
        long_push.start()
        wait_until_at_work(server.process.pid, idle_cpu)
        began = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        exit_code = server.process.wait(timeout=60)
        took = time.monotonic() - began
        long_push.join(timeout=60)
        assert peer.recv(1) == b"", "the MLLP connection is closed by the server"
        peer.close()
    finally:
        server.kill()
    log = (tmp_path / "server.log").read_text(errors="replace")
    # uvicorn ends by re-raising the SIGTERM it caught (a shell reports 143), after its shutdown completed
    assert exit_code == -signal.SIGTERM and "Application shutdown complete" in log, log[-3000:]
    assert took < EXIT_WITHIN_SECONDS, f"exited {took:.1f} s after SIGTERM\n{log[-3000:]}"
    assert answers, "the request in flight got an answer"
    body = assert_outcome(answers[0], 503)
    assert body["issue"][0]["code"] == "transient" and answers[0].headers["Retry-After"]
    assert "Traceback" not in log, log[-3000:]
    wal = database.with_name(database.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0, "the write-ahead log was not checkpointed"
    assert rows(f"sqlite:///{database}", "SELECT count(*) FROM resource_history")[0][0] == stored_before
    visits = rows(f"sqlite:///{database}", "SELECT count(*) FROM day_visits")[0][0]
    assert visits == 1, f"none of the {ENCOUNTERS} visits is stored"
