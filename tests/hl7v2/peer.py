"""A plain-socket MLLP peer for the tests: frames, sends, and reads ACKs (no theraclaim code involved)."""

from __future__ import annotations

import socket
import ssl

import hl7

START, END = b"\x0b", b"\x1c\x0d"
TIMEOUT = 30.0  # a safety net for a broken listener, never a measured time


def frame(message: bytes) -> bytes:
    return START + message + END


class Peer:
    def __init__(self, port: int, *, context: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> None:
        raw = socket.create_connection((host, port), timeout=TIMEOUT)
        self.sock = context.wrap_socket(raw, server_hostname="localhost") if context else raw
        self.pending = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def ack(self) -> str:
        """The next ACK (its segments separated by CR, without the framing)."""
        while END not in self.pending:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed by the listener; pending {self.pending!r}")
            self.pending += chunk
        data, _, self.pending = self.pending.partition(END)
        assert data.startswith(START), data
        return data[1:].decode()

    def exchange(self, message: bytes) -> str:
        self.send(frame(message))
        return self.ack()

    def closed_by_listener(self) -> bool:
        """True when the listener closed the connection (recv returns b"" or the connection is reset)."""
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


def well_formed(ack: str) -> str:
    """The ACK, once python-hl7 (a parser we did not write) has read it as one message starting with MSH."""
    message = hl7.parse(ack)
    assert str(message.segments("MSH")[0][0]) == "MSH" and str(message[0][0]) == "MSH", ack
    return ack


def fields(ack: str, segment: str) -> list[str]:
    """The fields of the first ``segment`` of an ACK (index = HL7 field number; MSH shifted to match)."""
    for line in well_formed(ack).split("\r"):
        if line.startswith(segment + "|"):
            parts = line.split("|")
            return ["MSH", "|", *parts[1:]] if segment == "MSH" else parts
    raise AssertionError(f"no {segment} in {ack!r}")


def errors(ack: str) -> list[list[str]]:
    return [line.split("|") for line in well_formed(ack).split("\r") if line.startswith("ERR|")]
