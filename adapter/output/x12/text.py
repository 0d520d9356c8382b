"""X12 text: the delimiters this output uses, the character set, checked values, segments.

X12 has no escape character, so a delimiter inside a name or an address cannot be carried: such
a value is refused (with the path of the element), never altered beyond what payers expect
(upper case, diacritics removed, runs of white space as one space).
"""

from __future__ import annotations

import re
import unicodedata

from adapter.errors import Problem

ELEMENT, COMPONENT, REPETITION, SEGMENT = "*", ":", "^", "~"
DELIMITERS = frozenset((ELEMENT, COMPONENT, REPETITION, SEGMENT))
# X12.6 basic and extended character sets, less the delimiters used here
_ALLOWED = re.compile(r"[A-Z0-9 !\"&'()+,\-./;?=%@\[\]_{}\\|<>#$]*")


def clean(value: str, what: str, path: str, problems: list[Problem], max_length: int) -> str:
    """``value`` as an X12 element: upper case, ASCII; a problem (without the value: PHI) when it cannot be."""
    if not value.isascii():  # (ASCII has no decompositions and no combining marks)
        value = "".join(c for c in unicodedata.normalize("NFKD", value) if not unicodedata.combining(c))
    text = " ".join(value.split()).upper()
    if DELIMITERS.intersection(text):
        problems.append(
            Problem(
                "x12-delimiter",
                f"{what} holds an X12 delimiter ({' '.join(sorted(DELIMITERS))}), which an 837P cannot carry",
                path,
                "value",
            )
        )
    elif not _ALLOWED.fullmatch(text):
        problems.append(
            Problem("x12-character", f"{what} holds characters outside the X12 character set", path, "value")
        )
    elif not text:
        problems.append(Problem("x12-missing", f"{what} is empty", path, "required"))
    elif len(text) > max_length:
        problems.append(
            Problem("x12-too-long", f"{what} is longer than the {max_length} characters the 837P allows", path, "value")
        )
    return text


def segment(*elements: str) -> str:
    """One segment, trailing empty elements dropped (X12.6: they are not transmitted)."""
    values = list(elements)
    while values and values[-1] == "":
        values.pop()
    return ELEMENT.join(values) + SEGMENT


def composite(*components: str) -> str:
    values = list(components)
    while values and values[-1] == "":
        values.pop()
    return COMPONENT.join(values)


def amount(cents: int) -> str:
    """An X12 decimal (R): no trailing zeros after the point, none at all for whole amounts."""
    whole, part = divmod(abs(cents), 100)
    sign = "-" if cents < 0 else ""
    return f"{sign}{whole}" if part == 0 else f"{sign}{whole}.{part:02d}".rstrip("0")


def npi_valid(npi: str) -> bool:
    """The NPI check digit: Luhn over the 80840 prefix and the first nine digits (CMS NPI standard)."""
    if not re.fullmatch(r"\d{10}", npi):
        return False
    total = 0
    for i, ch in enumerate(reversed("80840" + npi[:9])):
        digit = int(ch) * (2 if i % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return (10 - total % 10) % 10 == int(npi[9])
