"""Protected defaults: without a client registry the server is for this machine only.

Authentication is off when no registry is configured (the README's two commands keep working),
so the server must not be reachable from the network: it binds loopback addresses only, and
every response says ``X-Theraclaim-Authentication: disabled`` (see guard.py).
"""

from __future__ import annotations

import ipaddress

from adapter.service.settings import Settings


class ProtectionError(Exception):
    """A start-up setting that would expose data; the message says what to change."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, settings: Settings) -> None:
    """Refuse a non-loopback HTTP (or MLLP) address while authentication is disabled."""
    if settings.clients is not None:
        return
    listening = [host] + ([settings.mllp_host or host] if settings.mllp_port is not None else [])
    for address in listening:
        if not is_loopback(address):
            raise ProtectionError(
                f"refusing to listen on {address}: without a client registry authentication is disabled, so only "
                "loopback addresses (127.0.0.1, ::1, localhost) are allowed; set THERACLAIM_CLIENTS to a registry "
                "(see `theraclaim clients new-key`) to serve the network"
            )
