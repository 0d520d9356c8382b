"""MLLP listener (HL7 v2 Minimal Lower Layer Protocol, release 2) on asyncio, in the API's process.

Framing: ``0x0B`` message ``0x1C 0x0D``.  Bytes between frames are dropped; a message that arrives
without its start block (its ``0x1C 0x0D`` seen outside a frame) and a message larger than
``THERACLAIM_MLLP_MAX_BYTES`` get an AR (ERR 100 / 104) and the connection goes on.  A connection
silent for ``THERACLAIM_MLLP_IDLE_SECONDS`` (idle, or half-open: the peer vanished) is closed.
Peers outside ``THERACLAIM_MLLP_ALLOW`` are disconnected before a byte is read; with TLS and a
client CA every peer must present a certificate that CA signed.  Messages are processed in a
worker thread (conversion and the database commit), so the loop never blocks: one slow or broken
connection does not hold up the others or the HTTP API.  No message content is logged.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from dataclasses import dataclass, field
from typing import Any

from adapter.service.auth.access import WriteAccess
from adapter.service.auth.audit import AuditContext
from adapter.service.auth.policy import AuthPolicy, Principal
from adapter.service.budget import DRAIN_SECONDS, InFlight
from adapter.service.hl7v2.door import HEAD_BYTES, Hl7v2Door
from adapter.service.settings import Settings

START, END = b"\x0b", b"\x1c\x0d"
log = logging.getLogger("theraclaim.mllp")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class Frame:
    payload: bytes
    fault: str | None = None  # why the frame cannot be taken as a message
    hl7_code: str = "207"  # table 0357 code of the fault


NO_START = "the message has no MLLP start block (0x0B)"


@dataclass
class Framer:
    """Incremental MLLP de-framing of one connection's byte stream."""

    max_bytes: int
    buffer: bytearray = field(default_factory=bytearray)
    in_frame: bool = False
    head: bytes | None = None  # the start (with the MSH) of an oversized message whose rest is dropped

    def feed(self, data: bytes) -> list[Frame]:
        self.buffer += data
        frames: list[Frame] = []
        while True:
            if not self.in_frame and not self._open(frames):
                return frames
            start, end = self.buffer.find(START), self.buffer.find(END)
            if start >= 0 and (end < 0 or start < end):  # a new frame begins: the unfinished one was aborted
                del self.buffer[: start + 1]
                self.head = None
                continue
            if end < 0:
                if len(self.buffer) > self.max_bytes:  # keep the head for the ACK's MSH, drop the rest
                    self.head = self.head or bytes(self.buffer[:HEAD_BYTES])
                    del self.buffer[:-1]
                return frames
            payload = bytes(self.buffer[:end])
            del self.buffer[: end + 2]
            self.in_frame = False
            if self.head is not None or len(payload) > self.max_bytes:
                too_large = f"the message is larger than {self.max_bytes} bytes"
                frames.append(Frame((self.head or payload)[:HEAD_BYTES], too_large, "104"))
                self.head = None
            else:
                frames.append(Frame(payload))

    def _open(self, frames: list[Frame]) -> bool:
        """Find the next start block; bytes before it are dropped, or answered if they were a message."""
        while True:
            start, end = self.buffer.find(START), self.buffer.find(END)
            if end >= 0 and (start < 0 or end < start):  # a message without its start block
                stray = bytes(self.buffer[:end])
                del self.buffer[: end + 2]
                at = stray.find(b"MSH")
                if at >= 0:
                    frames.append(Frame(stray[at : at + HEAD_BYTES], NO_START, "100"))
                continue
            if start < 0:
                if len(self.buffer) > self.max_bytes:
                    del self.buffer[:-1]
                return False
            del self.buffer[: start + 1]
            self.in_frame, self.head = True, None
            return True


def networks(allow: str) -> list[Network]:
    return [ipaddress.ip_network(part.strip(), strict=False) for part in allow.split(",") if part.strip()]


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.mllp_tls_cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.mllp_tls_cert, settings.mllp_tls_key)
    if settings.mllp_tls_client_ca is not None:
        context.load_verify_locations(settings.mllp_tls_client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def certificate_name(certificate: dict[str, Any] | None) -> str | None:
    """The client_id a verified TLS client certificate stands for: its subject's one commonName.

    Not a subjectAltName: those name hosts (DNS, IP), and one engine host often sends for several
    registered clients.  A subject with several commonNames is ambiguous and names nobody."""
    names = [
        str(value) for rdn in (certificate or {}).get("subject", ()) for name, value in rdn if name == "commonName"
    ]
    return names[0] if len(names) == 1 else None


class MllpListener:
    """With a client registry (THERACLAIM_CLIENTS) an MLLP peer is a registered client: it must present
    a TLS client certificate (THERACLAIM_MLLP_TLS_CLIENT_CA) whose commonName is a registered client_id,
    and it writes with that client's scopes and organization, as through the HTTP doors.  Without a
    registry (protected loopback mode) an allowed peer is the local operator.  Every message leaves an
    AuditEvent (agent: the client, source: the peer's address)."""

    def __init__(self, door: Hl7v2Door, settings: Settings, policy: AuthPolicy, in_flight: InFlight) -> None:
        self.door = door
        self.in_flight = in_flight  # each message's time budget; shutdown stops them (adapter/service/budget.py)
        self.connections: dict[asyncio.StreamWriter, asyncio.Task[Any]] = {}
        self.settings = settings
        self.allowed = networks(settings.mllp_allow)
        self.policy = policy
        self.server: asyncio.Server | None = None
        self.open = 0
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        self.server = await asyncio.start_server(
            self._connection, host, port, ssl=tls_context(self.settings), reuse_port=True, backlog=1024
        )
        self.port = int(self.server.sockets[0].getsockname()[1])
        log.info("MLLP listening on %s:%s", host, self.port)

    async def stop(self) -> None:
        """No new connections; the open ones are closed (shutdown has stopped their messages' work)."""
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        for writer in self.connections:  # an idle one reads the end of its stream and returns
            writer.close()
        if self.connections:
            await asyncio.wait(self.connections.values(), timeout=DRAIN_SECONDS)

    def _admitted(self, writer: asyncio.StreamWriter) -> Principal | None:
        """The peer as a Principal, or None when it may not send (it is then disconnected)."""
        peer = writer.get_extra_info("peername")
        address = ipaddress.ip_address(peer[0]) if peer else None
        if address is None or not any(address in net for net in self.allowed):
            log.warning("MLLP peer %s refused: not in THERACLAIM_MLLP_ALLOW", peer[0] if peer else "?")
            return None
        if self.open >= self.settings.mllp_max_connections:
            log.warning("MLLP peer %s refused: %s connections open", peer[0], self.open)
            return None
        registry = self.policy.registry
        if registry is None:
            return self.policy.authenticate(None, str(address))  # protected loopback mode: the operator
        name = certificate_name(writer.get_extra_info("peercert"))
        client = registry.get(name) if name else None
        if client is None:
            log.warning("MLLP peer %s refused: no TLS client certificate of a registered client", peer[0])
            return None
        return Principal(client.client_id, client.allowed, client.organization, str(address))

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        principal = self._admitted(writer)
        if principal is None:
            writer.close()
            return
        self.open += 1
        framer = Framer(self.settings.mllp_max_bytes)
        task = asyncio.current_task()
        if task is not None:
            self.connections[writer] = task
        try:
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(65536), self.settings.mllp_idle_seconds)
                except TimeoutError:
                    log.info("MLLP connection closed after %s s of silence", self.settings.mllp_idle_seconds)
                    return
                if not data:
                    return
                for frame in framer.feed(data):
                    for ack in await asyncio.to_thread(self.in_flight.run, self._answer, frame, principal):
                        writer.write(START + ack.encode("utf-8") + END)
                    await writer.drain()
        except (ConnectionError, ssl.SSLError) as error:
            log.info("MLLP connection lost: %s", type(error).__name__)
        finally:
            self.open -= 1
            self.connections.pop(writer, None)
            writer.close()

    def _answer(self, frame: Frame, principal: Principal) -> list[str]:
        """The ACKs of one frame, in order (enhanced mode: the accept, then the application acknowledgment)."""
        context = AuditContext("operation", "hl7v2", client_id=principal.client_id, address=principal.address)
        access = WriteAccess(principal, context, self.policy.audit)
        if frame.fault is not None:
            return self.door.reject_frame(frame.payload, frame.fault, frame.hl7_code, access)
        return self.door.handle(frame.payload, access)
