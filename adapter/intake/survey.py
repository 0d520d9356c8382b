"""One pass over a decoded document: its depth, and which exact per-resource walks can find nothing.

The shape rules (intake/shape.py) and the ``urn:`` reference rule (references.unresolved_urns)
walk every resource building a FHIRPath for every element, which costs more than all the
reading that follows for an ordinary visit.  Both can only report something when the document
holds a ``null``, an empty object or array, or a ``urn:`` reference that names no entry; this
walk finds that out without building paths, so the path-building walks run only when they can
report a problem (and then report it exactly as before).  The same pass measures the depth the
wire limits (intake/wire.py) refuse beyond.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

URN_PREFIXES = ("urn:uuid:", "urn:oid:")
CONTAINERS = (dict, list)  # a tuple: ``dict | list`` would make a union object per element


@dataclass(frozen=True, slots=True)
class Survey:
    too_deep: bool  # containers nested deeper than the limit (the rest is then not surveyed)
    suspect_shape: bool  # some value is null, {} or []: the shape walk may report a problem
    urn_references: frozenset[str]  # every urn: value of a ``reference`` element, anywhere
    plain: bool = False  # only dict, list, str, int, float, bool and None, no subclasses (intake/onecall.py)


def survey(document: dict[str, Any], max_depth: int) -> Survey:
    """Level by level (no recursion on hostile input); visits each container once.

    A superset of what the exact walks look at (they skip the entries' own elements and stop at
    subclasses of dict the way ``isinstance`` does), so a clean survey means they find nothing.
    The document is too deep when containers sit ``max_depth`` levels below it.
    """
    suspect = False
    plain = type(document) is dict
    urns: set[str] = set()
    level: list[Any] = [document]
    for _ in range(max_depth):
        below: list[Any] = []
        push = below.append
        for node in level:
            if not node:
                suspect = True
            if isinstance(node, dict):
                target = node.get("reference")
                if isinstance(target, str) and target.startswith(URN_PREFIXES):
                    urns.add(target)
                node = node.values()
            for value in node:
                kind = type(value)  # a specialized call (``.__class__`` is a generic lookup)
                if kind is str:  # most values
                    continue
                if kind is dict or kind is list:
                    push(value)
                elif value is None:
                    suspect = True
                elif kind is not int and kind is not float and kind is not bool:
                    plain = False
                    if isinstance(value, CONTAINERS):
                        push(value)
        if not below:
            return Survey(False, suspect, frozenset(urns), plain)
        level = below
    return Survey(True, suspect, frozenset(urns))
