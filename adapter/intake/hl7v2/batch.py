"""FHS / BHS batches (HL7 v2.5.1 ch. 2.10): several messages in one frame, each taken on its own.

The batch is split into its messages with python-hl7 (``hl7.parse_file``); each message then goes
through the door exactly as if it had come alone (its own commit, ledger row, AuditEvent and
acknowledgments), and the answer is one response batch (ch. 2.10.3, "all messages are
acknowledged"): FHS (when the input had one) and BHS with the sending and receiving fields swapped,
their own control ids and, in FHS-12 / BHS-12, the control ids of the input's FHS-11 / BHS-11; then
every acknowledgment of every message in order (MSA-2 names each message); BTS-1 and FTS-1 count
what the response holds.  A resend of the whole batch is answered again from the ledger, without a
second write.  A BTS-1 that does not match the messages found is said in the response's BHS-10.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import hl7

from adapter.intake.hl7v2.er7 import Location, V2Error, problem

HEADERS = (b"FHS", b"BHS")
LEADING = b"\xef\xbb\xbf \t\r\n"  # a byte-order mark and blank lines before the first segment


@dataclass(frozen=True, slots=True)
class Batch:
    header: hl7.Segment | None  # BHS (None: messages outside any batch of the file)
    trailer: hl7.Segment | None  # BTS
    messages: list[bytes]


@dataclass(frozen=True, slots=True)
class BatchFile:
    header: hl7.Segment | None  # FHS
    batches: list[Batch]


def is_batch(raw: bytes) -> bool:
    return raw.lstrip(LEADING).startswith(HEADERS)


def split_batch(raw: bytes) -> BatchFile:
    """The batches and messages of an FHS / BHS frame; the messages keep their bytes (latin-1
    maps every byte to one character and back, so each message's own MSH-18 charset still decides)."""
    try:
        parsed = hl7.parse_file(raw.lstrip(LEADING).decode("latin-1"))
    except hl7.ParseException as error:  # (its message quotes the segment: PHI, not repeated)
        message = "not an HL7 v2 batch: a segment before its MSH, or a second FHS or BHS where one may be"
        raise V2Error([problem("hl7v2-batch", message, Location("BHS", 1))], reject=True) from error
    header = parsed.header if isinstance(parsed.header, hl7.Segment) else None
    batches = [
        Batch(
            batch.header if isinstance(batch.header, hl7.Segment) else None,
            batch.trailer if isinstance(batch.trailer, hl7.Segment) else None,
            [str(message).encode("latin-1") for message in batch],
        )
        for batch in parsed
    ]
    return BatchFile(header, batches)


def _field(segment: hl7.Segment | None, number: int) -> str:
    return str(segment[number]) if segment is not None and len(segment) > number else ""


def _control_id(seed: str) -> str:
    return "TB" + hashlib.sha256(seed.encode()).hexdigest()[:18].upper()


def _separators(received: hl7.Segment | None) -> str:
    """The field separator and encoding characters an FHS / BHS declares (the defaults without one)."""
    text = str(received) if received is not None else ""
    return text[3:8] if len(text) >= 8 else "|^~\\&"


def _header(kind: str, received: hl7.Segment | None, now: datetime, seed: str, comment: str = "") -> str:
    """FHS or BHS of the response: separators of the input, sender and receiver swapped, own control id."""
    separators = _separators(received)
    values = [
        kind,
        separators[1:],
        _field(received, 5),
        _field(received, 6),
        _field(received, 3),
        _field(received, 4),
        now.astimezone(UTC).strftime("%Y%m%d%H%M%S+0000"),
        "",
        "",
        comment,
        _control_id(seed),
        _field(received, 11),
    ]
    field = separators[0]
    return kind + field + field.join(values[1:])


def answer_batch(raw: bytes, take: Callable[[bytes], list[str]], now: datetime) -> str:
    """The response batch: ``take`` handles one message and returns its acknowledgments."""
    document = split_batch(raw)
    seed = hashlib.sha256(raw).hexdigest()
    segments: list[str] = []
    if document.header is not None:
        segments.append(_header("FHS", document.header, now, f"{seed}|file"))
    for number, batch in enumerate(document.batches):
        acks = [ack for message in batch.messages for ack in take(message)]
        declared = _field(batch.trailer, 1)
        comment = ""
        if declared and declared != str(len(batch.messages)):
            comment = f"BTS-1 says {declared[:10]} messages; {len(batch.messages)} were found and answered"
        segments.append(_header("BHS", batch.header, now, f"{seed}|{number}", comment))
        segments += [ack.rstrip("\r") for ack in acks]
        segments.append(f"BTS{_separators(batch.header)[0]}{len(acks)}")
    if document.header is not None:
        segments.append(f"FTS{_separators(document.header)[0]}{len(document.batches)}")
    return "\r".join(segments) + "\r"
