"""The event loop of ``theraclaim serve`` (and the benchmark's servers): one accept per poll.

With several uvicorn workers every worker's loop polls the one listening socket the supervisor
bound.  asyncio's loop accepts up to ``backlog`` (uvicorn: 2048) connections each time the socket is
readable, so the first worker to wake takes a whole burst of new connections: 16 opened at once
(a load balancer's or wrk's pool) all landed on one worker in most tries, and as they are kept
alive, the other worker's core stayed idle while that one's requests queued for its GIL.
Accepting one connection per poll lets each worker take its turn; a worker busy with requests polls
later, so the idler one takes more.  The listen backlog itself stays uvicorn's.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

LOOP = "adapter.service.accept:FairAcceptLoop"  # uvicorn's ``loop`` setting (an import string, uvicorn >= 0.36)


class FairAcceptLoop(asyncio.SelectorEventLoop):
    def _start_serving(
        self,
        protocol_factory: Any,
        sock: socket.socket,
        sslcontext: Any = None,
        server: Any = None,
        backlog: int = 100,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        # ``backlog`` here only bounds the accepts per poll (Server._start_serving listens with its own)
        super()._start_serving(protocol_factory, sock, sslcontext, server, 1, *args, **kwargs)  # type: ignore[misc]
