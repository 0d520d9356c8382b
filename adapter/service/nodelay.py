"""uvicorn's HTTP/1.1 protocol with TCP_NODELAY set on every connection.

With more than one worker, uvicorn binds the listening socket itself (``socket.socket(family)``,
protocol 0), and asyncio sets TCP_NODELAY only on sockets whose protocol is IPPROTO_TCP.  A
response that uvicorn writes as two segments (the headers, then the body) then waits for the
client's delayed ACK: 40 ms added to every request on Linux (bench section 3 measured an echo's
p50 at 44 ms on 2 workers, 0.2 ms on 1).  ``theraclaim serve`` and the benchmark's servers use
this protocol whatever the number of workers.
"""

from __future__ import annotations

import asyncio
import socket

from uvicorn.protocols.http.h11_impl import H11Protocol

PROTOCOL = "adapter.service.nodelay:NoDelayProtocol"  # uvicorn's ``http`` setting (an import string)


class NoDelayProtocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)
