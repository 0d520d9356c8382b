"""Read a 999 implementation acknowledgment: which 837 transaction sets were accepted or rejected.

Only what the export record needs: per AK2 (transaction set response), the ST02 control number
and the IK5 code (A accepted, E accepted with errors, R rejected; M, W, X count as rejected).
Delimiters come from the ISA, as X12 says; anything else is refused with an InputError.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapter.errors import InputError, Problem

ACCEPTED = {"A": "A", "E": "E", "R": "R", "M": "R", "W": "R", "X": "R"}


@dataclass(frozen=True, slots=True)
class TransactionAck:
    group: int  # AK102: the GS06 of the acknowledged group
    transaction: int  # AK202: the ST02
    code: str  # A | E | R


def _refuse(message: str) -> InputError:
    return InputError([Problem("invalid-999", message, None, "structure")])


def read_999(content: bytes) -> list[TransactionAck]:
    try:
        text = content.decode("ascii").lstrip("\ufeff \r\n")
    except UnicodeDecodeError as exc:
        raise _refuse("a 999 is ASCII text") from exc
    if not text.startswith("ISA") or len(text) < 106:
        raise _refuse("the file does not start with an ISA segment")
    element, terminator = text[3], text[105]
    segments = [s.strip("\r\n ").split(element) for s in text.split(terminator) if s.strip("\r\n ")]
    if not any(s[0] == "ST" and len(s) > 1 and s[1] == "999" for s in segments):
        raise _refuse("the interchange holds no 999 transaction set")
    found: list[TransactionAck] = []
    group: int | None = None
    transaction: int | None = None
    for seg in segments:
        try:
            if seg[0] == "AK1":
                group = int(seg[2])
            elif seg[0] == "AK2":
                transaction = int(seg[2])
            elif seg[0] == "IK5":
                if group is None or transaction is None or seg[1] not in ACCEPTED:
                    raise _refuse("an IK5 without its AK1 / AK2, or with an unknown code")
                found.append(TransactionAck(group, transaction, ACCEPTED[seg[1]]))
                transaction = None
        except (IndexError, ValueError) as exc:
            raise _refuse(f"malformed {seg[0]} segment") from exc
    return found
