"""The ``$from-encounter`` operation: run the pipeline, store its output idempotently, record it.

Idempotency: Claim ids derive from the day's identity (patient, billing provider, date of
service; a later visit that day is pooled with the stored earlier ones, adapter/service/daypool.py)
and Store.put keeps an unchanged resource's version, so a retried push answers 200 with the Claim
it already made.  Concurrent pushes of the same day wait for each other (Store.serialize on the day,
its Claims and the stored inputs), so each commits in turn and sees what the one before it wrote:
contention waits, it never fails.  A lost race that gets through anyway (the optimistic check in
Store.put) retries the transaction.  An If-Match that does not name the current version is 412.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict, Unpack

import orjson
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from adapter.deadline import checkpoint
from adapter.errors import FINDING_SYSTEM, problem_issue
from adapter.pipeline import Result, run
from adapter.rules.catalog import Rules
from adapter.service.auth.access import WriteAccess, tenant_for
from adapter.service.conditional import IfNoneExist, match_again
from adapter.service.daypool import day_lock_keys, pool_across_pushes
from adapter.service.delivery.config import load_destinations
from adapter.service.delivery.outbox import claim_payer, enqueue
from adapter.service.faults import is_outage
from adapter.service.fhirhttp import FhirError
from adapter.service.inputs import rewrite_references, storable_visit
from adapter.service.settings import Settings
from adapter.service.store import PutBatch, Store, Stored, WriteConflict, submissions
from adapter.service.x12store import X12Store
from adapter.sourcing import SourceReport, amend

STORED_TYPES = ("Claim", "DetectedIssue", "Provenance")
MAX_ATTEMPTS = 8
log = logging.getLogger("theraclaim.claims")


@dataclass
class Outcome:
    http_status: int
    bundle: dict[str, Any]
    claims: list[Stored] = field(default_factory=list)


Clock = Callable[[], datetime]


def _wall_clock() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class WriteOptions(TypedDict, total=False):
    """The keyword options of ClaimService.store_result: those of its ``_store`` (the defaults are there)."""

    inputs: tuple[dict[str, Any], ...]
    if_match: int | None
    operation: str
    also: Callable[[Connection, list[Stored]], None] | None
    access: WriteAccess | None
    payer: str | None
    conditions: Sequence[IfNoneExist]


class ClaimService:
    def __init__(self, store: Store, rules: Rules, settings: Settings, clock: Clock | None = None) -> None:
        self.store = store
        self.rules = rules
        self.settings = settings
        self.x12 = X12Store(store, rules)
        self.destinations = load_destinations(settings.destinations)
        self.payer_ids = frozenset(rules.payers)
        self.clock = clock or _wall_clock

    def convert(self, payload: bytes | dict[str, Any], payer: str | None, validation: str | None = None) -> Result:
        now = self.clock()  # dates Claim.created and the future / timely-filing checks
        return run(
            payload,
            rules=self.rules,
            now=now,
            payer=payer,
            options=self.settings.claim_options,
            limits=self.settings.limits,
            validation=validation or self.settings.validation,
        )

    def from_encounter(
        self,
        payload: bytes | dict[str, Any],
        payer: str | None,
        if_match: int | None = None,
        validation: str | None = None,
        access: WriteAccess | None = None,
        source: SourceReport | None = None,
        if_none_exist: IfNoneExist | None = None,
    ) -> Outcome:
        """Convert the visit and store its Claims with the visit's resources, in one transaction;
        with ``access``, as that Principal (its organization's visits only, within its scopes).
        ``if_none_exist`` is matched again in that transaction (MatchChanged when it now matches)."""
        visit, inputs, binding_problems = storable_visit(payload) if isinstance(payload, dict) else (payload, (), [])
        result = self.convert(visit, payer, validation)
        if source is not None:  # what the source gave (pulled or filled): provenance, holds
            result = amend(result, source)
        digest = _payload_digest(payload)
        if access is not None and not result.invalid:
            access.check_billing(o.billing_npi for o in result.outcomes if o.status or o.cancels_claim)
        stored: list[Stored] = []
        pooled = not result.invalid and not binding_problems and (_billable(result) or _has_day(result))
        if pooled:  # a visit that bills nothing alone may still complete its day's pool
            try:
                result, _, stored = self._store(
                    result,
                    digest,
                    inputs=inputs,
                    if_match=if_match,
                    access=access,
                    payer=payer,
                    only_when_billable=True,
                    conditions=() if if_none_exist is None else (if_none_exist,),
                )
            except FhirError as refused:  # a failed precondition or a lost race is still a submission to record
                if refused.status != 503:  # (with the database down there is nowhere to record it)
                    self._record(digest, refused.status, result)
                raise
        if result.invalid or not _billable(result):
            if not pooled:  # (a pooled push was recorded in its transaction)
                self._record(digest, 422, result)
            reason = "invalid input" if result.invalid else "nothing billable"
            log.info("from-encounter 422 (%s) payload=%s", reason, digest[:12])
            body = _outcome_only(result.bundle)
            if not result.invalid:  # the information issues say why; the error says what it means
                body["issue"].insert(
                    0,
                    {
                        "severity": "error",
                        "code": "business-rule",
                        "details": {
                            "coding": [{"system": FINDING_SYSTEM, "code": "nothing-billable"}],
                            "text": "no Encounter of the Bundle produced a Claim; see the issues below",
                        },
                    },
                )
            return Outcome(422, body)
        if binding_problems:  # the visit converts, but an input to store breaks a required binding
            self._record(digest, 422, result)
            issues = [problem_issue(p) for p in binding_problems]
            return Outcome(422, {"resourceType": "OperationOutcome", "issue": issues})
        claims_out = [s for s in stored if s.resource["resourceType"] == "Claim"]
        status = 201 if any(c.changed for c in claims_out) else 200
        log.info("from-encounter %s claims=%s payload=%s", status, [c.resource["id"] for c in claims_out], digest[:12])
        return Outcome(status, result.bundle, claims_out)

    def store_result(
        self, result: Result, digest: str, **options: Unpack[WriteOptions]
    ) -> tuple[list[Stored], list[Stored]]:
        """Store the inputs (if any) and the pipeline's output in one transaction, retried on conflicts.

        ``also`` does more in the same transaction, after the writes, given the stored inputs (the HL7 v2
        door: the message's idempotency row; a FHIR transaction: its ifMatch checks and GET entries).
        Returns what was stored for the inputs and for the outputs; the result's Bundle is updated
        to show the stored versions.  With ``access``, every resource passes its scope and tenant
        checks and the request's AuditEvent commits in the same transaction.  The result's visits take
        part in the day's pool across pushes (adapter/service/daypool.py): the Bundle is then the day's,
        over every visit stored for it (``payer`` as the push asked).  The ``conditions`` (conditional
        creates) are matched again first, under their own locks (adapter/service/conditional.py).
        """
        day, stored_inputs, stored = self._store(result, digest, **options)
        if day is not result:  # the caller answers with the day's Claim
            result.bundle.clear()
            result.bundle.update(day.bundle)
        return stored_inputs, stored

    def _store(
        self,
        result: Result,
        digest: str,
        *,
        inputs: tuple[dict[str, Any], ...] = (),
        if_match: int | None = None,
        operation: str = "Claim/$from-encounter",
        also: Callable[[Connection, list[Stored]], None] | None = None,
        access: WriteAccess | None = None,
        payer: str | None = None,
        only_when_billable: bool = False,
        conditions: Sequence[IfNoneExist] = (),
    ) -> tuple[Result, list[Stored], list[Stored]]:
        """store_result's work; returns the day's result (the push's own, or the day's pool over the stored
        visits).  With ``only_when_billable`` ($from-encounter) a day that bills nothing stores only its
        visit (for the pool) and the submission (422)."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with self.store.transaction() as connection:
                    batch = PutBatch(connection)  # the inputs and outputs are read once and written together
                    # concurrent writers of the same day, Claims or changed inputs wait here, before the
                    # rest is read (an input changed by another writer meanwhile is the version check's)
                    keys = day_lock_keys(result) | batch.changes(inputs)
                    self.store.serialize(connection, keys | {c.lock_key for c in conditions})
                    match_again(self.store, connection, conditions)
                    now = datetime.now(UTC)
                    day = pool_across_pushes(connection, result, lambda d: self.convert(d, payer), now)
                    produced = (
                        []
                        if day.invalid
                        else [
                            e["resource"] for e in day.bundle["entry"] if e["resource"]["resourceType"] in STORED_TYPES
                        ]
                    )
                    cancels = [o.cancels_claim for o in day.outcomes if o.cancels_claim]
                    billable = _billable(day) or not only_when_billable  # (other doors store their inputs anyway)
                    writer = _Writer(self.store, batch, now, access, day)
                    written_inputs = inputs if billable else ()
                    writer.batch.read((r["resourceType"], r["id"]) for r in (*written_inputs, *produced))
                    stored_inputs = writer.put_many(written_inputs)
                    stored = self._write(writer, produced, cancels, if_match)
                    self.x12.record_sources(writer.batch, day, stored, now)
                    written = stored_inputs + stored
                    status = (201 if any(s.changed for s in written) else 200) if billable else 422
                    writer.batch.add(submissions, self._submission_row(digest, status, day, written, operation))
                    if also is not None:
                        writer.batch.flush()  # (what ``also`` reads is written)
                        also(connection, stored_inputs)
                    if access is not None:
                        access.committed(writer.batch, written, status)
                    writer.batch.flush()  # one statement for everything new
                if access is not None:  # its AuditEvent committed with the data: the guard records no other
                    access.context.recorded = True
                if not day.invalid:
                    _replace_entries(day.bundle, stored)
                return day, stored_inputs, stored
            except (WriteConflict, OperationalError) as conflict:
                checkpoint()  # a statement the request's spent budget interrupted is a timeout, not an outage
                if isinstance(conflict, OperationalError) and not _is_contention(conflict):
                    if not is_outage(conflict):
                        raise  # a statement the database refused: our bug (500), not an outage
                    raise FhirError(
                        503, "database-unavailable", "the database cannot be reached; retry later", "transient"
                    ) from conflict
                if attempt == MAX_ATTEMPTS:  # (serialized writers do not get here: a bug, or a foreign writer)
                    raise FhirError(
                        503, "write-contention", "concurrent writes kept conflicting; retry the request", "transient"
                    ) from conflict
        raise AssertionError("unreachable")

    def _write(
        self, writer: _Writer, produced: list[dict[str, Any]], cancels: list[str], if_match: int | None
    ) -> list[Stored]:
        claims = [r for r in produced if r["resourceType"] == "Claim"]
        if if_match is not None:
            self._check_version(writer.connection, claims, cancels, if_match)
        stored = writer.put_many(claims)
        # the pipeline's Provenance points at urn:uuid:<claim id>; stored, it names the version it explains
        versions = {f"urn:uuid:{s.resource['id']}": f"Claim/{s.resource['id']}/_history/{s.version_id}" for s in stored}
        others = [rewrite_references(r, versions) for r in produced if r["resourceType"] != "Claim"]
        stored += writer.put_many(others)
        for claim_id in cancels:
            current = self.store.read("Claim", claim_id, connection=writer.connection)
            if current is not None and current.resource.get("status") != "cancelled":
                withdrawn = {k: v for k, v in current.resource.items() if k != "meta"} | {"status": "cancelled"}
                stored.append(writer.put(withdrawn))
        if self.destinations is not None:  # the outbox rows commit (or roll back) with the Claims
            provenance = [r for r in produced if r["resourceType"] == "Provenance"]
            for written in stored:
                if written.changed and written.resource["resourceType"] == "Claim":
                    payer = claim_payer(provenance, written.resource["id"], self.payer_ids)
                    enqueue(writer.connection, self.destinations, written, payer, writer.now)
        return stored

    def _check_version(
        self, connection: Connection, claims: list[dict[str, Any]], cancels: list[str], expected: int
    ) -> None:
        """If-Match: the one Claim concerned must be at the expected version, read in this transaction."""
        targets = [c["id"] for c in claims] + cancels
        if len(targets) != 1:
            raise FhirError(
                412, "if-match-ambiguous", "If-Match needs a request that concerns exactly one Claim", "conflict"
            )
        current = self.store.read("Claim", targets[0], connection=connection)
        if current is None or current.version_id != expected:
            found = "none" if current is None else current.version_id
            raise FhirError(
                412, "version-mismatch", f"Claim version is {found}, If-Match expected {expected}", "conflict"
            )

    def record_no_op(self, payload: bytes | dict[str, Any], existing: Stored) -> None:
        """If-None-Exist matched: nothing was processed, but the submission is recorded like any other."""
        digest = _payload_digest(payload)
        summary = {"if_none_exist": f"Claim/{existing.resource['id']}/_history/{existing.version_id}"}
        with self.store.transaction() as connection:
            self.store.record_submission(connection, **self._submission(digest, 200, summary, "Claim/$from-encounter"))

    def _submission(self, digest: str, status: int, summary: dict[str, Any], operation: str) -> dict[str, Any]:
        return {
            "id": str(uuid.uuid4()),
            "received_at": datetime.now(UTC),
            "operation": operation,
            "payload_sha256": digest,
            "http_status": status,
            "rule_fingerprint": self.rules.fingerprint,
            "outcome": orjson.dumps(summary).decode(),
        }

    def _record(self, digest: str, status: int, result: Result) -> None:
        """Record a submission that stored nothing, in a transaction of its own (see _submission_row)."""
        with self.store.transaction() as connection:
            self.store.record_submission(connection, **self._submission_row(digest, status, result, []))

    def _submission_row(
        self, digest: str, status: int, result: Result, stored: list[Stored], operation: str = "Claim/$from-encounter"
    ) -> dict[str, Any]:
        """The submissions row of a request: ids, codes and hashes only, never resource content."""
        summary = {
            "encounters": [
                {
                    "encounter": o.encounter_ref,
                    "claim": o.claim_id,
                    "status": o.status,
                    "lines": o.lines,
                    "findings": o.findings,
                }
                for o in result.outcomes
            ],
            "stored": [f"{s.resource['resourceType']}/{s.resource['id']}/_history/{s.version_id}" for s in stored],
            "invalid": result.invalid,
        }
        return self._submission(digest, status, summary, operation)


class _Writer:
    """Puts resources in one transaction, through the access checks when a Principal writes."""

    def __init__(
        self, store: Store, batch: PutBatch, now: datetime, access: WriteAccess | None, result: Result
    ) -> None:
        self.store = store
        self.batch = batch
        self.now = now
        self.access = access
        self.npi_by_claim = {
            claim: o.billing_npi for o in result.outcomes for claim in (o.claim_id, o.cancels_claim) if claim
        }

    @property
    def connection(self) -> Connection:
        return self.batch.connection

    def put(self, resource: dict[str, Any]) -> Stored:
        return self.put_many([resource])[0]

    def put_many(self, resources: Sequence[dict[str, Any]]) -> list[Stored]:
        if self.access is None:
            tenants = [tenant_for(r, self.npi_by_claim) for r in resources]
            return self.store.put_many(self.connection, resources, self.now, tenants=tenants, batch=self.batch)
        tenants = [self.access.tenant_of(r, self.npi_by_claim) for r in resources]
        return self.store.put_many(
            self.connection, resources, self.now, tenants=tenants, guard=self.access.guard, batch=self.batch
        )


def _billable(result: Result) -> bool:
    return any(o.status for o in result.outcomes) or any(o.cancels_claim for o in result.outcomes)


def _has_day(result: Result) -> bool:
    return any(o.day for o in result.outcomes)


def _replace_entries(bundle: dict[str, Any], stored: list[Stored]) -> None:
    """Answer with what is stored (its meta and, for an unchanged Claim, its original created)."""
    by_key = {(s.resource["resourceType"], s.resource["id"]): s.resource for s in stored}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        key = (resource["resourceType"], resource.get("id"))
        if key in by_key:
            entry["resource"] = by_key.pop(key)
    for (_, rid), resource in by_key.items():  # cancelled Claims are not in the pipeline's bundle
        bundle["entry"].insert(0, {"fullUrl": f"urn:uuid:{rid}", "resource": resource})


def _payload_digest(payload: bytes | dict[str, Any]) -> str:
    """The submission's hash: of the bytes received, or of a parsed body as received."""
    return hashlib.sha256(payload if isinstance(payload, bytes) else orjson.dumps(payload)).hexdigest()


def _is_contention(error: OperationalError) -> bool:
    """A lost race worth retrying (SQLite busy, PostgreSQL serialization failure or deadlock),
    as opposed to a database that is down."""
    sqlstate = getattr(error.orig, "sqlstate", None)
    return sqlstate in ("40001", "40P01") or "locked" in str(error.orig).lower()


def _outcome_only(bundle: dict[str, Any]) -> dict[str, Any]:
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "OperationOutcome":
            return dict(entry["resource"])
    raise AssertionError("the pipeline always emits an OperationOutcome")
