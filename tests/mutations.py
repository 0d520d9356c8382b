"""Hostile mutations of valid visit Bundles, for the property tests of every door (issue 10).

A mutation replaces one element (any object member or array item, at any depth) of a valid seed
Bundle with a hostile value: null, [], {}, "", huge and tiny numbers, deep nesting, or a value of
another JSON type.  The seeds exercise every resource type the rules read.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

from tests import bundle_builder as bb

Path = tuple[str | int, ...]
DOCUMENT_LEVEL = frozenset({"too-deep", "not-json", "too-large"})  # problems of the whole text, not an element


def rich_visit() -> dict[str, Any]:
    """Two timed procedures (modifiers, body site, reason), year-to-date amounts, a medication, an
    observation, a device and a plan of care: every reader of the rules sees something."""
    document = bb.visit(
        bb.with_modifiers(bb.procedure("97124", 24, proc_id="p1"), "GP"),
        bb.procedure(
            "97140",
            23,
            start="2025-01-14T09:24:00-05:00",
            proc_id="p2",
            body_site=("37822005", "Lower back structure"),
            reasons=("Condition/dx-1",),
        ),
    )
    bb.with_year_to_date(bb.find(document, "Coverage", "cov-1"), pt_slp=100.0, ot=5.0)
    extra = [
        {
            "resourceType": "MedicationStatement",
            "id": "med-1",
            "status": "active",
            "subject": {"reference": "Patient/pat-1"},
            "medicationCodeableConcept": {
                "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "855332"}]
            },
            "effectiveDateTime": "2025-01-01",
        },
        {
            "resourceType": "Observation",
            "id": "obs-1",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "6301-6"}]},
            "subject": {"reference": "Patient/pat-1"},
            "effectiveDateTime": "2025-01-13",
            "valueQuantity": {"value": 2.5, "unit": "{INR}", "system": "http://unitsofmeasure.org", "code": "{INR}"},
        },
        bb.device("dev-1", "percussive", "Percussive massager"),
    ]
    document["entry"] += [
        {"fullUrl": f"http://ehr.example.org/fhir/{r['resourceType']}/{r['id']}", "resource": r} for r in extra
    ]
    return document


def urn_visit() -> dict[str, Any]:
    """The same kind of visit posted the way an EHR creates data: a transaction of urn:uuid entries."""
    resources = [e["resource"] for e in bb.visit(bb.procedure("97124", 24), bb.procedure("97140", 23))["entry"]]
    return bb.urn_transaction(resources)


SEEDS = {"rich": rich_visit(), "urn": urn_visit()}


def element_paths(node: Any, prefix: Path = ()) -> list[Path]:
    """The path of every object member and array item below ``node``."""
    found: list[Path] = []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        found.append((*prefix, key))
        found += element_paths(child, (*prefix, key))
    return found


PATHS = {name: element_paths(seed) for name, seed in SEEDS.items()}


def nested(depth: int) -> Any:
    value: Any = "deep"
    for level in range(depth):
        value = {"a": value} if level % 2 else [value]
    return value


# Every element of every seed is replaced with each of these (test_hostile_input.py, exhaustively).
FIXED: tuple[Any, ...] = (
    *(None, [], {}, "", " ", True, False, 0, -1, [None], [{}], [[]], {"": None}, "\u0000", "٣"),
    *(1e308, -1e308, 5e-324, 10**18, -(10**18), 10**40, 1e-300),
    *("0001-01-01", "9999-12-31T23:59:59+14:00", "2025-02-30", "x" * 10_000),
    nested(70),
)
HOSTILE = st.one_of(
    st.sampled_from(FIXED),
    st.integers(min_value=1, max_value=80).map(nested),
    st.text(max_size=20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def replaced(name: str, path: Path, value: Any) -> bytes:
    """The seed ``name`` with the element at ``path`` replaced by ``value``, as JSON bytes."""
    document = copy.deepcopy(SEEDS[name])
    node = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return json.dumps(document).encode()


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, Path, bytes]:
    """(seed name, the path replaced, the mutated Bundle as JSON bytes)."""
    name = draw(st.sampled_from(sorted(SEEDS)))
    path = draw(st.sampled_from(PATHS[name]))
    return name, path, replaced(name, path, draw(HOSTILE))


def assert_clear_outcome(outcome: dict[str, Any]) -> None:
    """An OperationOutcome whose every error names its code, says what is wrong and where."""
    assert outcome["resourceType"] == "OperationOutcome", outcome
    errors = [i for i in outcome["issue"] if i["severity"] in ("error", "fatal")]
    assert errors, outcome
    for issue in errors:
        code = issue["details"]["coding"][0]["code"]
        assert issue["details"]["text"], issue
        assert issue.get("expression") or code in DOCUMENT_LEVEL, issue
