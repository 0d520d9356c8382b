"""ER7 (pipe-delimited) HL7 v2 messages read as python-hl7 reads them, with HL7 error locations.

This module reads; it decides nothing.  ``read_header`` returns the parsed message and its
header, or raises :class:`V2Error` whose problems name HL7 locations (``FT1[2]-4``) and whose
``reject`` flag says the message was not understood (ACK ``AR``) rather than refused (``AE``).

Why not ``hl7.parse``: building python-hl7's container tree (a list object per field, repetition,
component and subcomponent) and reading it through ``extract_field`` took most of a message's
time, against the in-process target of issue 13 (a DFT within 1.3x of the same visit as FHIR JSON).
:class:`Seg` instead splits a segment into fields once and a field into repetitions, components and
subcomponents only when a value is asked for.  python-hl7 stays the authority: its parse plan gives
the separators, its ``unescape`` decodes escape sequences, and tests/hl7v2/test_parse.py holds every
value equal to ``extract_field`` of ``hl7.parse`` (samples, test messages, mutated messages).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
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


def hl7_error_code(problem: Problem) -> str:
    return TABLE_0357.get(problem.code) or TABLE_0357_BY_TYPE.get(problem.issue_type, "207")


class V2Error(InputError):
    """The message cannot be processed; ``reject`` means not understood (AR), else refused (AE)."""

    def __init__(self, problems: list[Problem], *, reject: bool = False) -> None:
        super().__init__(problems)
        self.reject = reject


@dataclass(slots=True)
class Location:
    """An HL7 error location (ERL): segment, its occurrence in the message, field, component.

    Not frozen (treat it as a value), nor are the other values made per message here (Header, Parsed,
    Instant, Charge): a frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``,
    three to four times the cost.
    """

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


# Segments python-hl7 splits specially: field 1 is the field separator, field 2 the encoding characters.
HEADER_SEGMENTS = ("MSH", "BHS", "FHS")


@dataclass(frozen=True, slots=True)
class Encoding:
    """A message's separators and escape character, as python-hl7's parse plan reads them from MSH."""

    field: str
    repetition: str
    component: str
    subcomponent: str
    escape: str
    container: Any  # an empty hl7.Message with these separators: what python-hl7's unescape reads them from

    @classmethod
    def of(cls, text: str) -> Encoding | None:
        """The message's encoding; None where python-hl7 would fail to parse it (repeated separators)."""
        # what python-hl7's parse plan reads: MSH-1 and MSH-2 up to the next field separator
        return _encoding(text[3 : text.find(text[3], 4)])


@lru_cache(maxsize=64)
def _encoding(characters: str) -> Encoding | None:
    """The encoding of MSH-1 + MSH-2 ``characters``: senders use few, and a parse plan costs a message's
    reading of a field or two."""
    plan = hl7.parser.create_parse_plan(f"MSH{characters}{characters[0]}")
    separators = plan.separators  # segment, field, repetition, component, subcomponent
    if len(set(separators)) != len(separators):  # an 8-byte MSH whose defaulted "&" repeats one it names
        return None
    container = hl7.Message(separators[0], [], plan.esc, separators)
    return Encoding(separators[1], separators[2], separators[3], separators[4], plan.esc, container)


def split_segment(text: str, encoding: Encoding) -> tuple[str, list[str], int]:
    """A segment's id, fields and how many leading fields stay whole, as ``hl7.parse`` splits it."""
    if text[:3] in HEADER_SEGMENTS and any(
        s in text for s in (encoding.field, encoding.repetition, encoding.component, encoding.subcomponent)
    ):
        end = text.find(text[3], 4)  # python-hl7's own arithmetic, also where MSH-2 is not closed (-1)
        rest = text[end + 1 :]
        return text[:3], [text[:3], text[3], text[4:end]] + (rest.split(encoding.field) if rest else []), 3
    fields = text.split(encoding.field)
    return fields[0], fields, 0


class Seg:
    """One segment and its location, with component access that never raises.

    ``value`` is python-hl7's ``extract_field(...)`` stripped ("" where it raises), for numbers from 1;
    ``components`` and ``subcomponents`` are several of those values at once, for the composite data
    types (CX, XCN, CWE, HD): one split of the field instead of a call and three splits per value.
    """

    __slots__ = ("_encoding", "_fields", "_whole", "id", "location")

    def __init__(self, segment_id: str, fields: list[str], whole: int, encoding: Encoding, occurrence: int) -> None:
        self.id = segment_id
        self.location = Location(segment_id, occurrence)
        self._encoding = encoding
        self._fields = fields  # field 0 is the segment id
        self._whole = whole  # fields below this number are not split (MSH-1, MSH-2)

    def value(self, field: int, component: int = 1, repetition: int = 1, subcomponent: int = 1) -> str:
        fields = self._fields
        if field >= len(fields) or not fields[field]:
            return ""
        leaf, encoding = fields[field], self._encoding
        if field < self._whole:
            if component != 1 or repetition != 1 or subcomponent != 1:
                return ""
            if self.id == "MSH":  # python-hl7 returns MSH-1 and MSH-2 as sent
                return leaf.strip()
        else:
            try:
                leaf = (
                    leaf.split(encoding.repetition)[repetition - 1]
                    .split(encoding.component)[component - 1]
                    .split(encoding.subcomponent)[subcomponent - 1]
                )
            except IndexError:
                return ""
        if encoding.escape in leaf:
            try:
                leaf = encoding.container.unescape(leaf)
            except ValueError:  # an escape sequence python-hl7 cannot decode
                return ""
        return leaf.strip()

    def components(self, field: int, repetition: int = 1, *, count: int) -> list[str]:
        """``value(field, c, repetition)`` for ``c`` from 1 to ``count``."""
        sent = self._repetition(field, repetition)
        if sent is None:
            return [self.value(field, c, repetition) for c in range(1, count + 1)]
        texts = sent.split(self._encoding.component)[:count]
        if self._encoding.subcomponent in sent:
            texts = [text.partition(self._encoding.subcomponent)[0] for text in texts]
        return list(map(str.strip, texts)) + [""] * (count - len(texts))

    def subcomponents(self, field: int, component: int, repetition: int = 1, *, count: int) -> list[str]:
        """``value(field, component, repetition, s)`` for ``s`` from 1 to ``count``."""
        sent = self._repetition(field, repetition)
        if sent is None:
            return [self.value(field, component, repetition, s) for s in range(1, count + 1)]
        texts = sent.split(self._encoding.component)
        texts = texts[component - 1].split(self._encoding.subcomponent)[:count] if component <= len(texts) else []
        return list(map(str.strip, texts)) + [""] * (count - len(texts))

    def _repetition(self, field: int, repetition: int) -> str | None:
        """One repetition of a field as sent ("" if there is none); None where ``value`` decodes
        (escape sequences, MSH-1 and MSH-2)."""
        text = self._fields[field] if field < len(self._fields) else ""
        if field < self._whole or self._encoding.escape in text:
            return None
        repetitions = text.split(self._encoding.repetition)
        return repetitions[repetition - 1] if repetition <= len(repetitions) else ""

    def field_text(self, field: int) -> str:
        """A field as sent (separators and escape sequences kept), "" when absent."""
        return self._fields[field] if field < len(self._fields) else ""

    def repetitions(self, field: int) -> list[int]:
        """The 1-based repetitions of a field that hold something."""
        if field >= len(self._fields) or not self._fields[field]:
            return []
        count = 1 if field < self._whole else self._fields[field].count(self._encoding.repetition) + 1
        return [r for r in range(1, count + 1) if any(self.components(field, r, count=2))]

    def at(self, field: int, component: int | None = None, repetition: int | None = None) -> Location:
        return self.location.at(field, component, repetition)


@dataclass(slots=True)
class Header:
    """MSH as read (a value, though not frozen: see Location)."""

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


@dataclass(slots=True)
class Parsed:
    header: Header
    segments: tuple[Seg, ...]
    text: str  # the decoded message, segments separated by CR
    by_id: dict[str, list[Seg]]  # each segment id's segments, in order

    def all(self, segment_id: str) -> list[Seg]:
        return self.by_id.get(segment_id, [])

    def first(self, segment_id: str) -> Seg | None:
        found = self.by_id.get(segment_id)
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
    if len(set(separators)) != 5 or any(map(str.isalnum, separators)) or any(map(str.isspace, separators)):
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
    encoding = Encoding.of(text)
    if encoding is None:
        raise _unreadable()
    by_id: dict[str, list[Seg]] = {}
    segments = []
    for segment_text in text.split("\r"):
        seg_id, fields, whole = split_segment(segment_text, encoding)
        if not seg_id:  # an empty segment (python-hl7 keeps it; nothing reads it)
            continue
        same = by_id.setdefault(seg_id, [])
        seg = Seg(seg_id, fields, whole, encoding, len(same) + 1)
        same.append(seg)
        segments.append(seg)
    msh = segments[0]
    header = Header(
        sending_application=msh.field_text(3),
        sending_facility=msh.field_text(4),
        receiving_application=msh.field_text(5),
        receiving_facility=msh.field_text(6),
        message_type="^".join(msh.components(9, count=2)),
        control_id=msh.value(10),
        processing_id=msh.value(11),
        version=msh.value(12),
        accept_ack_type=msh.value(15),
        application_ack_type=msh.value(16),
        separators=text[3:8],
    )
    return Parsed(header, tuple(segments), text, by_id)


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
    if len(parsed.all("MSH")) != 1:
        raise _rejected(
            "hl7v2-segment-sequence",
            "one message per frame: a second MSH segment follows (several messages need an FHS / BHS batch)",
            parsed.all("MSH")[-1].location,
        )
    if not header.control_id:
        raise _rejected("hl7v2-missing-control-id", "MSH-10 message control id is required", msh.at(10), "required")
    if header.message_type.split("^")[0] != "DFT":
        raise _rejected(
            "hl7v2-unsupported-message-type",
            f"message type {header.message_type.split('^')[0]!r} is not supported; send DFT",
            msh.at(9, 1),
        )
    if header.message_type not in mapping.messages:
        raise _rejected(
            "hl7v2-unsupported-event",
            f"event {header.message_type.split('^')[1]!r} is not supported; send one of {mapping.messages}",
            msh.at(9, 2),
        )
    if header.processing_id not in mapping.processing_ids:
        raise _rejected(
            "hl7v2-unsupported-processing-id",
            f"processing id {header.processing_id!r} is not accepted here; expected {mapping.processing_ids}",
            msh.at(11),
        )
    if header.version not in mapping.versions:
        raise _rejected(
            "hl7v2-unsupported-version",
            f"version {header.version!r} is not supported; expected one of {mapping.versions}",
            msh.at(12),
        )


def _rejected(code: str, message: str, location: Location, issue_type: str = "not-supported") -> V2Error:
    return V2Error([problem(code, message, location, issue_type)], reject=True)
