"""The durable queue of pulls that Subscription notifications ask for, and its worker.

``enqueue`` turns a notification into rows of ``pull_queue`` (one per event, keyed by
subscription and event number, so a repeated notification adds nothing) and, when event numbers
were skipped, one catch-up row: a search of the source for Encounters finished since the last
event seen.  ``PullWorker.run_once`` claims one due row (``FOR UPDATE SKIP LOCKED`` on PostgreSQL,
a conditional update everywhere), pulls the Encounter and makes its Claim through the same
ClaimService as a push; a failing source is retried with growing delays, then marked failed.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from adapter.service.claims import ClaimService
from adapter.service.fhirhttp import FhirError
from adapter.service.pulls import PullService
from adapter.service.store import Store, pull_queue, subscription_state
from adapter.service.subscriptions import Notification
from adapter.sourcing import NotOnSource, SourceError, pull_encounter, source_id

MAX_ATTEMPTS = 6
RETRY_BASE = timedelta(seconds=5)
LEASE = timedelta(minutes=10)  # a "running" row older than this was left by a dead worker
log = logging.getLogger("theraclaim.pulls")


@dataclass(frozen=True)
class Enqueued:
    queued: int
    duplicates: int
    catch_up: bool


def _now() -> datetime:
    return datetime.now(UTC)


def utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; they were stored as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


class PullQueue:
    def __init__(self, store: Store, pulls: PullService) -> None:
        self.store = store
        self.pulls = pulls

    def enqueue(self, notification: Notification) -> Enqueued:
        """Rows for the notification's Encounter events (and a catch-up when events were missed)."""
        for attempt in range(2):  # a concurrent identical notification: the second pass finds its rows
            try:
                with self.store.transaction() as connection:
                    return self._enqueue(connection, notification)
            except IntegrityError:
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def _enqueue(self, connection: Connection, notification: Notification) -> Enqueued:
        now = _now()
        sub = notification.subscription
        state = connection.execute(select(subscription_state).where(subscription_state.c.subscription == sub)).first()
        last = state.last_event if state is not None else None
        last_seen = _aware(state.last_seen_at) if state is not None else None
        numbers = [e.number for e in notification.events]
        highest = max([*numbers, notification.events_since_start or 0, last or 0])
        first_new = min(numbers) if numbers else (notification.events_since_start or 0) + 1
        gap = last is not None and first_new > last + 1 and notification.type != "handshake"
        rows: list[dict[str, Any]] = []
        for event in notification.events:
            target = self._encounter_of(event.focus, notification)
            if target is not None:
                rows.append(self._row(f"{sub}#{event.number}", "encounter", target, None, now))
        if gap:
            since = last_seen or now
            rows.append(self._row(f"{sub}#catch-up#{last}-{first_new}", "catch-up", None, since, now))
        keys = [r["event_key"] for r in rows]
        existing = (
            set(connection.execute(select(pull_queue.c.event_key).where(pull_queue.c.event_key.in_(keys))).scalars())
            if keys
            else set()
        )
        fresh = [r for r in rows if r["event_key"] not in existing]
        for row in fresh:
            connection.execute(insert(pull_queue).values(**row))
        seen_at = max([e.timestamp for e in notification.events if e.timestamp] or [now])
        if state is None:
            connection.execute(
                insert(subscription_state).values(subscription=sub, last_event=highest, last_seen_at=seen_at)
            )
        elif highest > (last or 0) or seen_at > (last_seen or seen_at):
            connection.execute(
                update(subscription_state)
                .where(subscription_state.c.subscription == sub)
                .values(last_event=max(highest, last or 0), last_seen_at=max(seen_at, last_seen or seen_at))
            )
        return Enqueued(len(fresh), len(rows) - len(fresh), gap)

    def enqueue_pulls(self, pulls: tuple[tuple[str, str], ...]) -> Enqueued:
        """Rows for (event key, Encounter id) pairs from a cloud service's events; known keys are skipped."""
        now = _now()
        rows = [self._row(key, "encounter", encounter, None, now) for key, encounter in pulls]
        for attempt in range(2):
            try:
                with self.store.transaction() as connection:
                    keys = [r["event_key"] for r in rows]
                    known = (
                        set(
                            connection.execute(
                                select(pull_queue.c.event_key).where(pull_queue.c.event_key.in_(keys))
                            ).scalars()
                        )
                        if keys
                        else set()
                    )
                    fresh = [r for r in rows if r["event_key"] not in known]
                    for row in fresh:
                        connection.execute(insert(pull_queue).values(**row))
                    return Enqueued(len(fresh), len(rows) - len(fresh), False)
            except IntegrityError:
                if attempt == 1:
                    raise
        raise AssertionError("unreachable")

    def _encounter_of(self, focus: str | None, notification: Notification) -> str | None:
        """The Encounter id of an event's focus, when it is an Encounter on the source (and, with
        full-resource content, finished)."""
        if focus is None or not self.pulls.configured:
            return None
        found = source_id(self.pulls.client(), {"reference": focus}, "Encounter")
        if found is None:
            return None
        for resource in notification.resources:
            if resource.get("resourceType") == "Encounter" and resource.get("id") == found[1]:
                return found[1] if resource.get("status") == "finished" else None
        return found[1]

    @staticmethod
    def _row(key: str, kind: str, encounter: str | None, since: datetime | None, now: datetime) -> dict[str, Any]:
        return {
            "id": str(uuid.uuid4()),
            "event_key": key,
            "kind": kind,
            "encounter_id": encounter,
            "since": since,
            "status": "queued",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }

    def rows(self, limit: int = 100) -> list[Any]:
        with self.store.engine.connect() as connection:
            query = select(pull_queue).order_by(pull_queue.c.created_at.desc()).limit(limit)
            return list(connection.execute(query))


def install_pull_workers(app: Any, worker: PullWorker, configured: bool, count: int) -> None:
    """Start the worker threads with the app (after the schema is ready), stop them with it."""
    if not configured or count == 0:
        return

    def start() -> None:
        worker.start(count, app.state.schema.ready)

    app.router.on_startup.append(start)
    app.router.on_shutdown.append(worker.stop)


def queue_counts(database_url: str) -> dict[str, int] | None:
    """Rows of the queue by status, or None when the database or the table is not there."""
    try:
        store = Store(database_url)
        try:
            with store.engine.connect() as connection:
                query = select(pull_queue.c.status, func.count()).group_by(pull_queue.c.status)
                return {status: int(n) for status, n in connection.execute(query)}
        finally:
            store.engine.dispose()
    except Exception:  # no database, or not migrated: there is no queue to show
        return None


class PullWorker:
    """Processes the queue; ``run_once`` is one step (tests call it), ``start`` runs threads."""

    def __init__(self, queue: PullQueue, claims: ClaimService, poll_seconds: float = 1.0) -> None:
        self.queue = queue
        self.claims = claims
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, count: int, ready: threading.Event | None = None) -> None:
        """Start ``count`` threads; they wait for ``ready`` (the schema is up to date) first."""
        for i in range(count):
            thread = threading.Thread(target=self._loop, args=(ready,), name=f"theraclaim-pull-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _loop(self, ready: threading.Event | None) -> None:
        while not self._stop.is_set():
            if ready is not None and not ready.is_set():
                self._stop.wait(self.poll_seconds)
                continue
            try:
                busy = self.run_once()
            except Exception as error:  # a database outage: wait and retry; a leased row is taken up again later
                # the type only: SQLAlchemy's message carries the statement's parameters (identifiers)
                log.warning("pull worker step failed (%s); retrying", type(error).__name__)
                busy = False
            if not busy:
                self._stop.wait(self.poll_seconds)

    def run_once(self) -> bool:
        """Claim and process one due row; False when none is due."""
        row = self._claim()
        if row is None:
            return False
        try:
            claim_id = None
            if row.kind == "catch-up":
                self._catch_up(row)
            else:
                claim_id = self._pull(row.encounter_id)
        except (SourceError, FhirError) as error:
            reason = error.reason if isinstance(error, SourceError) else error.message
            retry = isinstance(error, SourceError) or error.status in (409, 503)
            self._finish(row, "queued" if retry and row.attempts < MAX_ATTEMPTS else "failed", reason[:250])
            return True
        except NotOnSource as error:
            self._finish(row, "failed", str(error)[:250])
            return True
        self._finish(row, "done", None, claim_id)
        return True

    def _claim(self) -> Any:
        now = _now()
        due = or_(
            (pull_queue.c.status == "queued") & (pull_queue.c.next_attempt_at <= now),
            (pull_queue.c.status == "running") & (pull_queue.c.updated_at <= now - LEASE),
        )
        with self.queue.store.transaction() as connection:
            query = select(pull_queue).where(due).order_by(pull_queue.c.next_attempt_at).limit(1)
            if self.queue.store.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            row = connection.execute(query).first()
            if row is None:
                return None
            taken = connection.execute(
                update(pull_queue)
                .where(pull_queue.c.id == row.id, pull_queue.c.updated_at == row.updated_at)
                .values(status="running", attempts=row.attempts + 1, updated_at=now)
            )
            if taken.rowcount != 1:
                return None
            return connection.execute(select(pull_queue).where(pull_queue.c.id == row.id)).one()

    def _finish(self, row: Any, status: str, error: str | None, claim_id: str | None = None) -> None:
        now = _now()
        values: dict[str, Any] = {"status": status, "last_error": error, "updated_at": now, "claim_id": claim_id}
        if status == "queued":
            values["next_attempt_at"] = now + RETRY_BASE * 2 ** (row.attempts - 1)
        with self.queue.store.transaction() as connection:
            connection.execute(update(pull_queue).where(pull_queue.c.id == row.id).values(**values))

    def _pull(self, encounter_id: str) -> str | None:
        pulls = self.queue.pulls
        bundle, report = pull_encounter(pulls.client(), pulls.rules, encounter_id=encounter_id)
        encounter = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter")
        if encounter.get("status") != "finished":
            return None  # not (yet, or no longer) finished: nothing to bill from this event
        outcome = self.claims.from_encounter(bundle, None, source=report)
        return outcome.claims[0].resource["id"] if outcome.claims else None

    def _catch_up(self, row: Any) -> None:
        since = _aware(row.since) or _now()
        client = self.queue.pulls.client()
        found = client.search("Encounter", [("_lastUpdated", f"gt{since.isoformat()}"), ("status", "finished")])
        now = _now()
        with self.queue.store.transaction() as connection:
            for encounter in found:
                if encounter.get("resourceType") != "Encounter" or not isinstance(encounter.get("id"), str):
                    continue
                version = (encounter.get("meta") or {}).get("versionId", "")
                key = f"{row.event_key}#{encounter['id']}#{version}"
                if connection.execute(select(pull_queue.c.id).where(pull_queue.c.event_key == key)).first() is None:
                    connection.execute(
                        insert(pull_queue).values(**PullQueue._row(key, "encounter", encounter["id"], None, now))
                    )
        return None
