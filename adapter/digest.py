"""One content hash for the whole project: SHA-256 of canonical JSON (sorted keys, compact)."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson


def canonical_digest(value: Any) -> str:
    """Equal JSON content gives an equal digest, whatever its key order (orjson.JSONEncodeError if not JSON)."""
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()
