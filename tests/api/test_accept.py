"""theraclaim serve's event loop accepts one connection per poll of the listening socket, so a burst
of new connections is shared by the workers polling it instead of going to the first one awake."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from uvicorn.importer import import_from_string

from adapter import cli
from adapter.service.accept import LOOP, FairAcceptLoop
from adapter.service.nodelay import PROTOCOL, NoDelayProtocol


class _Closing(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


def _left_in_backlog_after_one_poll(loop_class: type[asyncio.AbstractEventLoop], waiting: int) -> int:
    loop = loop_class()
    listener = socket.socket(family=socket.AF_INET)  # as uvicorn's Config.bind_socket makes it
    listener.bind(("127.0.0.1", 0))
    server = loop.run_until_complete(loop.create_server(_Closing, sock=listener))
    clients: list[socket.socket] = []
    try:
        # loopback connects complete in the kernel: they wait in the listen backlog until accepted
        clients = [socket.create_connection(listener.getsockname()) for _ in range(waiting)]
        loop.call_soon(loop.stop)  # stop first: run_forever polls the selector once, runs its callbacks, returns
        loop.run_forever()
        listener.setblocking(False)
        left = 0
        while True:
            try:
                connection, _ = listener.accept()
            except BlockingIOError:
                return left
            connection.close()
            left += 1
    finally:
        for client in clients:
            client.close()
        loop.run_until_complete(asyncio.sleep(0.05))  # what the loop accepted is served (and closed)
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()


@pytest.mark.parametrize(("loop_class", "left"), [(asyncio.SelectorEventLoop, 0), (FairAcceptLoop, 3)])
def test_one_poll_accepts_one_waiting_connection_only_with_the_fair_loop(
    loop_class: type[asyncio.AbstractEventLoop], left: int
) -> None:
    assert _left_in_backlog_after_one_poll(loop_class, 4) == left


def test_the_fair_loop_still_accepts_and_serves_every_connection() -> None:
    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.transport.write(data)  # type: ignore[attr-defined]
            self.transport.close()

    async def exchange(count: int) -> list[bytes]:
        server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]

        async def client(n: int) -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"%04d" % n)
            answer = await reader.read()
            writer.close()
            await writer.wait_closed()
            return answer

        try:
            return await asyncio.gather(*(client(n) for n in range(count)))
        finally:
            server.close()
            await server.wait_closed()

    with asyncio.Runner(loop_factory=FairAcceptLoop) as runner:
        assert runner.run(exchange(32)) == [b"%04d" % n for n in range(32)]


def test_serve_gives_uvicorn_the_fair_loop_and_the_nodelay_protocol(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(options))
    monkeypatch.setenv("THERACLAIM_DATABASE_URL", f"sqlite:///{tmp_path / 'serve.db'}")
    monkeypatch.delenv("THERACLAIM_CLIENTS", raising=False)
    assert cli.main(["serve", "--host", "127.0.0.1", "--port", "0", "--workers", "2"]) == 0
    assert seen["loop"] == LOOP and seen["http"] == PROTOCOL and seen["workers"] == 2
    assert uvicorn.Config(app="adapter.service.api:main_app", loop=LOOP).get_loop_factory() is FairAcceptLoop
    assert import_from_string(PROTOCOL) is NoDelayProtocol  # how uvicorn resolves a protocol it does not name
