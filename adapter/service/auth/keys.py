"""Client public keys: inline JWKS from the registry, or a ``jwks_url`` fetched with httpx.

A fetched JWKS is cached for ``CACHE_SECONDS``; an assertion naming a ``kid`` the cache lacks
triggers a refetch (key rotation), at most once per ``REFETCH_INTERVAL`` per client, so an
attacker sending made-up kids cannot make us hammer the URL.
"""

from __future__ import annotations

import threading
import time
from typing import Any, cast

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from adapter.service.auth.registry import ClientEntry

CACHE_SECONDS = 300.0  # a fetched key set is used this long
REFETCH_INTERVAL = 60.0  # at most one unknown-kid refetch per client in this many seconds
FETCH_TIMEOUT = 5.0
MAX_JWKS_BYTES = 256 * 1024


class KeyUnavailable(Exception):
    """The client's keys cannot be had (jwks_url down, not a JWKS); the message is safe to show."""


class ClientKeys:
    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, KeySet]] = {}
        self._refetched: dict[str, float] = {}  # when an unknown kid last caused a refetch
        self._lock = threading.Lock()

    def key_set(self, client: ClientEntry, kid: str) -> KeySet:
        """The client's keys, refreshed from its jwks_url when ``kid`` is unknown (rate limited)."""
        if client.jwks is not None:
            return KeySet.import_key_set(cast(Any, client.jwks))
        assert client.jwks_url is not None
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(client.client_id)
            if cached is not None and now - cached[0] < CACHE_SECONDS:
                recently = now - self._refetched.get(client.client_id, -REFETCH_INTERVAL) < REFETCH_INTERVAL
                if _has_kid(cached[1], kid) or recently:
                    return cached[1]
                self._refetched[client.client_id] = now
        fetched = _fetch(client.jwks_url)
        with self._lock:
            self._cache[client.client_id] = (now, fetched)
        return fetched


def _has_kid(keys: KeySet, kid: str) -> bool:
    return any(key.kid == kid for key in keys.keys)


def _fetch(url: str) -> KeySet:
    try:
        response = httpx.get(url, timeout=FETCH_TIMEOUT, follow_redirects=False)
    except httpx.HTTPError as error:
        raise KeyUnavailable(f"the client's jwks_url could not be fetched ({type(error).__name__})") from error
    if response.status_code != 200 or len(response.content) > MAX_JWKS_BYTES:
        raise KeyUnavailable(f"the client's jwks_url answered {response.status_code}")
    try:
        document: Any = response.json()
        public = {"keys": [k for k in document["keys"] if isinstance(k, dict) and "d" not in k and "k" not in k]}
        return KeySet.import_key_set(cast(Any, public))
    except (ValueError, KeyError, TypeError, JoseError) as error:
        raise KeyUnavailable("the client's jwks_url did not answer a JWK Set") from error
