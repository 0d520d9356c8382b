"""Numbers read from headers, query parameters and paths: ASCII digits only, with a bounded length.

``str.isdigit`` and ``re``'s ``\\d`` accept every Unicode digit ("٣", "²"), and ``int()`` refuses
strings over 4,300 digits with an exception; a number from the wire is therefore read here only:
1 to ``MAX_DIGITS`` ASCII digits (anything longer is out of every range the service uses).
"""

from __future__ import annotations

import re

MAX_DIGITS = 18  # 10^18 - 1 fits a signed 64-bit database integer
_DIGITS = re.compile(rf"[0-9]{{1,{MAX_DIGITS}}}", re.ASCII)


def wire_int(value: str) -> int | None:
    """The non-negative integer ``value`` spells in ASCII digits, or None when it spells none in range."""
    return int(value) if _DIGITS.fullmatch(value) else None
