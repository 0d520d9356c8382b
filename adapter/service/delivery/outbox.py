"""The transactional outbox: delivery rows written with the Claim, claimed by workers, finished once.

A row is written in the transaction that writes the Claim version (``enqueue``), so a Claim change
and its deliveries commit or roll back together.  Workers ``claim`` due rows with
``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite runs one worker): a claimed row is
``in-progress`` with a lease, and a row whose lease ran out (its worker died mid-send) is due again.
A row is only due when no earlier version of the same Claim for the same destination is still
waiting or being sent, so version 2 never goes before version 1, a cancellation never before the
Claim it cancels.  ``finish`` only changes a row its worker still holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import and_, exists, func, insert, or_, select, text, tuple_, update
from sqlalchemy.engine import Connection, RowMapping

from adapter.service.delivery.config import Destinations
from adapter.service.store import Store, Stored, deliveries, resource_history

REQUESTED, IN_PROGRESS, COMPLETED, FAILED = "requested", "in-progress", "completed", "failed"
OPEN_STATES = (REQUESTED, IN_PROGRESS)
CHANNEL = "theraclaim_deliveries"  # PostgreSQL LISTEN/NOTIFY channel of new deliveries


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery leased to one worker: what to send where, and the attempt number."""

    task_id: str
    destination: str
    claim_id: str
    claim_version: int
    attempts: int
    lease_until: datetime
    claim: dict[str, Any] | None  # the Claim version to send (None: not in the database)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The end of one attempt: completed, retry at ``retry_at``, or failed (a dead letter)."""

    state: str
    http_status: int | None = None
    reason: str | None = None
    response: str | None = None
    retry_at: datetime | None = None


def claim_payer(provenance: list[dict[str, Any]], claim_id: str, payer_ids: frozenset[str]) -> str | None:
    """The payer pack a Claim was priced with, from the policies of the Provenance that targets it."""
    names = {f"Claim/{claim_id}", f"urn:uuid:{claim_id}"}
    for resource in provenance:
        targets = {
            str(t.get("reference")).split("/_history/")[0] for t in resource.get("target", []) if isinstance(t, dict)
        }
        if targets & names:
            for policy in resource.get("policy", []):
                pack = str(policy).rsplit("/", 1)[-1].split("|", 1)[0]
                if pack in payer_ids:
                    return pack
    return None


def enqueue(connection: Connection, destinations: Destinations, claim: Stored, payer: str | None, now: datetime) -> int:
    """Write the delivery rows of one new Claim version (call in the Claim's transaction)."""
    resource = claim.resource
    status = str(resource.get("status"))
    tenant = claim.tenant  # the billing Organization's NPI (adapter/service/auth), as stored with the Claim
    written = 0
    for destination in destinations.fhir:  # a folder takes every new version, at its next export
        row_payer = payer
        if status == "cancelled":
            # a cancellation goes only where the Claim went: a destination never told of it has nothing to cancel
            earlier = connection.execute(
                select(deliveries.c.payer)
                .where(deliveries.c.destination == destination.id, deliveries.c.claim_id == resource["id"])
                .order_by(deliveries.c.claim_version.desc())
                .limit(1)
            ).first()
            if earlier is None:
                continue
            row_payer = earlier.payer
        if not destination.filter.accepts(status, row_payer, tenant):
            continue
        connection.execute(
            insert(deliveries).values(
                task_id=str(uuid.uuid4()),
                destination=destination.id,
                claim_id=resource["id"],
                claim_version=claim.version_id,
                claim_status=status,
                payer=row_payer,
                tenant=tenant,
                state=REQUESTED,
                version=1,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
        )
        written += 1
    if written and connection.dialect.name == "postgresql":
        # wakes idle workers when (and only if) this transaction commits
        connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})
    return written


def claim(store: Store, owner: str, lease: timedelta, limit: int = 1) -> list[Claimed]:
    """Lease up to ``limit`` of the oldest due deliveries to ``owner``; one short transaction."""
    now = datetime.now(UTC)
    earlier = deliveries.alias("earlier")
    blocked = exists().where(
        earlier.c.destination == deliveries.c.destination,
        earlier.c.claim_id == deliveries.c.claim_id,
        earlier.c.claim_version < deliveries.c.claim_version,
        earlier.c.state.in_(OPEN_STATES),
    )
    due = or_(
        and_(deliveries.c.state == REQUESTED, deliveries.c.next_attempt_at <= now),
        and_(deliveries.c.state == IN_PROGRESS, deliveries.c.lease_until <= now),
    )
    query = (
        select(deliveries)
        .where(due, ~blocked)
        .order_by(deliveries.c.next_attempt_at, deliveries.c.seq)
        .limit(limit)
        .with_for_update(skip_locked=True, of=deliveries)
    )
    until = now + lease
    contents: dict[tuple[str, int], dict[str, Any]] = {}
    with store.transaction() as connection:
        rows = connection.execute(query).mappings().all()
        if rows:
            versions = [(row["claim_id"], row["claim_version"]) for row in rows]
            history = connection.execute(
                select(resource_history.c.id, resource_history.c.version_id, resource_history.c.content).where(
                    resource_history.c.resource_type == "Claim",
                    tuple_(resource_history.c.id, resource_history.c.version_id).in_(versions),
                )
            )
            contents = {(h.id, h.version_id): orjson.loads(h.content) for h in history}
            connection.execute(
                update(deliveries)
                .where(deliveries.c.seq.in_([row["seq"] for row in rows]))
                .values(
                    state=IN_PROGRESS,
                    lease_owner=owner,
                    lease_until=until,
                    attempts=deliveries.c.attempts + 1,
                    version=deliveries.c.version + 1,
                    updated_at=now,
                )
            )
    return [
        Claimed(
            row["task_id"],
            row["destination"],
            row["claim_id"],
            row["claim_version"],
            row["attempts"] + 1,
            until,
            contents.get((row["claim_id"], row["claim_version"])),
        )
        for row in rows
    ]


def release(store: Store, claimed: Claimed, owner: str) -> None:
    """Give back a leased delivery unsent (its lease is too short for a send): no attempt is counted."""
    with store.transaction() as connection:
        connection.execute(
            update(deliveries)
            .where(
                deliveries.c.task_id == claimed.task_id,
                deliveries.c.state == IN_PROGRESS,
                deliveries.c.lease_owner == owner,
            )
            .values(
                state=REQUESTED,
                lease_owner=None,
                lease_until=None,
                attempts=deliveries.c.attempts - 1,
                version=deliveries.c.version + 1,
                updated_at=datetime.now(UTC),
            )
        )


def finish(store: Store, owner: str, verdicts: list[tuple[Claimed, Verdict]]) -> list[Claimed]:
    """Record the ends of attempts in one transaction; the deliveries whose lease was lost (another
    worker has them now, and their verdict is not recorded)."""
    now = datetime.now(UTC)
    lost = []
    with store.transaction() as connection:
        if store.dialect == "postgresql":
            # Losing this commit in a crash only makes the rows due again after their lease: the
            # sends are repeated (idempotent), nothing is lost. So it need not wait for the WAL flush.
            connection.execute(text("SET LOCAL synchronous_commit = off"))
        for claimed, verdict in verdicts:
            values: dict[str, Any] = {
                "state": verdict.state,
                "lease_owner": None,
                "lease_until": None,
                "http_status": verdict.http_status,
                "reason": verdict.reason[:512] if verdict.reason else None,
                "updated_at": now,
                "version": deliveries.c.version + 1,
            }
            if verdict.response is not None or verdict.state != REQUESTED:
                values["response"] = verdict.response
            if verdict.retry_at is not None:
                values["next_attempt_at"] = verdict.retry_at
            result = connection.execute(
                update(deliveries)
                .where(
                    deliveries.c.task_id == claimed.task_id,
                    deliveries.c.state == IN_PROGRESS,
                    deliveries.c.lease_owner == owner,
                )
                .values(**values)
            )
            if result.rowcount != 1:
                lost.append(claimed)
    return lost


class RetryRefused(Exception):
    """The delivery is not a dead letter, or a newer version of its Claim was already delivered."""


def retry(store: Store, task_id: str, also: Callable[[Connection], None] | None = None) -> RowMapping | None:
    """Send a dead letter again: back to requested, attempts from zero (None: no such delivery).
    ``also`` writes in the same transaction (the request's AuditEvent)."""
    now = datetime.now(UTC)
    with store.transaction() as connection:
        row = (
            connection.execute(select(deliveries).where(deliveries.c.task_id == task_id).with_for_update())
            .mappings()
            .first()
        )
        if row is None:
            return None
        if row["state"] != FAILED:
            raise RetryRefused(f"the delivery is {row['state']}; only a failed delivery is sent again")
        newer = connection.execute(
            select(func.count())
            .select_from(deliveries)
            .where(
                deliveries.c.destination == row["destination"],
                deliveries.c.claim_id == row["claim_id"],
                deliveries.c.claim_version > row["claim_version"],
                deliveries.c.state.in_((*OPEN_STATES, COMPLETED)),
            )
        ).scalar_one()
        if newer:
            raise RetryRefused("a newer version of the Claim went to this destination; resending would undo it")
        connection.execute(
            update(deliveries)
            .where(deliveries.c.seq == row["seq"])
            .values(state=REQUESTED, attempts=0, next_attempt_at=now, updated_at=now, version=row["version"] + 1)
        )
        if also is not None:
            also(connection)
        return connection.execute(select(deliveries).where(deliveries.c.seq == row["seq"])).mappings().one()


def read(store: Store, task_id: str) -> RowMapping | None:
    with store.engine.connect() as connection:
        return connection.execute(select(deliveries).where(deliveries.c.task_id == task_id)).mappings().first()


def search(
    store: Store,
    *,
    snapshot: datetime,
    after: int | None = None,
    claim_id: str | None = None,
    claim_version: int | None = None,
    states: tuple[str, ...] = (),
    task_ids: tuple[str, ...] = (),
    tenants: tuple[str, ...] | None = None,
    count: int = 50,
) -> tuple[int, list[RowMapping]]:
    """Deliveries by Claim (and version), state, id and tenant, oldest first, with the total: those
    created by ``snapshot`` (the first page's time), after the row ``after`` (a keyset: the rows'
    order never changes, so pages neither repeat nor skip one)."""
    conditions = [deliveries.c.created_at <= snapshot]
    if claim_id is not None:
        conditions.append(deliveries.c.claim_id == claim_id)
    if claim_version is not None:
        conditions.append(deliveries.c.claim_version == claim_version)
    if states:
        conditions.append(deliveries.c.state.in_(states))
    if task_ids:
        conditions.append(deliveries.c.task_id.in_(task_ids))
    if tenants is not None:
        conditions.append(deliveries.c.tenant.in_(tenants))
    where = and_(*conditions)
    with store.engine.connect() as connection:
        total = connection.execute(select(func.count()).select_from(deliveries).where(where)).scalar_one()
        later = and_(where, deliveries.c.seq > after) if after is not None else where
        rows = connection.execute(select(deliveries).where(later).order_by(deliveries.c.seq).limit(count))
        return int(total), list(rows.mappings().all())
