"""theraclaim serve's HTTP protocol sets TCP_NODELAY, also on the listening socket uvicorn binds
for several workers (protocol 0), where asyncio leaves Nagle's algorithm on: every response,
written as headers then body, would wait 40 ms for the client's delayed ACK."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from adapter.service.nodelay import PROTOCOL, NoDelayProtocol


async def _no_app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("no request is sent")


async def _nodelay_of_accepted_connection(protocol: type[H11Protocol]) -> int:
    config = uvicorn.Config(app=_no_app, http=PROTOCOL)
    config.load()
    listener = socket.socket(family=socket.AF_INET)  # as uvicorn's Config.bind_socket makes it
    listener.bind(("127.0.0.1", 0))
    made: list[H11Protocol] = []

    def factory() -> H11Protocol:
        made.append(protocol(config=config, server_state=ServerState(), app_state={}))
        return made[-1]

    server = await asyncio.get_running_loop().create_server(factory, sock=listener)
    try:
        _, writer = await asyncio.open_connection(*listener.getsockname())
        for _ in range(200):
            if made and made[0].transport is not None:
                break
            await asyncio.sleep(0.01)
        sock = made[0].transport.get_extra_info("socket")
        nodelay = int(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()
        await writer.wait_closed()
        return nodelay
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize(("protocol", "expected"), [(H11Protocol, 0), (NoDelayProtocol, 1)])
def test_only_the_nodelay_protocol_turns_nagle_off_on_a_socket_bound_like_uvicorns(
    protocol: type[H11Protocol], expected: int
) -> None:
    assert asyncio.run(_nodelay_of_accepted_connection(protocol)) == expected
