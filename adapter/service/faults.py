"""Database faults: every request answers 503 with an OperationOutcome and ``Retry-After`` while
the database cannot be reached, and the service recovers by itself when it is back.

The service also starts while the database is down: the schema upgrade is retried in the
background with exponential backoff, and until it has run every route but ``/healthz``
(liveness) answers 503, ``/readyz`` included.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from adapter.service.fhirhttp import RETRY_AFTER_SECONDS, fhir_response, outcome
from adapter.service.migrate import upgrade
from adapter.service.store import Store

DATABASE_DOWN = (OperationalError, InterfaceError, PoolTimeout)
FIRST_DELAY, MAX_DELAY = 0.5, 30.0
log = logging.getLogger("theraclaim.database")


def unavailable(retry_after: int = RETRY_AFTER_SECONDS) -> Response:
    """The database is down.  ``retry_after``: at start-up, when the schema upgrade tries again; later,
    the connect timeout (a request's reconnect finds out within it)."""
    body = outcome("database-unavailable", "the database cannot be reached; retry later", "transient")
    return fhir_response(body, 503, {"Retry-After": str(retry_after)})


class Schema:
    """The schema upgrade: run now, or retried in the background while the database is down."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._next_attempt = time.monotonic()
        if not self._attempt():
            threading.Thread(target=self._retry, name="theraclaim-schema", daemon=True).start()

    def _attempt(self) -> bool:
        try:
            upgrade(self.store)
        except DATABASE_DOWN as error:  # the reason is in the database's log; ours names the type only
            log.warning("database unreachable at start-up (%s); retrying in the background", type(error).__name__)
            return False
        self.ready.set()
        return True

    def retry_after(self) -> int:
        """Whole seconds until the next upgrade attempt (at least 1): the backoff's own answer."""
        return max(1, math.ceil(self._next_attempt - time.monotonic()))

    def _retry(self) -> None:
        delay = FIRST_DELAY
        self._next_attempt = time.monotonic() + delay
        while not self._stop.wait(delay):
            if self._attempt():
                log.info("database reachable: schema up to date, service ready")
                return
            delay = min(delay * 2, MAX_DELAY)
            self._next_attempt = time.monotonic() + delay

    def close(self) -> None:
        self._stop.set()


def _checkpoint(store: Store) -> None:
    try:
        store.checkpoint()
    except DATABASE_DOWN as error:  # shutting down anyway; the log is replayed at the next start
        log.warning("checkpoint at shutdown failed (%s)", type(error).__name__)


def install_database_faults(app: FastAPI, store: Store) -> Schema:
    """Bring the schema up (now or later) and map database outages to 503 on every route."""
    schema = Schema(store)

    @app.middleware("http")
    async def _until_ready(request: Request, call_next: Any) -> Response:
        if not schema.ready.is_set() and request.url.path != "/healthz":
            return unavailable(schema.retry_after())
        response: Response = await call_next(request)
        return response

    for error_type in DATABASE_DOWN:

        @app.exception_handler(error_type)
        async def _database_down(_request: Request, error: Exception) -> Response:
            log.warning("database unreachable: %s", type(error).__name__)
            return unavailable()

    app.router.on_shutdown.append(schema.close)
    app.router.on_shutdown.append(lambda: _checkpoint(store))
    return schema
