"""Delivery workers: claim a due delivery, send it, record the verdict; repeat until stopped.

Any number of workers, in any number of processes and replicas, share one PostgreSQL outbox
(rows are leased with SKIP LOCKED); on SQLite a process runs at most one.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from adapter.rules.catalog import Rules, load_rules
from adapter.service.delivery import outbox
from adapter.service.delivery.config import Destinations
from adapter.service.delivery.folder import FolderExporter
from adapter.service.delivery.outbox import FAILED, Claimed, Verdict
from adapter.service.delivery.send import FhirSender
from adapter.service.migrate import upgrade
from adapter.service.settings import Settings
from adapter.service.store import Store

log = logging.getLogger("theraclaim.delivery")


def worker_count(settings: Settings, destinations: Destinations | None, dialect: str) -> int:
    """How many workers to run: the setting (default 1 with destinations), at most 1 on SQLite."""
    if destinations is None:
        return 0
    wanted = 1 if settings.delivery_workers is None else settings.delivery_workers
    return min(wanted, 1) if dialect == "sqlite" else wanted


class Wakeup:
    """An idle worker's wait: until a committed Claim change NOTIFYs new deliveries (PostgreSQL), or
    the poll interval passes (retries and expired leases come due without a notification)."""

    def __init__(self, store: Store, poll: float) -> None:
        self.poll = poll
        url = store.engine.url
        self.conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.listens = url.get_backend_name() == "postgresql"
        self.connection: psycopg.Connection[Any] | None = None

    def wait(self, stop: threading.Event) -> None:
        if not self.listens:
            stop.wait(self.poll)
            return
        try:
            if self.connection is None:
                self.connection = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5)
                self.connection.execute(sql.SQL("LISTEN {}").format(sql.Identifier(outbox.CHANNEL)))
            deadline = time.monotonic() + self.poll
            while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
                # a second at most per wait, so that a stop is seen soon
                if any(True for _ in self.connection.notifies(timeout=min(left, 1.0), stop_after=1)):
                    return
        except psycopg.Error:  # the database is down: poll, and listen again when it is back
            self.close()
            stop.wait(self.poll)

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


class Worker:
    def __init__(
        self, store: Store, destinations: Destinations, settings: Settings, rules: Rules | None = None
    ) -> None:
        self.store = store
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = timedelta(seconds=settings.delivery_lease_seconds)
        self.poll = settings.delivery_poll_seconds
        self.wakeup = Wakeup(store, self.poll)
        self.batch = settings.delivery_batch_size
        self.senders = {d.id: FhirSender(d, settings.delivery_max_attempts) for d in destinations.fhir}
        self.folders = [
            FolderExporter(store, rules or load_rules(settings.mappings_dir), d, settings) for d in destinations.folders
        ]

    def close(self) -> None:
        self.wakeup.close()
        for sender in self.senders.values():
            sender.close()

    def run_once(self) -> list[Claimed]:
        """Lease a batch of due deliveries, attempt each, record the verdicts together; the ones
        leased (empty: nothing was due)."""
        batch = outbox.claim(self.store, self.owner, self.lease, self.batch)
        verdicts = []
        for claimed in batch:
            sender = self.senders.get(claimed.destination)
            if sender is not None and datetime.now(UTC) + sender.longest_send >= claimed.lease_until:
                outbox.release(self.store, claimed, self.owner)  # another worker could take it mid-send
                continue
            verdicts.append((claimed, self._attempt(claimed, sender)))
        if verdicts:
            lost = outbox.finish(self.store, self.owner, verdicts)
            for claimed, verdict in verdicts:
                if claimed in lost:
                    log.warning("delivery %s: lease lost before the verdict was recorded", claimed.task_id)
                    continue
                log.info(
                    "delivery %s to %s attempt %d: %s%s",
                    claimed.task_id,
                    claimed.destination,
                    claimed.attempts,
                    verdict.state,
                    f" ({verdict.reason})" if verdict.reason else "",
                )
        return batch

    @staticmethod
    def _attempt(claimed: Claimed, sender: FhirSender | None) -> Verdict:
        if sender is None:
            return Verdict(FAILED, None, f"destination {claimed.destination!r} is no longer configured")
        if claimed.claim is None:
            return Verdict(FAILED, None, "the Claim version is not in the database")
        try:
            return sender.send(claimed, claimed.claim)
        except Exception as error:  # a fault of ours, not the destination's: counted as an attempt
            log.warning("delivery %s: the send failed: %s", claimed.task_id, type(error).__name__)
            return sender.later(claimed, datetime.now(UTC), None, f"send failed: {type(error).__name__}", None)

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set; a database or sender failure is logged and retried after a pause.

        The schema is brought up first (idempotent, serialized on PostgreSQL), retried while the
        database cannot be reached, so workers start with the database down and begin when it is up.
        """
        try:
            delay = self.poll
            while not stop.is_set():
                try:
                    upgrade(self.store)
                    break
                except Exception as error:  # the database is down: the reason is in its log
                    log.warning("delivery worker %s: schema upgrade: %s; retrying", self.owner, type(error).__name__)
                    stop.wait(delay)
                    delay = min(delay * 2, 30.0)
            while not stop.is_set():
                try:
                    for folder in self.folders:
                        folder.export_if_due()
                    worked = bool(self.run_once())
                except Exception as error:  # the database is down or answered oddly: keep the worker alive
                    log.warning("delivery worker %s: %s; retrying", self.owner, type(error).__name__)
                    worked = False
                if not worked:
                    self.wakeup.wait(stop)
        finally:
            self.close()


class Pool:
    """``count`` workers on threads of this process, started and stopped together."""

    def __init__(self, store: Store, destinations: Destinations, settings: Settings, count: int) -> None:
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(
                target=Worker(store, destinations, settings).run, args=(self.stop,), name=f"delivery-{n}", daemon=True
            )
            for n in range(count)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def close(self, timeout: float = 10) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout)
