"""The FHIR JSON shape rules every resource must follow, whatever its type.

FHIR R4 JSON (http://hl7.org/fhir/R4/json.html, "JSON representation of primitive elements" and
"Empty elements"): elements never have empty content, so an object is never ``{}`` and an array
is never ``[]``; ``null`` is allowed only as an item of an array of primitives whose extensions
(the ``_name`` array beside it) keep the positions aligned.  A reader that met such a value would
have to guess (is ``"performedPeriod": null`` a period or its absence?), so each is an input
problem at its own path.  The walk is iterative and stops after ``MAX_REPORTED`` problems.
"""

from __future__ import annotations

from typing import Any

from adapter.errors import Problem

MAX_REPORTED = 50


def shape_problems(resource: dict[str, Any], path: str) -> list[Problem]:
    """Problems of empty objects, empty arrays and misplaced nulls in one resource (or a Bundle shell)."""
    problems: list[Problem] = []
    stack: list[tuple[str, Any, bool]] = [(path, resource, False)]
    while stack and len(problems) < MAX_REPORTED:
        where, node, null_allowed = stack.pop()
        if node is None:
            if not null_allowed:
                problems.append(
                    Problem("fhir-invalid", "null is not a FHIR value; leave the element out", where, "structure")
                )
        elif type(node) is dict:
            if not node:
                problems.append(Problem("fhir-invalid", "an object is never empty in FHIR JSON", where, "structure"))
            for key, value in reversed(list(node.items())):
                child = f"{where}.{key}"
                if type(value) is list:
                    aligned = (key[1:] if key.startswith("_") else f"_{key}") in node
                    stack += [(f"{child}[{i}]", item, aligned) for i, item in reversed(list(enumerate(value)))]
                    if not value:
                        problems.append(
                            Problem("fhir-invalid", "an array is never empty in FHIR JSON", child, "structure")
                        )
                else:
                    stack.append((child, value, False))
    return problems[:MAX_REPORTED]
