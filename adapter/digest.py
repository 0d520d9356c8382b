"""One content hash for the whole project: SHA-256 of canonical JSON (sorted keys, compact); and the
name-based UUIDs the output's ids are."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson


def canonical_digest(value: Any) -> str:
    """Equal JSON content gives an equal digest, whatever its key order (orjson.JSONEncodeError if not JSON)."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


# RFC 4122 variant 10: the high two bits of the clock_seq_hi byte; its first hex digit d becomes 8 + d % 4
_VARIANT = {digit: "89ab"[int(digit, 16) % 4] for digit in "0123456789abcdef"}


def name_uuid(namespace: bytes, name: str) -> str:
    """``str(uuid.uuid5(UUID(bytes=namespace), name))`` without making UUID objects (uuid5 builds two,
    and each checks and shifts a 128-bit int: they cost more than the hash, for a few ids per Claim).
    RFC 4122 section 4.3: the first 16 bytes of SHA-1(namespace + name), version 5, variant 10, set on
    the hex digits (the version is the 13th digit, the variant bits the top of the 17th)."""
    text = hashlib.sha1(namespace + name.encode()).hexdigest()
    return f"{text[:8]}-{text[8:12]}-5{text[13:16]}-{_VARIANT[text[16]]}{text[17:20]}-{text[20:32]}"
