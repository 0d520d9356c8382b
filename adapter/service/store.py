"""Versioned FHIR resource storage on SQLAlchemy 2: SQLite by default, PostgreSQL for scale.

Two tables hold resources: ``resource_current`` (one row per type and id, with the search
columns) and ``resource_history`` (every version).  Writers of the same thing wait for each other
(:meth:`Store.serialize`; on SQLite every write transaction is ``BEGIN IMMEDIATE``), so concurrent
pushes succeed one after the other.  The writes stay optimistic as a safety net: a create inserts the
current row (a concurrent create of the same id fails on the primary key), an update changes it only
``WHERE version_id = <the version read>``; a lost race raises :class:`WriteConflict` and the caller
retries the whole transaction.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    create_engine,
    event,
    exists,
    func,
    insert,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import IntegrityError

from adapter.deadline import checkpoint
from adapter.deadline import current as current_deadline
from adapter.digest import canonical_digest
from adapter.service.search_params import index_rows

metadata = MetaData()

resource_current = Table(
    "resource_current",
    metadata,
    Column("resource_type", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("version_id", Integer, nullable=False),
    Column("last_updated", DateTime(timezone=True), nullable=False, index=True),
    Column("content_hash", String(64), nullable=False),
    Column("content", Text, nullable=False),
    # The NPI of the billing Organization the resource belongs to (None: written by an operator
    # for no particular organization); tenant clients see only their own (adapter/service/auth).
    Column("tenant", String(16), index=True),
)

resource_history = Table(
    "resource_history",
    metadata,
    Column("resource_type", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("version_id", Integer, primary_key=True),
    Column("last_updated", DateTime(timezone=True), nullable=False),
    Column("content", Text, nullable=False),
)

# One row per search parameter value of every stored version (see search_params.index_rows):
# searches run on the versions current at their snapshot time, so paging never sees a change.
search_index = Table(
    "search_index",
    metadata,
    Column("resource_type", String(64), nullable=False),
    Column("id", String(64), nullable=False),
    Column("version_id", Integer, nullable=False),
    Column("name", String(64), nullable=False),
    Column("system", Text),
    Column("code", Text),
    Column("low", DateTime(timezone=False)),
    Column("high", DateTime(timezone=False)),
    Index("ix_search_index_version", "resource_type", "id", "version_id"),
    Index("ix_search_index_code", "resource_type", "name", "code"),
    Index("ix_search_index_low", "resource_type", "name", "low"),
)

submissions = Table(
    "submissions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("received_at", DateTime(timezone=True), nullable=False, index=True),
    Column("operation", String(64), nullable=False),
    Column("payload_sha256", String(64), nullable=False, index=True),
    Column("http_status", Integer, nullable=False),
    Column("rule_fingerprint", String(64), nullable=False),
    Column("outcome", Text, nullable=False),  # JSON: claim ids, statuses, finding codes; never PHI
)

# Client-assertion ids already used, kept until they expire: a replay is refused on every worker.
auth_jti = Table(
    "auth_jti",
    metadata,
    Column("client_id", String(255), primary_key=True),
    Column("jti", String(255), primary_key=True),
    Column("expires_at", DateTime(timezone=True), nullable=False, index=True),
)

# The key that signs access tokens, shared by every worker and replica through the database.
auth_signing_key = Table(
    "auth_signing_key",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("secret", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# FHIR AuditEvents, with the columns their search parameters read.
audit_event = Table(
    "audit_event",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("recorded", DateTime(timezone=True), nullable=False, index=True),
    Column("agent", String(255), index=True),  # client_id, or None for an anonymous caller
    Column("outcome", String(2), nullable=False),
    Column("entity", Text, nullable=False),  # space-separated references, with spaces on both ends
    Column("content", Text, nullable=False),
)


# --- 837P export (adapter/service/x12store.py) -----------------------------------------------
x12_counters = Table(  # ISA13 / GS06 / ST02 sequences: a row per kind, bumped in the exporting transaction
    "x12_counters",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", Integer, nullable=False),
)

x12_sources = Table(  # what each Claim version's 837P says (X12Claim JSON), or why it has none
    "x12_sources",
    metadata,
    Column("claim_id", String(64), primary_key=True),
    Column("version_id", Integer, primary_key=True),
    Column("status", String(32), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, index=True),
    Column("content", Text),
    Column("problems", Text),
)

x12_interchanges = Table(  # every interchange written, byte for byte (export-837 --again)
    "x12_interchanges",
    metadata,
    Column("control_number", Integer, primary_key=True, autoincrement=False),
    Column("profile_id", String(64), nullable=False),
    Column("purpose", String(16), nullable=False),  # export | download
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("content", Text, nullable=False),
)

x12_exports = Table(  # which Claim version went into which interchange, and what the payer said
    "x12_exports",
    metadata,
    Column("claim_id", String(64), primary_key=True),
    Column("version_id", Integer, primary_key=True),
    Column("interchange", Integer, nullable=False, index=True),
    Column("transaction_control", Integer, nullable=False),
    Column("frequency", String(1), nullable=False),
    Column("exported_at", DateTime(timezone=True), nullable=False),
    Column("acknowledgment", String(1)),  # from a 999: A accepted, E accepted with errors, R rejected
    Column("payer_claim_number", String(50)),
)

# HL7 v2 messages acknowledged with AA, keyed by sender (MSH-3|MSH-4) and MSH-10: a resend with the
# same content gets the stored ACK again, different content under the same key is refused (ERR 205).
hl7v2_messages = Table(
    "hl7v2_messages",
    metadata,
    Column("sender", String(512), primary_key=True),
    Column("control_id", String(199), primary_key=True),
    Column("content_sha256", String(64), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False),
    Column("ack", Text, nullable=False),  # the ACK as sent: codes, ids and locations, never message content
)

# The transactional outbox (adapter/service/delivery/): one row per Claim version per destination,
# written in the Claim's transaction; each row is a FHIR Task (task_id) while it is delivered.
deliveries = Table(
    "deliveries",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("task_id", String(36), nullable=False, unique=True),
    Column("destination", String(64), nullable=False),
    Column("claim_id", String(64), nullable=False),
    Column("claim_version", Integer, nullable=False),
    Column("claim_status", String(32), nullable=False),
    Column("payer", String(64)),
    Column("tenant", String(256)),
    Column("state", String(16), nullable=False),  # requested | in-progress | completed | failed
    Column("version", Integer, nullable=False),  # the Task's versionId: +1 on every change
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("http_status", Integer),
    Column("reason", String(512)),  # why the last attempt failed: status codes and error classes, never PHI
    Column("response", Text),  # the destination's answer (an OperationOutcome or resource, JSON)
    UniqueConstraint("destination", "claim_id", "claim_version", name="uq_deliveries_change"),
    Index("ix_deliveries_due", "state", "next_attempt_at"),
    Index("ix_deliveries_claim", "claim_id", "claim_version"),
)

# Pulls queued by Subscription notifications (issue 14): one row per Encounter to fetch from the
# source; ``event_key`` (subscription + event number) makes a repeated notification a no-op.
pull_queue = Table(
    "pull_queue",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("event_key", String(512), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),  # encounter | catch-up
    Column("encounter_id", String(64), index=True),  # the Encounter's id on the source (kind encounter)
    Column("since", DateTime(timezone=True)),  # catch-up: Encounters updated after this
    Column("status", String(16), nullable=False, index=True),  # queued | running | done | failed
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, index=True),
    Column("last_error", String(255)),  # a safe reason ("source answered 503"), never data
    Column("claim_id", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# The highest event number seen per Subscription at the source, to notice a gap.
subscription_state = Table(
    "subscription_state",
    metadata,
    Column("subscription", String(512), primary_key=True),
    Column("last_event", Integer, nullable=False),
    Column("last_seen_at", DateTime(timezone=True), nullable=False),
)

# The inputs of each visit of a day (patient, billing provider, date of service), so a later visit that
# day can be pooled with the earlier ones into a new version of the day's Claim (adapter/service/daypool.py).
day_visits = Table(
    "day_visits",
    metadata,
    Column("day_hash", String(64), primary_key=True),  # sha256 of the day's identity
    Column("visit_hash", String(64), primary_key=True),  # sha256 of the visit's (Encounter's) identity
    Column("visit_identity", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # the Bundle that brought the visit: its day_sources row (one per Bundle, however many visits it
    # brought); ``content`` holds it instead in a row written before that table (migration b17)
    Column("content", Text, nullable=True),
    Column("source_hash", String(64), nullable=True),
    # the visit as read (EncounterFacts, JSON) and the adapter version that read it: pooled without reading
    # every stored Bundle again; a row of another version (or none) is read from its Bundle
    Column("facts", Text, nullable=True),
    Column("facts_format", String(64), nullable=True),
)

# The Bundles that brought the day visits, each once (a Bundle of 30 visits was stored 30 times).
day_sources = Table(
    "day_sources",
    metadata,
    Column("content_hash", String(64), primary_key=True),  # sha256 of ``content``
    Column("content", Text, nullable=False),  # JSON (PHI: never logged)
)

# Elements that change on every push without changing what the resource says.
VOLATILE = ("meta", "created", "identifiedDateTime", "recorded")


class WriteGuard(Protocol):
    """Called before a resource is written (or found unchanged): may refuse by raising.

    ``existing_tenant`` is the stored resource's tenant (None when it is new or has none),
    ``exists`` whether it is stored already, ``changes`` whether this put writes a new version.
    """

    def __call__(self, resource_type: str, exists: bool, existing_tenant: str | None, changes: bool) -> None: ...


class WriteConflict(Exception):
    """Another writer changed the resource between our read and our write; retry the transaction."""


@dataclass(frozen=True, slots=True)
class Stored:
    resource: dict[str, Any]
    version_id: int
    last_updated: datetime
    changed: bool  # a new resource or a new version was written
    tenant: str | None = None  # the billing Organization's NPI the resource belongs to (current rows only)

    @property
    def etag(self) -> str:
        return f'W/"{self.version_id}"'


def sqlalchemy_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs (libpq style) as well as SQLAlchemy ones."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def content_hash(resource: dict[str, Any]) -> str:
    return canonical_digest({k: v for k, v in resource.items() if k not in VOLATILE})


def _stamp(resource: dict[str, Any], version_id: int, when: datetime) -> dict[str, Any]:
    meta = dict(resource.get("meta", {}))
    meta["versionId"] = str(version_id)
    meta["lastUpdated"] = when.isoformat()
    return {"resourceType": resource["resourceType"], "id": resource["id"], "meta": meta} | {
        k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")
    }


CONNECT_TIMEOUT_SECONDS = 5
BUSY_TIMEOUT_MS = 30_000  # SQLite: how long a writer waits for another one
PROGRESS_STEPS = 10_000  # SQLite virtual machine steps between two looks at the request's budget
POOL_TIMEOUT_SECONDS = 10
KEYS_PER_READ = 500  # resources whose current rows one statement reads (see _current_rows)


class Store:
    def __init__(self, url: str) -> None:
        self.url = sqlalchemy_url(url)
        # a database host that does not answer fails a connection in seconds (then 503), never hangs it
        remote: dict[str, Any] = {}
        if self.url.startswith("postgresql"):
            remote = {
                "connect_args": {"connect_timeout": CONNECT_TIMEOUT_SECONDS},
                "pool_timeout": POOL_TIMEOUT_SECONDS,
            }
        self.engine: Engine = create_engine(self.url, pool_pre_ping=True, future=True, **remote)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        else:
            event.listen(self.engine, "begin", _statement_budget)
        # every statement is a safe point to stop a request out of time (its transaction then rolls back)
        event.listen(self.engine, "before_cursor_execute", _budget_checkpoint)
        # write transactions: on SQLite they take the write lock when they begin (see _sqlite_begin)
        self._writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One write transaction: committed when the block ends, rolled back on any error.  On SQLite
        it holds the database's write lock from its first statement (other writers wait, up to the
        busy timeout), so nothing it reads can change before it writes."""
        with self._writer.connect() as connection:
            transaction = connection.begin()
            try:
                yield connection
                deadline = current_deadline.get()
                with deadline.committing() if deadline is not None else nullcontext():
                    transaction.commit()
            finally:
                if transaction.is_active:  # an error, or the request's time budget spent: nothing is written
                    transaction.rollback()

    def serialize(self, connection: Connection, keys: Iterable[str]) -> None:
        """Make this transaction the only writer of ``keys`` until it ends: other transactions
        serializing any of them wait for it.  Call it first, before reading what the keys concern.
        PostgreSQL: transaction-scoped advisory locks, taken in sorted order (two writers never wait
        for each other in a cycle); SQLite: the transaction's write lock already serializes everything."""
        if self.dialect != "postgresql":
            return
        ordered = sorted({advisory_key(k) for k in keys})
        if ordered:  # one statement: unnest yields the sorted keys in order, each locked in turn
            connection.execute(
                text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k"), {"keys": ordered}
            )

    def ping(self) -> bool:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True

    def checkpoint(self) -> None:
        """SQLite: move the write-ahead log into the database file and truncate it (at shutdown), so
        the database is one self-contained file; other databases need nothing."""
        if self.dialect == "sqlite":
            with self.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def put(
        self,
        connection: Connection,
        resource: dict[str, Any],
        now: datetime,
        *,
        tenant: str | None = None,
        guard: WriteGuard | None = None,
    ) -> Stored:
        """Create or update one resource; an unchanged one keeps its version (idempotent writes).

        A new resource gets ``tenant``; a stored one keeps the tenant it has (or takes ``tenant``
        when it had none).  ``guard`` may refuse the write (scopes, tenancy) before anything changes.
        """
        return self.put_many(connection, [resource], now, tenants=[tenant], guard=guard)[0]

    def put_many(
        self,
        connection: Connection,
        resources: Sequence[dict[str, Any]],
        now: datetime,
        *,
        tenants: Sequence[str | None],
        guard: WriteGuard | None = None,
        batch: PutBatch | None = None,
    ) -> list[Stored]:
        """``put`` of each resource (with its tenant), in order, in a few statements: one read of
        their current rows, then one insert per table for the new versions (a push stores its
        visit's ten or so inputs, which took four round trips each).  Every ``guard`` call comes
        before any write.  A resource named twice is put one after the other.  With ``batch`` the
        writes wait for ``batch.flush()`` (several puts of one transaction write together)."""
        keys = [(r["resourceType"], r["id"]) for r in resources]
        if not keys:
            return []
        own = batch is None
        batch = PutBatch(connection) if batch is None else batch
        if len(set(keys)) < len(keys):
            return [
                self.put_many(connection, [r], now, tenants=[t], guard=guard, batch=None if own else batch)[0]
                for r, t in zip(resources, tenants, strict=True)
            ]
        if batch.pending.keys() & set(keys):  # put again in this batch: read what the batch wrote
            batch.flush()
        batch.read(keys)
        results: list[Stored] = []
        for (rtype, rid), resource, tenant in zip(keys, resources, tenants, strict=True):
            checkpoint()  # a request out of time stops between two resources (its transaction then rolls back)
            digest = batch.hash_of(resource)
            row = batch.current[(rtype, rid)]
            unchanged = row is not None and row.content_hash == digest
            if guard is not None:
                guard(rtype, row is not None, row.tenant if row is not None else None, not unchanged)
            if unchanged:
                results.append(stored_from_row(row))
                continue
            if row is not None and row.tenant is not None:
                tenant = row.tenant
            version = 1 if row is None else row.version_id + 1
            stamped = _stamp(resource, version, now)
            body = orjson.dumps(stamped).decode()
            values = {"resource_type": rtype, "id": rid, "version_id": version, "last_updated": now}
            batch.history.append({**values, "content": body})
            values |= {"content_hash": digest, "content": body, "tenant": tenant}
            batch.pending[(rtype, rid)] = (values, row)
            batch.index += [
                {"resource_type": rtype, "id": rid, "version_id": version, **r._asdict()} for r in index_rows(stamped)
            ]
            results.append(Stored(stamped, version, now, changed=True, tenant=tenant))
        if own:
            batch.flush()
        return results

    def read(
        self,
        resource_type: str,
        resource_id: str,
        version_id: int | None = None,
        connection: Connection | None = None,
    ) -> Stored | None:
        """The current (or a given) version; inside a transaction when ``connection`` is given."""
        if version_id is None:
            query = select(
                resource_current.c.content,
                resource_current.c.version_id,
                resource_current.c.last_updated,
                resource_current.c.tenant,
            ).where(resource_current.c.resource_type == resource_type, resource_current.c.id == resource_id)
        else:
            query = select(
                resource_history.c.content, resource_history.c.version_id, resource_history.c.last_updated
            ).where(
                resource_history.c.resource_type == resource_type,
                resource_history.c.id == resource_id,
                resource_history.c.version_id == version_id,
            )
        if connection is not None:
            row = connection.execute(query).first()
        else:
            with self.engine.connect() as own:
                row = own.execute(query).first()
        if row is None:
            return None
        return stored_from_row(row)

    def history(
        self,
        resource_type: str,
        resource_id: str | None = None,
        since: datetime | None = None,
        count: int | None = None,
        tenant: str | None = None,
    ) -> list[Stored]:
        """Versions, newest first, of one resource (or of every resource of the type), with
        ``tenant`` only those of that organization."""
        h = resource_history.c
        conditions = [h.resource_type == resource_type]
        if tenant is not None:
            conditions.append(of_tenant(resource_history, tenant))
        if resource_id is not None:
            conditions.append(h.id == resource_id)
        if since is not None:
            conditions.append(h.last_updated >= since)
        query = (
            select(h.content, h.version_id, h.last_updated)
            .where(*conditions)
            .order_by(h.last_updated.desc(), h.id, h.version_id.desc())
            .limit(count)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [stored_from_row(r) for r in rows]

    def record_submission(self, connection: Connection, **values: Any) -> None:
        connection.execute(insert(submissions), values)

    def submission_count(self) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(submissions)).scalar_one())


CURRENT_COLUMNS = tuple(
    resource_current.c[name]
    for name in ("resource_type", "id", "version_id", "content_hash", "content", "last_updated", "tenant")
)


class PutBatch:
    """The writes of Store.put_many calls in one transaction, written by ``flush``: one read of the
    current rows of everything the transaction puts (``read``) and one insert per table, where each
    put_many of a push's inputs, Claims and other outputs read and wrote on its own.  Rows of other
    tables the transaction writes (``add``) go with them."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.current: dict[tuple[str, str], Any] = {}  # (Type, id) -> its current row, None when new
        self.pending: dict[tuple[str, str], tuple[dict[str, Any], Any]] = {}  # -> (new current row, row read)
        self.history: list[dict[str, Any]] = []
        self.index: list[dict[str, Any]] = []
        self.rows: dict[Table, list[dict[str, Any]]] = {}  # other tables' rows, by table
        self.hashes: dict[int, tuple[dict[str, Any], str]] = {}  # id(resource) -> (resource, its content hash)

    def changes(self, resources: Sequence[dict[str, Any]]) -> set[str]:
        """``Type/id`` of the resources a put would change (new, or stored with other content), read
        without waiting: a writer serializes on these only, not on the ones it leaves as they are
        (every push of a clinic names its Organization; locking it made the clinic's pushes queue)."""
        if not resources:
            return set()
        c = resource_current.c
        keys = [(r["resourceType"], r["id"]) for r in resources]
        found = _current_rows(self.connection, (c.resource_type, c.id, c.content_hash), keys)
        stored = {(row.resource_type, row.id): row.content_hash for row in found}
        return {f"{t}/{i}" for (t, i), r in zip(keys, resources, strict=True) if stored.get((t, i)) != self.hash_of(r)}

    def hash_of(self, resource: dict[str, Any]) -> str:
        """``content_hash(resource)``, once per resource object of the transaction (a push's inputs are
        hashed for ``changes``, then for their puts)."""
        known = self.hashes.get(id(resource))
        if known is None or known[0] is not resource:
            known = self.hashes[id(resource)] = (resource, content_hash(resource))
        return known[1]

    def add(self, table: Table, row: dict[str, Any]) -> None:
        """Insert ``row`` into ``table`` with the next flush (rows of a table name the same columns)."""
        self.rows.setdefault(table, []).append(row)

    def read(self, keys: Iterable[tuple[str, str]]) -> None:
        """Read the current rows of ``keys`` not read yet (one statement per KEYS_PER_READ)."""
        missing = [k for k in dict.fromkeys(keys) if k not in self.current]
        if missing:
            found = {(r.resource_type, r.id): r for r in _current_rows(self.connection, CURRENT_COLUMNS, missing)}
            self.current |= {k: found.get(k) for k in missing}

    def flush(self) -> None:
        """Write what the puts changed and the rows added; a row another writer changed meanwhile is a
        WriteConflict."""
        if not self.pending and not self.rows:
            return
        keys = list(self.pending)
        where = f"{keys[0][0]}/{keys[0][1]}" if len(keys) == 1 else f"{len(keys)} resources"
        c = resource_current.c
        try:
            for values, row in self.pending.values():
                if row is None:
                    continue
                updated = self.connection.execute(
                    update(resource_current)
                    .where(and_(c.resource_type == row.resource_type, c.id == row.id, c.version_id == row.version_id))
                    .values({k: v for k, v in values.items() if k not in ("resource_type", "id")})
                )
                if updated.rowcount != 1:
                    raise WriteConflict(f"{row.resource_type}/{row.id}")
            new_rows = [values for values, row in self.pending.values() if row is None]
            _insert_rows(
                self.connection,
                [
                    (resource_current, new_rows),
                    (resource_history, self.history),
                    (search_index, self.index),
                    *self.rows.items(),
                ],
            )
        except IntegrityError as exc:
            raise WriteConflict(where) from exc
        for key in keys:  # read again when put again
            del self.current[key]
        self.pending.clear()
        self.history.clear()
        self.index.clear()
        self.rows.clear()


def upsert_insert(dialect_name: str, table: Table) -> Any:
    """An INSERT that takes ON CONFLICT clauses: both databases have them, as their own dialect's classes."""
    return (postgresql if dialect_name == "postgresql" else sqlite).insert(table)


def _insert_rows(connection: Connection, tables: list[tuple[Table, list[dict[str, Any]]]]) -> None:
    """Insert each table's rows (dicts of the same columns).  PostgreSQL: one statement for all the
    tables (one data-modifying WITH clause per table), whose parameters are each table's rows as
    JSON, read into the table's row type by ``json_populate_recordset``: an executemany per table
    paid a round trip each and SQLAlchemy's and psycopg's per-row work for each of a push's seventy
    rows (psycopg's array parameters cost more still).  Elsewhere an executemany per table."""
    tables = [(table, rows) for table, rows in tables if rows]
    if not tables:
        return
    if connection.dialect.name != "postgresql":
        for table, rows in tables:
            connection.execute(insert(table), rows)
        return
    shape = tuple((table, tuple(rows[0])) for table, rows in tables)
    connection.execute(
        _json_insert(shape), {f"rows{i}": orjson.dumps(rows).decode() for i, (_, rows) in enumerate(tables)}
    )


@functools.cache
def _json_insert(shape: tuple[tuple[Table, tuple[str, ...]], ...]) -> Any:
    # each value is read by its column type's input function: a value too long for a varchar(n)
    # is refused as a parameter was, not cut as an explicit cast would.  (No column gets a raw NUL,
    # which JSON's \u0000 would not carry: ids and codes are checked, contents are JSON text.)
    inserts = [
        f"INSERT INTO {table.name} ({', '.join(columns)}) SELECT {', '.join(columns)} "
        f"FROM json_populate_recordset(NULL::{table.name}, :rows{i})"
        for i, (table, columns) in enumerate(shape)
    ]
    *earlier, last = inserts  # (a WITH clause's statements all run, whether or not the query reads them)
    prefix = "WITH " + ", ".join(f"t{i} AS ({sql})" for i, sql in enumerate(earlier)) + " " if earlier else ""
    return text(prefix + last)


def _current_rows(connection: Connection, columns: Sequence[Any], keys: Sequence[tuple[str, str]]) -> list[Any]:
    """The current rows of ``keys`` (``(Type, id)``), read KEYS_PER_READ at a time: PostgreSQL plans a
    row IN list as one OR of ANDs, and a Bundle of thousands of resources exceeded its stack depth."""
    query = _current_rows_query(tuple(columns))
    rows: list[Any] = []
    for start in range(0, len(keys), KEYS_PER_READ):
        rows += connection.execute(query, {"keys": list(keys[start : start + KEYS_PER_READ])}).all()
    return rows


@functools.cache
def _current_rows_query(columns: tuple[Any, ...]) -> Any:
    """One statement per column set, the keys a parameter: SQLAlchemy then compiles it once and
    reuses its cache key (a statement built anew with its keys inlined cost a key per push)."""
    c = resource_current.c
    return select(*columns).where(tuple_(c.resource_type, c.id).in_(bindparam("keys", expanding=True)))


def stored_from_row(row: Any) -> Stored:
    """A read row (content, version_id, last_updated, and tenant when selected) as a Stored resource."""
    tenant = row.tenant if "tenant" in row._fields else None
    return Stored(orjson.loads(row.content), row.version_id, _aware(row.last_updated), changed=False, tenant=tenant)


def of_tenant(table: Any, tenant: str) -> Any:
    """Rows (of resource_history or an alias) whose resource belongs to ``tenant`` (a resource's
    tenant never changes, so its current row says it for every version)."""
    current = resource_current.c
    return exists().where(
        current.resource_type == table.c.resource_type, current.id == table.c.id, current.tenant == tenant
    )


def _aware(value: datetime) -> datetime:
    """SQLite returns naive datetimes, PostgreSQL its session time zone; everything stored is UTC."""
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def advisory_key(key: str) -> int:
    """A PostgreSQL advisory lock key (a signed 64-bit integer) for a string."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling starts a transaction only before a write, too late to
    # lock anything; with it off, _sqlite_begin emits BEGIN itself (SQLAlchemy's pysqlite recipe)
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
    dbapi_connection.set_progress_handler(_interrupt_when_spent, PROGRESS_STEPS)


def _sqlite_begin(connection: Connection) -> None:
    """Reads begin DEFERRED (a snapshot, no lock); Store.transaction begins IMMEDIATE (the write lock),
    waiting for another writer at most the busy timeout, or what is left of the request's budget."""
    mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
    if mode == "IMMEDIATE":
        deadline = current_deadline.get()
        wait = BUSY_TIMEOUT_MS if deadline is None else min(BUSY_TIMEOUT_MS, int(deadline.remaining() * 1000) + 1)
        connection.exec_driver_sql(f"PRAGMA busy_timeout={wait}")
    connection.exec_driver_sql(f"BEGIN {mode}")


def _budget_checkpoint(*_statement: Any) -> None:
    checkpoint()


def _interrupt_when_spent() -> int:
    """SQLite's progress handler: a non-zero answer interrupts the running statement ("interrupted")."""
    deadline = current_deadline.get()
    return int(deadline is not None and deadline.expired)


def _statement_budget(connection: Connection) -> None:
    """PostgreSQL: no statement of a budgeted request (a lock wait included) outlives its budget."""
    deadline = current_deadline.get()
    if deadline is not None:
        milliseconds = max(1, int(deadline.remaining() * 1000))
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {milliseconds}")
