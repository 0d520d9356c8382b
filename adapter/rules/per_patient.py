"""Work done once per patient, not once per Encounter.

Intake hands every Encounter of a patient the same tuples (conditions, medications), so a value
derived from one of them can be kept for the next Encounter: N Encounters of one patient with N
Conditions then cost N, not N².  Only the last value per kind and thread is kept, compared by
identity with what it was computed from, so memory stays bounded and nothing is ever stale.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class _Last(threading.local):
    def __init__(self) -> None:
        self.held: dict[str, tuple[tuple[object, ...], Any]] = {}


_LAST = _Last()


def once_per_patient(kind: str, sources: tuple[object, ...], compute: Callable[[], T]) -> T:
    """``compute()``, or its value from the last call of ``kind`` made with the very same sources."""
    held = _LAST.held.get(kind)
    if held is not None and len(held[0]) == len(sources) and all(map(operator.is_, held[0], sources)):
        return held[1]  # type: ignore[no-any-return]
    value = compute()
    _LAST.held[kind] = (sources, value)
    return value
