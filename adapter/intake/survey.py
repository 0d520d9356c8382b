"""One pass over a decoded Bundle that says which exact per-resource walks can find nothing.

The shape rules (intake/shape.py) and the ``urn:`` reference rule (references.unresolved_urns)
walk every resource building a FHIRPath for every element, which costs more than all the
reading that follows for an ordinary visit.  Both can only report something when the document
holds a ``null``, an empty object or array, or a ``urn:`` reference that names no entry; this
walk finds that out without building paths, so the path-building walks run only when they can
report a problem (and then report it exactly as before).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

URN_PREFIXES = ("urn:uuid:", "urn:oid:")


@dataclass(frozen=True, slots=True)
class Survey:
    suspect_shape: bool  # some value is null, {} or []: the shape walk may report a problem
    urn_references: frozenset[str]  # every urn: value of a ``reference`` element, anywhere


def survey(document: dict[str, Any]) -> Survey:
    """Iterative (no recursion on hostile input); visits each container once.

    A superset of what the exact walks look at (they skip the entries' own elements and stop at
    subclasses of dict the way ``isinstance`` does), so a clean survey means they find nothing.
    """
    suspect = False
    urns: set[str] = set()
    stack: list[Any] = [document]
    pop, push = stack.pop, stack.append
    while stack:
        node = pop()
        if not node:
            suspect = True
        if isinstance(node, dict):
            target = node.get("reference")
            if isinstance(target, str) and target.startswith(URN_PREFIXES):
                urns.add(target)
            node = node.values()
        for value in node:
            if isinstance(value, dict | list):
                push(value)
            elif value is None:
                suspect = True
    return Survey(suspect, frozenset(urns))
