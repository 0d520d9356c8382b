"""HL7 v2 acknowledgments (v2.5.1 ch. 2.9 / 2.14: MSH, MSA, ERR), original and enhanced mode.

Original mode: MSA-1 AA / AE / AR.  Enhanced mode (the sender valued MSH-15 or MSH-16): the
accept acknowledgment CA / CE / CR, sent or not as MSH-15 asks (AL always, NE never, ER only on
an error or reject, SU only on success; empty or not a table 0155 value = AL).  The ACK's MSH swaps the sending and
receiving application and facility, has its own control id, and copies processing id and version.
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
ENHANCED = {"AA": "CA", "AE": "CE", "AR": "CR"}
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


def _sends(header: Header | None, code: str) -> bool:
    if header is None or not header.enhanced:
        return True
    mode = header.accept_ack_type.upper()  # table 0155; empty or unknown: AL (always)
    return mode not in ("NE", "ER", "SU") or (mode == "ER" and code != "AA") or (mode == "SU" and code == "AA")


def _version_at_least_25(version: str) -> bool:
    try:
        return tuple(int(p) for p in version.split(".")[:2]) >= (2, 5)
    except ValueError:
        return True


def ack_control_id(seed: str) -> str:
    """A new control id for the ACK (20 characters, the ST length of MSH-10 up to v2.6), stable for its seed."""
    return "TC" + hashlib.sha256(seed.encode()).hexdigest()[:18].upper()


def build_ack(
    header: Header | None,
    code: str,
    text: str,
    issues: list[AckIssue],
    *,
    now: datetime,
    seed: str,
) -> str | None:
    """The ACK as ER7 text (segments separated by CR), or None when enhanced mode asks for none."""
    if not _sends(header, code):
        return None
    separators = header.separators if header is not None and len(header.separators) == 5 else DEFAULT_SEPARATORS
    field = separators[0]
    version = header.version if header is not None and header.version else DEFAULT_VERSION
    msa_code = ENHANCED[code] if header is not None and header.enhanced else code
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
    segments.append(field.join(["MSA", msa_code, control_id, esc(separators, text[:MAX_TEXT])]))
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
