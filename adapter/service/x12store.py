"""837P exports on the store: sources per Claim version, control numbers, interchanges, exports.

- When a Claim version is stored, its 837P content (an X12Claim, from the same decision as the
  Claim) is recorded beside it in ``x12_sources``, in the same transaction; a cancelled version
  keeps the content of the version it withdraws (a void repeats the claim with frequency 8).
- Control numbers come from ``x12_counters`` rows bumped inside the exporting transaction
  (``UPDATE ... RETURNING``: the row lock serializes exporters on PostgreSQL, the write lock on
  SQLite), so they are unique and increasing across runs, processes and replicas, without gaps.
- ``export`` writes one interchange with every Claim version not exported yet (original 1,
  replacement 7, void 8), stores its bytes and which version went into which transaction set,
  all in one transaction: a second run finds nothing new, ``again`` returns the same bytes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

import orjson
from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from adapter.errors import Problem
from adapter.output.x12 import ClearinghouseProfile, Envelope, NotExportable, X12Claim, claim_of, render_interchange
from adapter.output.x12.ack import TransactionAck
from adapter.output.x12.text import clean
from adapter.pipeline import Result
from adapter.rules.catalog import Rules
from adapter.service.store import (
    PutBatch,
    Store,
    Stored,
    upsert_insert,
    x12_counters,
    x12_exports,
    x12_interchanges,
    x12_sources,
)

ORIGINAL, REPLACEMENT, VOID = "1", "7", "8"
MAX_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Pending:
    """One Claim version to send, and how (CLM05-3)."""

    claim_id: str
    version_id: int
    frequency: str
    claim: X12Claim


@dataclass(frozen=True, slots=True)
class Skipped:
    claim_id: str
    version_id: int
    reason: str  # held | not-exportable
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True, slots=True)
class Export:
    control_number: int | None  # None: nothing new to export
    content: bytes | None
    sent: tuple[Pending, ...]
    skipped: tuple[Skipped, ...]


class NotAvailable(Exception):
    """A Claim has no 837P to give (held, cancelled before export, unknown): ``code`` and ``message`` say why."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class _NothingNew(Exception):
    def __init__(self, export: Export) -> None:
        super().__init__("nothing new to export")
        self.export = export


class X12Store:
    def __init__(self, store: Store, rules: Rules) -> None:
        self.store, self.rules = store, rules

    # --- written with every Claim version ----------------------------------------------------

    def record_sources(self, batch: PutBatch, result: Result, stored: list[Stored], now: datetime) -> None:
        """Beside each new Claim version, what its 837P says (or why it cannot have one), written
        with the batch's next flush."""
        decisions = {d.claim_id: d for d in result.decisions}
        for written in stored:
            resource = written.resource
            if resource["resourceType"] != "Claim" or not written.changed:
                continue
            claim_id, status = resource["id"], resource["status"]
            content, problems = None, None  # JSON text (orjson writes the dataclasses as they are)
            if status == "cancelled":
                content = self._latest_content(batch.connection, claim_id, written.version_id)
            elif claim_id in decisions:
                try:
                    content = orjson.dumps(claim_of(decisions[claim_id], self.rules)).decode()
                except NotExportable as error:
                    problems = orjson.dumps(error.problems).decode()
            batch.add(
                x12_sources,
                {
                    "claim_id": claim_id,
                    "version_id": written.version_id,
                    "status": status,
                    "recorded_at": now,
                    "content": content,
                    "problems": problems,
                },
            )

    def _latest_content(self, connection: Connection, claim_id: str, before: int) -> str | None:
        return connection.execute(
            select(x12_sources.c.content)
            .where(
                x12_sources.c.claim_id == claim_id, x12_sources.c.version_id < before, x12_sources.c.content.isnot(None)
            )
            .order_by(x12_sources.c.version_id.desc())
            .limit(1)
        ).scalar()

    # --- control numbers ----------------------------------------------------------------------

    def _bump(self, connection: Connection, name: str, count: int) -> int:
        """Reserve ``count`` numbers of a counter; returns the first one."""
        counter = upsert_insert(self.store.dialect, x12_counters)
        connection.execute(counter.values(name=name, value=0).on_conflict_do_nothing())
        last = connection.execute(
            update(x12_counters)
            .where(x12_counters.c.name == name)
            .values(value=x12_counters.c.value + count)
            .returning(x12_counters.c.value)
        ).scalar_one()
        return int(last) - count + 1

    def allocate(self, connection: Connection, transactions: int) -> Envelope:
        interchange = self._bump(connection, "interchange", 1)  # first: the row lock serializes exporters
        group = self._bump(connection, "group", 1)
        first = self._bump(connection, "transaction", transactions) if transactions else 0
        return Envelope(interchange, group, tuple(range(first, first + transactions)))

    # --- export-837 ---------------------------------------------------------------------------

    def export(
        self,
        profile: ClearinghouseProfile,
        now: datetime,
        since: date | None = None,
        stage: Callable[[bytes], None] | None = None,
    ) -> Export:
        """Export what is new; ``stage`` receives the bytes before the transaction commits (a failure
        there rolls the export back)."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with self.store.transaction() as connection:
                    export = self._export(connection, profile, now, since)
                    if stage is not None and export.content is not None:
                        stage(export.content)
                    return export
            except _NothingNew as nothing:  # rolled back: the control numbers taken are given back
                return nothing.export
            except IntegrityError:  # a concurrent export took the same Claim versions: look again
                if attempt == MAX_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def _export(
        self, connection: Connection, profile: ClearinghouseProfile, now: datetime, since: date | None
    ) -> Export:
        numbers = self.allocate(connection, 0)  # takes the interchange number (and its lock) first
        pending, skipped = self._pending(connection, since)
        if not pending:
            raise _NothingNew(Export(None, None, (), tuple(skipped)))
        first = self._bump(connection, "transaction", len(pending))
        envelope = Envelope(numbers.interchange, numbers.group, tuple(range(first, first + len(pending))))
        content = render_interchange([p.claim for p in pending], profile, envelope, now)
        self._store_interchange(connection, envelope.interchange, profile, "export", now, content)
        for item, number in zip(pending, envelope.transactions, strict=True):
            connection.execute(
                insert(x12_exports).values(
                    claim_id=item.claim_id,
                    version_id=item.version_id,
                    interchange=envelope.interchange,
                    transaction_control=number,
                    frequency=item.frequency,
                    exported_at=now,
                )
            )
        return Export(envelope.interchange, content, tuple(pending), tuple(skipped))

    def _store_interchange(
        self, connection: Connection, number: int, profile: ClearinghouseProfile, purpose: str, now: datetime,
        content: bytes,
    ) -> None:  # fmt: skip
        connection.execute(
            insert(x12_interchanges).values(
                control_number=number, profile_id=profile.id, purpose=purpose, created_at=now, content=content.decode()
            )
        )

    def _latest_sources(self, connection: Connection, since: date | None) -> Iterator[Any]:
        latest = (
            select(x12_sources.c.claim_id, func.max(x12_sources.c.version_id).label("version_id"))
            .group_by(x12_sources.c.claim_id)
            .subquery()
        )
        query = select(x12_sources).join(
            latest,
            and_(x12_sources.c.claim_id == latest.c.claim_id, x12_sources.c.version_id == latest.c.version_id),
        )
        if since is not None:
            query = query.where(x12_sources.c.recorded_at >= datetime.combine(since, time.min, tzinfo=UTC))
        yield from connection.execute(query.order_by(x12_sources.c.recorded_at, x12_sources.c.claim_id))

    def _last_exports(self, connection: Connection, claim_id: str) -> list[Any]:
        return list(
            connection.execute(
                select(x12_exports).where(x12_exports.c.claim_id == claim_id).order_by(x12_exports.c.version_id.desc())
            )
        )

    def _pending(self, connection: Connection, since: date | None) -> tuple[list[Pending], list[Skipped]]:
        pending: list[Pending] = []
        skipped: list[Skipped] = []
        for row in self._latest_sources(connection, since):
            try:
                item = self._to_send(connection, row)
            except NotAvailable as why:
                if why.code in ("held", "not-exportable"):
                    problems = tuple(Problem(**p) for p in orjson.loads(row.problems)) if row.problems else ()
                    skipped.append(Skipped(row.claim_id, row.version_id, why.code, problems))
                continue
            if item is not None:
                pending.append(item)
        return pending, skipped

    def _to_send(self, connection: Connection, row: Any) -> Pending | None:
        """How this Claim version goes out (None: already sent); NotAvailable when it cannot."""
        exports = self._last_exports(connection, row.claim_id)
        last = exports[0] if exports else None
        if last is not None and last.version_id >= row.version_id:
            return None
        if row.status == "draft":
            raise NotAvailable(409, "held", "the Claim is held for review (draft): it is never exported")
        if row.content is None:
            raise NotAvailable(422, "not-exportable", "the Claim lacks what an 837P needs")
        if row.status == "cancelled":
            if last is None or last.frequency == VOID:
                raise NotAvailable(409, "never-sent", "the Claim was cancelled before it was exported: nothing to void")
            frequency = VOID
        else:
            frequency = ORIGINAL if last is None or last.frequency == VOID else REPLACEMENT
        number = next((e.payer_claim_number for e in exports if e.payer_claim_number), None)
        claim = X12Claim.from_json(orjson.loads(row.content))
        claim = dataclasses.replace(
            claim, frequency=frequency, payer_claim_number=(number or "") if frequency != ORIGINAL else ""
        )
        return Pending(row.claim_id, row.version_id, frequency, claim)

    def again(self, control_number: int) -> bytes | None:
        with self.store.engine.connect() as connection:
            content = connection.execute(
                select(x12_interchanges.c.content).where(x12_interchanges.c.control_number == control_number)
            ).scalar_one_or_none()
        return None if content is None else str(content).encode()

    # --- $export-x12 --------------------------------------------------------------------------

    def claim_interchange(self, claim_id: str, profile: ClearinghouseProfile, now: datetime) -> bytes:
        """The 837P of one Claim's current version, as export-837 would send it next (or sent it last).

        Takes fresh control numbers and stores the bytes, but does not mark the Claim exported.
        """
        with self.store.transaction() as connection:
            numbers = self.allocate(connection, 1)
            row = connection.execute(
                select(x12_sources).where(x12_sources.c.claim_id == claim_id).order_by(x12_sources.c.version_id.desc())
            ).first()
            if row is None:
                raise NotAvailable(404, "no-837-source", f"Claim/{claim_id} has no 837P content recorded")
            item = self._to_send(connection, row) or self._as_sent(connection, row)
            content = render_interchange([item.claim], profile, numbers, now)
            self._store_interchange(connection, numbers.interchange, profile, "download", now, content)
            return content

    def _as_sent(self, connection: Connection, row: Any) -> Pending:
        sent = self._last_exports(connection, row.claim_id)[0]
        claim = X12Claim.from_json(orjson.loads(row.content))
        number = sent.payer_claim_number or ""
        return Pending(
            row.claim_id, row.version_id, sent.frequency, dataclasses.replace(claim, frequency=sent.frequency,
                                                                              payer_claim_number=number)
        )  # fmt: skip

    def set_payer_claim_number(self, claim_id: str, version_id: int | None, number: str) -> bool:
        """Record the payer's claim number of an exported version (default: the last one exported),
        for the REF*F8 of its replacements and voids; False when no such export exists."""
        problems: list[Problem] = []
        number = clean(number, "the payer claim number", "payer_claim_number", problems, 50)
        if problems:
            raise NotExportable(problems)
        with self.store.transaction() as connection:
            if version_id is None:
                exports = self._last_exports(connection, claim_id)
                if not exports:
                    return False
                version_id = int(exports[0].version_id)
            result = connection.execute(
                update(x12_exports)
                .where(x12_exports.c.claim_id == claim_id, x12_exports.c.version_id == version_id)
                .values(payer_claim_number=number)
            )
            return bool(result.rowcount)

    def record_acknowledgments(self, acks: list[TransactionAck]) -> list[tuple[TransactionAck, str | None]]:
        """Record a 999 on the export records (ST02 numbers are unique across interchanges); returns
        each acknowledgment with the Claim it concerned (None: no export has that ST02)."""
        answered: list[tuple[TransactionAck, str | None]] = []
        with self.store.transaction() as connection:
            for ack in acks:
                claim = connection.execute(
                    select(x12_exports.c.claim_id).where(x12_exports.c.transaction_control == ack.transaction)
                ).scalar_one_or_none()
                if claim is not None:
                    connection.execute(
                        update(x12_exports)
                        .where(x12_exports.c.transaction_control == ack.transaction)
                        .values(acknowledgment=ack.code)
                    )
                answered.append((ack, None if claim is None else str(claim)))
        return answered
