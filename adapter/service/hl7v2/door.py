"""The HL7 v2 door shared by the MLLP listener and ``POST /hl7v2``: convert, commit, then acknowledge.

Commit before ACK: ``handle`` returns the ACK only after the message's FHIR inputs, its Claims and
its idempotency row are committed in one transaction; a crash before that returns nothing, the
sender resends, and the Claim ids (from the Encounter's PV1-19 identifier) make the resend land
on the same Claim.  A resend of an acknowledged message (same sender, MSH-10 and content) gets the
stored ACKs again without a write; the same MSH-10 with other content is refused (AE, ERR 205).
In enhanced mode both acknowledgments (accept, then application) follow the commit: this door
takes responsibility for a message only by storing what it means.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from adapter.deadline import DeadlineExceeded, unbudgeted
from adapter.intake.hl7v2 import V2Outcome, content_digest, convert_message, load_mapping
from adapter.intake.hl7v2.ack import AckIssue, acknowledgments
from adapter.intake.hl7v2.batch import answer_batch, is_batch
from adapter.intake.hl7v2.er7 import V2Error, read_header
from adapter.service.auth.access import WriteAccess
from adapter.service.claims import ClaimService
from adapter.service.faults import DATABASE_DOWN
from adapter.service.fhirhttp import FhirError
from adapter.service.store import WriteConflict, hl7v2_messages

STOPPED = "the server stopped work on the message (time budget spent, or shutting down); resend it"
log = logging.getLogger("theraclaim.hl7v2")
HEAD_BYTES = 8192  # enough of an oversized message to read its MSH for the ACK
STATUS = {"AA": 200, "AE": 422, "AR": 400}
LEDGER_SEPARATOR = "\x1c"  # between the ACKs of one message in the ledger (MLLP's end block: never in a message)


class _Acknowledged(Exception):
    """The message key is already in the ledger (found inside the write transaction)."""

    def __init__(self, content_sha256: str, acks: list[str]) -> None:
        super().__init__("already acknowledged")
        self.content_sha256 = content_sha256
        self.acks = acks


class Hl7v2Door:
    def __init__(self, claims: ClaimService) -> None:
        self.claims = claims
        self.store = claims.store
        self.settings = claims.settings
        self.mapping = load_mapping(self.settings.mappings_dir)
        self.tz = ZoneInfo(self.settings.hl7v2_timezone)
        self.ready: Callable[[], bool] = lambda: True  # the schema is up (the app sets this)

    def handle(self, raw: bytes, access: WriteAccess | None = None) -> list[str]:
        """The ACKs to send for one message, in order: one in original mode; in enhanced mode the
        accept and the application acknowledgment, each as MSH-15 / MSH-16 ask (maybe none).

        With ``access`` the message is written as that Principal (scope and tenant checks, the
        AuditEvent in the write's transaction); a message that writes nothing still leaves its
        AuditEvent (recorded here once the outcome is known).
        """
        if is_batch(raw):
            return [self._batch(raw, access)]
        try:
            acks, code = self._handle(raw, access)
        except DeadlineExceeded:  # the time budget is spent or the server shuts down: nothing was stored
            return unbudgeted(self.reject_frame)(raw, STOPPED, "207", access)
        self._audit(access, code)
        return acks

    def _batch(self, raw: bytes, access: WriteAccess | None) -> str:
        """An FHS / BHS batch: each message handled as if it came alone (its own commit, ledger row and
        AuditEvent), answered with one response batch (adapter/intake/hl7v2/batch.py)."""

        def take(message: bytes) -> list[str]:
            if access is None:
                return self.handle(message)
            own = replace(access.context, entities=[], recorded=False)
            return self.handle(message, WriteAccess(access.principal, own, access.recorder))

        try:
            answer = answer_batch(raw, take, self.claims.clock())
        except V2Error as refused:
            return "".join(self.reject_frame(raw[:HEAD_BYTES], refused.problems[0].message, "100", access))
        if access is not None:
            access.context.recorded = True  # every message of the batch left its own AuditEvent
        return answer

    def _audit(self, access: WriteAccess | None, code: str) -> None:
        if access is not None and not access.context.recorded:
            try:
                access.recorder.record_after(access.context, STATUS[code])
            except DATABASE_DOWN as down:
                log.warning("hl7v2 AuditEvent not recorded (%s)", type(down).__name__)

    def _handle(self, raw: bytes, access: WriteAccess | None) -> tuple[list[str], str]:
        now = self.claims.clock()  # the service's decision clock (timely filing, future dates)
        settings = self.settings
        outcome = convert_message(
            raw,
            rules=self.claims.rules,
            mapping=self.mapping,
            now=now,
            tz=self.tz,
            options=settings.claim_options,
            limits=settings.limits,
            validation=settings.validation,
        )
        if outcome.header is not None and outcome.header.message_type.startswith("ACK^"):
            # the sender's accept acknowledgment of our application acknowledgment: never acknowledged
            log.info("hl7v2 ACK received and dropped payload=%s", outcome.content_sha256[:12])
            return [], "AA"
        key = outcome.key
        if outcome.code != "AA" or key is None:
            return self._refuse(outcome, now), outcome.code
        if not self.ready():
            return self._unavailable(outcome, now, "the database is not ready"), "AR"
        assert outcome.result is not None
        result = outcome.result
        try:
            if access is not None:
                access.principal.require("Claim", "c")
                access.check_billing(o.billing_npi for o in result.outcomes if o.status or o.cancels_claim)
            found = self._ledger(key)
            if found is not None:
                raise _Acknowledged(*found)
            acks = outcome.acks(now)
            self.claims.store_result(
                result,
                outcome.content_sha256,
                inputs=outcome.inputs,
                operation="hl7v2",
                also=lambda connection, _: self._claim_key(connection, key, outcome.content_sha256, acks, now),
                access=access,
            )
        except _Acknowledged as seen:
            again = self._again(outcome, seen, now)
            return again, "AA" if again == seen.acks else "AE"
        except FhirError as failed:
            if failed.status in (401, 403):  # this client may not write this visit: never taken as sent
                issue = AckIssue("E", "207", failed.code, f"{failed.message}; nothing was stored", None)
                refused = replace(outcome, code="AE", text=f"refused: {failed.message}", issues=[issue])
                return self._refuse(refused, now), "AE"
            # the database is down or writes kept conflicting: nothing was stored, resend later
            return self._unavailable(outcome, now, failed.message, "207" if failed.status == 503 else "206"), "AR"
        except DATABASE_DOWN as down:
            log.warning("hl7v2 database unreachable (%s)", type(down).__name__)
            return self._unavailable(outcome, now, "the database cannot be reached"), "AR"
        log.info("hl7v2 AA stored payload=%s", outcome.content_sha256[:12])
        return acks, "AA"

    def _unavailable(self, outcome: V2Outcome, now: datetime, reason: str, code: str = "207") -> list[str]:
        """AR (not the sender's fault, HL7 2.9.2): nothing was stored; the sender should resend later."""
        issue = AckIssue("E", code, "database-unavailable", f"{reason}; nothing was stored, resend later", None)
        return self._refuse(replace(outcome, code="AR", text=f"rejected: {reason}", issues=[issue]), now)

    def reject_frame(
        self, head: bytes, message: str, hl7_code: str = "207", access: WriteAccess | None = None
    ) -> list[str]:
        """AR for a frame that cannot be taken (oversized, no start block); MSA-2 when its MSH is readable."""
        now = datetime.now(UTC).replace(microsecond=0)
        try:
            header = read_header(head.split(b"\r")[0].split(b"\n")[0], self.mapping).header
        except V2Error:
            header = None
        issue = AckIssue("E", hl7_code, "hl7v2-frame", message, None)
        outcome = V2Outcome(header, "AR", f"rejected: {message}", [issue], content_digest(head))
        ack = self._refuse(outcome, now)
        self._audit(access, "AR")
        return ack

    def _ledger(self, key: tuple[str, str], connection: Connection | None = None) -> tuple[str, list[str]] | None:
        query = select(hl7v2_messages.c.content_sha256, hl7v2_messages.c.ack).where(
            hl7v2_messages.c.sender == key[0], hl7v2_messages.c.control_id == key[1]
        )
        if connection is not None:
            row = connection.execute(query).first()
        else:
            with self.store.engine.connect() as own:
                row = own.execute(query).first()
        if row is None:
            return None
        return row.content_sha256, [ack for ack in row.ack.split(LEDGER_SEPARATOR) if ack]

    def _claim_key(
        self, connection: Connection, key: tuple[str, str], digest: str, acks: list[str], now: datetime
    ) -> None:
        found = self._ledger(key, connection)
        if found is not None:
            raise _Acknowledged(*found)
        try:
            connection.execute(
                insert(hl7v2_messages).values(
                    sender=key[0],
                    control_id=key[1],
                    content_sha256=digest,
                    received_at=now,
                    ack=LEDGER_SEPARATOR.join(acks),
                )
            )
        except IntegrityError as exc:  # a concurrent copy got there first: retry, then find its row
            raise WriteConflict("hl7v2_messages") from exc

    def _again(self, outcome: V2Outcome, seen: _Acknowledged, now: datetime) -> list[str]:
        if seen.content_sha256 == outcome.content_sha256:
            log.info("hl7v2 resend acknowledged again payload=%s", outcome.content_sha256[:12])
            return seen.acks
        issue = AckIssue(
            "E",
            "205",
            "hl7v2-duplicate-control-id",
            "this MSH-10 was already acknowledged for this sender with other content; send a new control id",
            "MSH[1]-10",
        )
        refused = replace(outcome, code="AE", text="refused: duplicate message control id (MSH-10)", issues=[issue])
        return self._refuse(refused, now)

    def _refuse(self, outcome: V2Outcome, now: datetime) -> list[str]:
        """An AE / AR: nothing is stored but the submission is recorded (codes and hashes only)."""
        summary = {"ack": outcome.code, "errors": [[i.hl7_code, i.finding, i.location] for i in outcome.issues]}
        try:
            with self.store.transaction() as connection:
                self.store.record_submission(
                    connection,
                    id=str(uuid.uuid4()),
                    received_at=now,
                    operation="hl7v2",
                    payload_sha256=outcome.content_sha256,
                    http_status=STATUS[outcome.code],
                    rule_fingerprint=self.claims.rules.fingerprint,
                    outcome=orjson.dumps(summary).decode(),
                )
        except Exception:  # the database is down: the refusal is still answered, and logged here
            log.warning(
                "hl7v2 %s not recorded (database unavailable) payload=%s", outcome.code, outcome.content_sha256[:12]
            )
        log.info(
            "hl7v2 %s %s payload=%s", outcome.code, [i.hl7_code for i in outcome.issues], outcome.content_sha256[:12]
        )
        return acknowledgments(
            outcome.header,
            outcome.code,
            outcome.text,
            outcome.issues,
            now=now,
            seed=f"{outcome.content_sha256}|{outcome.code}|{now.isoformat()}",
        )
