"""One content hash for the whole project: SHA-256 of canonical JSON (sorted keys, compact); and the
name-based UUIDs the output's ids are."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson


def canonical_digest(value: Any) -> str:
    """Equal JSON content gives an equal digest, whatever its key order (orjson.JSONEncodeError if not JSON)."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()


def name_uuid(namespace: bytes, name: str) -> str:
    """``str(uuid.uuid5(UUID(bytes=namespace), name))`` without making UUID objects (uuid5 builds two,
    and each checks and shifts a 128-bit int: they cost more than the hash, for a few ids per Claim).
    RFC 4122 section 4.3: the first 16 bytes of SHA-1(namespace + name), version 5, variant 10."""
    value = bytearray(hashlib.sha1(namespace + name.encode()).digest()[:16])
    value[6] = (value[6] & 0x0F) | 0x50
    value[8] = (value[8] & 0x3F) | 0x80
    text = value.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
