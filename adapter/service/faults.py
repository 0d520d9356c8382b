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

from fastapi import FastAPI, Request
from fastapi.responses import Response
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from adapter.service.fhirhttp import RETRY_AFTER_SECONDS, Gate, fhir_response, internal_error, outcome
from adapter.service.migrate import upgrade
from adapter.service.store import Store

DATABASE_DOWN = (OperationalError, InterfaceError, PoolTimeout)
FIRST_DELAY, MAX_DELAY = 0.5, 30.0
log = logging.getLogger("theraclaim.database")

# SQLSTATE classes of a PostgreSQL that cannot serve anyone now (PostgreSQL docs, appendix A "Error
# Codes"): connection exception, insufficient resources, operator intervention, system error.  Other
# classes (54 program limit exceeded, 42 syntax, ...) refuse our statement: a bug of ours, not an outage.
OUTAGE_SQLSTATE_CLASSES = ("08", "53", "57", "58")
# SQLite's result codes of a file that cannot be used now (https://sqlite.org/rescode.html); extended
# codes (SQLITE_IOERR_WRITE, ...) start with their primary one.
SQLITE_OUTAGES = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_FULL", "SQLITE_READONLY")


def is_outage(error: Exception) -> bool:
    """Whether a database error means "unreachable now, retry later" (503) rather than a statement the
    database refused (our bug: 500, so that a client is not told the database is down when it is not)."""
    if isinstance(error, PoolTimeout) or getattr(error, "connection_invalidated", False):
        return True
    driver_error = getattr(error, "orig", None)
    sqlstate = getattr(driver_error, "sqlstate", None)
    if sqlstate:
        return str(sqlstate)[:2] in OUTAGE_SQLSTATE_CLASSES
    sqlite_name = getattr(driver_error, "sqlite_errorname", None)
    if sqlite_name:
        return str(sqlite_name).startswith(SQLITE_OUTAGES)
    return True  # no code at all: the driver failed before the server answered (refused, reset, timed out)


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

    def _until_ready(request: Request) -> Response | None:
        if not schema.ready.is_set() and request.url.path != "/healthz":
            return unavailable(schema.retry_after())
        return None

    app.add_middleware(Gate, answer=_until_ready)

    for error_type in DATABASE_DOWN:

        @app.exception_handler(error_type)
        async def _database_down(_request: Request, error: Exception) -> Response:
            if not is_outage(error):  # the type and code only: the statement's text may quote a resource (PHI)
                log.error("database refused a statement: %s %s", type(error).__name__, _code_of(error))
                return internal_error()
            log.warning("database unreachable: %s", type(error).__name__)
            return unavailable()

    app.router.on_shutdown.append(schema.close)
    app.router.on_shutdown.append(lambda: _checkpoint(store))
    return schema


def _code_of(error: Exception) -> str:
    driver_error = getattr(error, "orig", None)
    return str(getattr(driver_error, "sqlstate", None) or getattr(driver_error, "sqlite_errorname", None) or "")
