"""ER7 (pipe-delimited) HL7 v2 messages parsed with python-hl7, with HL7 error locations.

This module reads; it decides nothing.  ``parse_message`` returns the parsed message and its
header, or raises :class:`V2Error` whose problems name HL7 locations (``FT1[2]-4``) and whose
``reject`` flag says the message was not understood (ACK ``AR``) rather than refused (``AE``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import hl7
import hl7.containers
import hl7.parser
import hl7.util

from adapter.errors import InputError, Problem
from adapter.intake.hl7v2.mapping import Hl7v2Mapping

# HL7 table 0357 (message error condition codes) by the problem's finding code, else by its FHIR issue type.
TABLE_0357 = {
    "hl7v2-segment-sequence": "100",
    "hl7v2-unsupported-message-type": "200",
    "hl7v2-unsupported-event": "201",
    "hl7v2-unsupported-processing-id": "202",
    "hl7v2-unsupported-version": "203",
    "hl7v2-unknown-key": "204",
    "hl7v2-duplicate-control-id": "205",
    "hl7v2-internal-error": "207",
}
TABLE_0357_BY_TYPE = {"required": "101", "value": "102", "invalid": "102", "code-invalid": "103", "structure": "102"}
TABLE_0357_TEXT = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "204": "Unknown key identifier",
    "205": "Duplicate key identifier",
    "206": "Application record locked",
    "207": "Application internal error",
}


# python-hl7 logs the whole field (PHI) when it meets a bad escape sequence, through the deprecated
# Logger.warn: that logger stays silent, and its warn is the non-deprecated warning.
for _hl7_log in (hl7.util.logger, hl7.containers.logger):  # named by file path, not by module
    _hl7_log.disabled = True
    _hl7_log.warn = _hl7_log.warning

# What python-hl7 raises on input it cannot split (it also asserts on some malformed encoding characters).
PARSE_FAILURES = (hl7.HL7Exception, ValueError, IndexError, AssertionError)


class _ReusedPlan(hl7.parser._ParsePlan):  # type: ignore[misc]  # python-hl7 is untyped
    """python-hl7's parse plan, whose next level is made once per message, not once per element.

    ``hl7.parse`` asks each level's plan for the next one for every element it splits (some 300
    plan objects for a 900-byte DFT, a third of its time), and recomputes which separators apply
    at its level for every element; both are the same for every element of a level.
    """

    _next: Any

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        below = self.separators[self.separators.find(self.separator) :]  # this level's and those under it
        self._below = re.compile(f"[{re.escape(below)}]")

    def next(self) -> Any:
        try:
            return self._next
        except AttributeError:
            self._next = super().next()
            return self._next

    def applies(self, text: str) -> bool:
        return self._below.search(text) is not None


def parse(text: str) -> Any:
    """``hl7.parse(text)`` of a stripped message, the same containers (tests/hl7v2/test_parse.py)."""
    plan = hl7.parser.create_parse_plan(text)
    return hl7.parser._split(
        text, _ReusedPlan(plan.separator, plan.separators, plan.containers, plan.esc, plan.factory)
    )


def hl7_error_code(problem: Problem) -> str:
    return TABLE_0357.get(problem.code) or TABLE_0357_BY_TYPE.get(problem.issue_type, "207")


class V2Error(InputError):
    """The message cannot be processed; ``reject`` means not understood (AR), else refused (AE)."""

    def __init__(self, problems: list[Problem], *, reject: bool = False) -> None:
        super().__init__(problems)
        self.reject = reject


@dataclass(frozen=True, slots=True)
class Location:
    """An HL7 error location (ERL): segment, its occurrence in the message, field, component."""

    segment: str
    occurrence: int = 1
    field: int | None = None
    component: int | None = None
    repetition: int | None = None

    def __str__(self) -> str:
        text = f"{self.segment}[{self.occurrence}]"
        if self.field is not None:
            text += f"-{self.field}"
            if self.repetition is not None and self.repetition > 1:
                text += f"({self.repetition})"
            if self.component is not None:
                text += f".{self.component}"
        return text

    def erl(self) -> str:
        """ERR-2 (data type ERL): segment ID ^ sequence ^ field ^ field repetition ^ component."""
        parts = [self.segment, str(self.occurrence)]
        if self.field is not None:
            parts += [str(self.field), str(self.repetition or 1)]
            if self.component is not None:
                parts.append(str(self.component))
        return "^".join(parts)

    def at(self, field: int, component: int | None = None, repetition: int | None = None) -> Location:
        return Location(self.segment, self.occurrence, field, component, repetition)

    @classmethod
    def parse(cls, text: str) -> Location | None:
        """The inverse of ``str()`` for ``SEG[n]-f.c`` (used to put locations into ERR segments)."""
        try:
            head, _, rest = text.partition("-")
            segment, _, occurrence = head.partition("[")
            field_text, _, component = rest.partition(".")
            field_text, _, repetition = field_text.partition("(")
            return cls(
                segment,
                int(occurrence.rstrip("]") or 1),
                int(field_text) if field_text else None,
                int(component) if component else None,
                int(repetition.rstrip(")")) if repetition else None,
            )
        except ValueError:
            return None


def problem(code: str, message: str, location: Location | None, issue_type: str = "invalid") -> Problem:
    return Problem(code, message, str(location) if location else None, issue_type)


class Seg:
    """One segment and its location, with component access that never raises."""

    def __init__(self, segment: Any, occurrence: int) -> None:
        self.segment = segment
        self.id = str(segment[0])
        self.location = Location(self.id, occurrence)
        self._values: dict[tuple[int, int, int, int], str] = {}

    def value(self, field: int, component: int = 1, repetition: int = 1, subcomponent: int = 1) -> str:
        key = (field, component, repetition, subcomponent)
        found = self._values.get(key)
        if found is None:
            try:
                found = str(self.segment.extract_field(1, field, repetition, component, subcomponent)).strip()
            except (IndexError, ValueError):  # absent, or an escape sequence python-hl7 cannot decode
                found = ""
            self._values[key] = found
        return found

    def repetitions(self, field: int) -> list[int]:
        """The 1-based repetitions of a field that hold something."""
        if field >= len(self.segment):
            return []
        count = len(self.segment(field)) if self.segment(field) else 0
        return [r for r in range(1, count + 1) if self.value(field, 1, r) or self.value(field, 2, r)]

    def at(self, field: int, component: int | None = None, repetition: int | None = None) -> Location:
        return self.location.at(field, component, repetition)


@dataclass(frozen=True, slots=True)
class Header:
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    message_type: str  # MSH-9.1^MSH-9.2
    control_id: str
    processing_id: str
    version: str
    accept_ack_type: str  # MSH-15
    application_ack_type: str  # MSH-16
    separators: str  # MSH-1 + MSH-2

    @property
    def enhanced(self) -> bool:
        """Enhanced acknowledgment mode: the sender valued MSH-15 or MSH-16."""
        return bool(self.accept_ack_type or self.application_ack_type)


@dataclass(frozen=True, slots=True)
class Parsed:
    header: Header
    segments: tuple[Seg, ...]
    text: str  # the decoded message, segments separated by CR

    def all(self, segment_id: str) -> list[Seg]:
        return [s for s in self.segments if s.id == segment_id]

    def first(self, segment_id: str) -> Seg | None:
        found = self.all(segment_id)
        return found[0] if found else None


def _decode(raw: bytes, mapping: Hl7v2Mapping) -> str:
    if raw.isascii():
        return raw.decode("ascii")
    # MSH-18 names the character set: read it from a lossless latin-1 view, then decode for real
    header = hl7.parse(raw.decode("latin-1").lstrip("\ufeff\xef\xbb\xbf").split("\r")[0].split("\n")[0])
    charset = str(header.segment("MSH").extract_field(1, 18, 1, 1, 1)).strip().upper()
    codec = mapping.charsets.get(charset)
    if codec is None:
        raise V2Error(
            [
                problem(
                    "hl7v2-unsupported-charset",
                    f"character set {charset!r} is not supported",
                    Location("MSH", 1, 18),
                    "not-supported",
                )
            ],
            reject=True,
        )
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as exc:
        raise V2Error(
            [
                problem(
                    "hl7v2-encoding",
                    f"the message is not valid {codec} (byte {exc.start})",
                    Location("MSH", 1, 18),
                    "structure",
                )
            ],
            reject=True,
        ) from exc


def read_header(raw: bytes, mapping: Hl7v2Mapping) -> Parsed:
    """Decode and parse one message; only what prevents reading the header raises (AR)."""
    try:
        text = _decode(raw, mapping)
    except PARSE_FAILURES as exc:
        raise _unreadable() from exc
    text = text.lstrip("\ufeff").replace("\r\n", "\r").replace("\n", "\r").strip()
    if not text.startswith("MSH") or len(text) < 8:
        raise _unreadable()
    separators = text[3:8]
    if len(set(separators)) != 5 or any(c.isalnum() or c.isspace() for c in separators):
        raise V2Error(
            [
                problem(
                    "hl7v2-encoding-characters",
                    f"MSH-1 / MSH-2 {separators!r} are not five distinct separators (such as |^~\\&)",
                    Location("MSH", 1, 2),
                    "structure",
                )
            ],
            reject=True,
        )
    try:
        message = parse(text)
    except PARSE_FAILURES as exc:
        raise _unreadable() from exc
    counts: dict[str, int] = {}
    segments = []
    for segment in message:
        if not segment or not str(segment[0]):
            continue
        seg_id = str(segment[0])
        counts[seg_id] = counts.get(seg_id, 0) + 1
        segments.append(Seg(segment, counts[seg_id]))
    msh = segments[0]
    header = Header(
        sending_application=str(msh.segment(3)) if len(msh.segment) > 3 else "",
        sending_facility=str(msh.segment(4)) if len(msh.segment) > 4 else "",
        receiving_application=str(msh.segment(5)) if len(msh.segment) > 5 else "",
        receiving_facility=str(msh.segment(6)) if len(msh.segment) > 6 else "",
        message_type=f"{msh.value(9, 1)}^{msh.value(9, 2)}",
        control_id=msh.value(10),
        processing_id=msh.value(11),
        version=msh.value(12),
        accept_ack_type=msh.value(15),
        application_ack_type=msh.value(16),
        separators=text[3:8],
    )
    return Parsed(header, tuple(segments), text)


def _unreadable() -> V2Error:
    return V2Error(
        [
            problem(
                "hl7v2-segment-sequence",
                "not an HL7 v2 message: it must start with an MSH segment",
                Location("MSH", 1),
                "structure",
            )
        ],
        reject=True,
    )


def check_header(parsed: Parsed, mapping: Hl7v2Mapping) -> None:
    """AR conditions: more than one message, unsupported type / event / processing id / version."""
    header, msh = parsed.header, parsed.segments[0]
    checks = [
        (
            len(parsed.all("MSH")) == 1,
            "hl7v2-segment-sequence",
            "one message per frame: a second MSH segment follows (several messages need an FHS / BHS batch)",
            parsed.all("MSH")[-1].location,
        ),
        (bool(header.control_id), "hl7v2-missing-control-id", "MSH-10 message control id is required", msh.at(10)),
        (
            header.message_type.split("^")[0] == "DFT",
            "hl7v2-unsupported-message-type",
            f"message type {header.message_type.split('^')[0]!r} is not supported; send DFT",
            msh.at(9, 1),
        ),
        (
            header.message_type in mapping.messages,
            "hl7v2-unsupported-event",
            f"event {header.message_type.split('^')[1]!r} is not supported; send one of {mapping.messages}",
            msh.at(9, 2),
        ),
        (
            header.processing_id in mapping.processing_ids,
            "hl7v2-unsupported-processing-id",
            f"processing id {header.processing_id!r} is not accepted here; expected {mapping.processing_ids}",
            msh.at(11),
        ),
        (
            header.version in mapping.versions,
            "hl7v2-unsupported-version",
            f"version {header.version!r} is not supported; expected one of {mapping.versions}",
            msh.at(12),
        ),
    ]
    for ok, code, message, location in checks:
        if not ok:
            issue_type = "required" if code == "hl7v2-missing-control-id" else "not-supported"
            raise V2Error([problem(code, message, location, issue_type)], reject=True)
