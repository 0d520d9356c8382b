"""A FHIR destination on loopback that records what it receives and fails on purpose.

Used by the delivery tests and the delivery benchmark.  It answers ``PUT /Claim/<id>`` and
``POST /Claim/$submit``; each request takes the next action of ``plan`` (then ``ok``):

- ``ok``: apply the Claim version (once per idempotency key) and answer 200 with the Claim;
- ``(status, headers, body)``: answer that without applying anything (503 + Retry-After, 400 + OperationOutcome);
- ``drop``: apply the version, then close the connection without answering (the sender cannot know);
- ``("slow", seconds)``: wait, apply, answer 200 (late: the sender has timed out by then);
- ``("hold", event)``: signal ``received``, then wait for ``event`` before acting like ``ok``.

``effects`` lists the distinct Claim versions applied, in order; ``requests`` every request seen.
``POST /token`` is a SMART token endpoint: it records the form and gives the token ``TOKEN``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import orjson

Action = Any
TOKEN = "token-1"


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    key: str | None
    claim_id: str
    version: int
    status: str
    at: float  # time.time() when the request arrived
    authorization: str | None = None


class Receiver:
    def __init__(self) -> None:
        self.plan: deque[Action] = deque()
        self.requests: list[Seen] = []
        self.effects: list[tuple[str, int, str]] = []  # (claim id, version, Claim.status)
        self.keys: set[str] = set()
        self.token_forms: list[dict[str, list[str]]] = []
        self.received = threading.Event()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # header and body are two writes: no 40 ms delayed-ACK stall

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_PUT(self) -> None:
                receiver._handle(self)

            def do_POST(self) -> None:
                receiver._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/fhir"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length)
        if handler.path == "/token":
            with self.lock:
                self.token_forms.append(parse_qs(body.decode()))
            self._reply(handler, 200, {}, {"access_token": TOKEN, "token_type": "bearer", "expires_in": 300})
            return
        claim = orjson.loads(body)
        key = handler.headers.get("Idempotency-Key") or handler.headers.get("X-Request-Id")
        seen = Seen(
            handler.command,
            handler.path,
            key,
            str(claim.get("id")),
            int(claim.get("meta", {}).get("versionId", 0)),
            str(claim.get("status")),
            time.time(),
            handler.headers.get("Authorization"),
        )
        with self.lock:
            self.requests.append(seen)
            action = self.plan.popleft() if self.plan else "ok"
        if isinstance(action, tuple) and action[0] == "hold":
            self.received.set()
            action[1].wait()
            action = "ok"
        if isinstance(action, tuple) and action[0] == "slow":
            time.sleep(action[1])
            action = "ok"
        if action == "drop":
            self._apply(seen)
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        if action == "ok":
            self._apply(seen)
            self._reply(handler, 200, {}, claim)
            return
        status, headers, body = action
        self._reply(handler, status, headers, body)

    def _apply(self, seen: Seen) -> None:
        with self.lock:
            if seen.key not in self.keys:  # an idempotent destination: one effect per key
                self.keys.add(str(seen.key))
                self.effects.append((seen.claim_id, seen.version, seen.status))

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: Any) -> None:
        content = orjson.dumps(body) if body is not None else b""
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Type", "application/fhir+json")
        handler.send_header("Content-Length", str(len(content)))
        handler.end_headers()
        handler.wfile.write(content)
