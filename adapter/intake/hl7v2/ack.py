"""HL7 v2 acknowledgments (v2.5.1 ch. 2.9 / 2.14: MSH, MSA, ERR), original and enhanced mode.

Original mode (MSH-15 and MSH-16 empty): one ACK, MSA-1 AA / AE / AR.  Enhanced mode (ch. 2.9.3,
either valued): first the accept acknowledgment, CA when the message was taken (committed, or
refused for its content: resending it would not help), CR when it cannot be taken (type, version,
processing id, framing), CE when it cannot be taken now (ERR 206 / 207: resend later); then, for a
taken message, the application acknowledgment AA / AE as a message of its own.  Each is sent or not
as its field asks (table 0155: AL always, NE never, ER only on an error or reject, SU only on
success; empty or not a table 0155 value = AL).  An ACK's MSH swaps the sending and receiving
application and facility, has its own control id, and copies processing id and version.
ERR: v2.5 and later use ERR-2 location (ERL), ERR-3 HL7 error code (table 0357), ERR-4 severity,
ERR-5 theraclaim's finding code and ERR-8 the user message; v2.3 / v2.4 use ERR-1 (ELD).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import hl7

from adapter.intake.hl7v2.er7 import TABLE_0357_TEXT, Header, Location

DEFAULT_SEPARATORS = "|^~\\&"
DEFAULT_VERSION = "2.5.1"
TRANSIENT = ("206", "207")  # table 0357 codes of "not now": the accept acknowledgment is CE, not CR
MAX_TEXT = 200  # MSA-3 (ST, 80 in v2.5.1, deprecated since v2.4) stays short; the details are in the ERR segments


@dataclass(frozen=True, slots=True)
class AckIssue:
    severity: str  # E error, W warning, I information (HL7 table 0516)
    hl7_code: str  # table 0357
    finding: str  # theraclaim's finding code
    message: str
    location: str | None  # SEG[n]-f.c


@cache
def _escaper(separators: str) -> Any:
    return hl7.parse(f"MSH{separators}|")


def _escape(separators: str, value: str) -> str:
    return str(_escaper(separators).escape(value.replace("\r", " ").replace("\n", " ")))


def _wanted(condition: str, success: bool) -> bool:
    """Whether an acknowledgment goes out under its MSH-15 / MSH-16 condition (table 0155)."""
    mode = condition.upper()
    return mode not in ("NE", "ER", "SU") or (mode == "ER" and not success) or (mode == "SU" and success)


def accept_code(code: str, issues: list[AckIssue]) -> str:
    """The enhanced-mode accept acknowledgment code of an outcome (AA, AE or AR)."""
    if code != "AR":
        return "CA"
    return "CE" if any(issue.hl7_code in TRANSIENT for issue in issues) else "CR"


def _version_at_least_25(version: str) -> bool:
    try:
        return tuple(int(p) for p in version.split(".")[:2]) >= (2, 5)
    except ValueError:
        return True


def ack_control_id(seed: str) -> str:
    """A new control id for the ACK (20 characters, the ST length of MSH-10 up to v2.6), stable for its seed."""
    return "TC" + hashlib.sha256(seed.encode()).hexdigest()[:18].upper()


def acknowledgments(
    header: Header | None,
    code: str,
    text: str,
    issues: list[AckIssue],
    *,
    now: datetime,
    seed: str,
) -> list[str]:
    """The ACK messages to send for an outcome, in order, as ER7 text (segments separated by CR):
    original mode one; enhanced mode the accept acknowledgment and then, for a message taken, the
    application acknowledgment, each only when its field asks for it (possibly none at all)."""
    if header is None or not header.enhanced:
        return [_message(header, code, text, issues, now, seed)]
    sent = []
    accept = accept_code(code, issues)
    if _wanted(header.accept_ack_type, accept == "CA"):
        taken = accept == "CA"  # the details of a taken message are the application acknowledgment's
        sent.append(_message(header, accept, text, [] if taken else issues, now, f"{seed}|accept"))
    if accept == "CA" and _wanted(header.application_ack_type, code == "AA"):
        sent.append(_message(header, code, text, issues, now, f"{seed}|application"))
    return sent


def _message(header: Header | None, code: str, text: str, issues: list[AckIssue], now: datetime, seed: str) -> str:
    separators = header.separators if header is not None and len(header.separators) == 5 else DEFAULT_SEPARATORS
    field = separators[0]
    version = header.version if header is not None and header.version else DEFAULT_VERSION
    esc = _escape
    msh = [
        "MSH",
        separators[1:],
        header.receiving_application if header else "",
        header.receiving_facility if header else "",
        header.sending_application if header else "",
        header.sending_facility if header else "",
        now.astimezone(UTC).strftime("%Y%m%d%H%M%S+0000"),
        "",
        f"ACK{separators[1]}{header.message_type.split('^')[1] if header else ''}{separators[1]}ACK",
        ack_control_id(seed),
        (header.processing_id if header and header.processing_id else "P"),
        version,
    ]
    segments = [field.join(msh[:1]) + field + field.join(msh[1:])]
    control_id = esc(separators, header.control_id) if header else ""
    segments.append(field.join(["MSA", code, control_id, esc(separators, text[:MAX_TEXT])]))
    for issue in issues:
        segments.append(_err(issue, separators, version))
    return "\r".join(segments) + "\r"


def _err(issue: AckIssue, separators: str, version: str) -> str:
    field, component, subcomponent = separators[0], separators[1], separators[4]
    location = Location.parse(issue.location) if issue.location else None
    code_text = TABLE_0357_TEXT.get(issue.hl7_code, "")
    message = _escape(separators, issue.message)
    if not _version_at_least_25(version):
        eld = [location.segment, str(location.occurrence), str(location.field or "")] if location else ["", "", ""]
        if issue.hl7_code == "0":  # a warning: ELD has no severity, so the finding and its text say it
            eld.append(subcomponent.join([_escape(separators, issue.finding), message, "99TCF"]))
        else:
            eld.append(subcomponent.join([issue.hl7_code, code_text, "HL70357"]))
        return field.join(["ERR", component.join(eld)])
    erl = location.erl().replace("^", component) if location else ""
    parts = [
        "ERR",
        "",
        erl,
        component.join([issue.hl7_code, code_text, "HL70357"]),
        issue.severity,
        component.join([_escape(separators, issue.finding), "", "99TCF"]),
        "",
        "",
        message,
    ]
    return field.join(parts)
