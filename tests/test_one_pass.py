"""The one-call check of a whole Bundle (onecall.document_is_clean) accepts only what the exact checks accept.

At the ``fields`` level the intake first validates the whole document in one call and reads its
entries unchecked when that call (and the duplicate-fullUrl and binding rules) find nothing; any
error sends the Bundle through the per-entry checks, which report what and where.  That is sound
only if a clean verdict implies the per-entry checks find no problem: this holds the two verdicts
side by side over every element of both hostile-input seeds replaced with each fixed hostile value
or deleted, targeted changes of the checked elements, and random mutations.
"""

from __future__ import annotations

import copy
import types
from collections import OrderedDict
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.intake import slim
from adapter.intake.fhir import _checked_entries, _clean_entries
from adapter.intake.onecall import REAL_DATE_TIME
from adapter.intake.survey import survey
from adapter.intake.wire import Limits
from bench.bundles import synthea, visit
from tests.mutations import FIXED, PATHS, SEEDS, Path, mutated, replaced

SYNTHEA = dict(synthea())


class Text(str):
    pass


def verdicts(document: Any) -> tuple[bool, bool] | None:
    """(the one-call verdict, the per-entry verdict) of a Bundle the fast path may see: None for
    the documents _index refuses before either runs, or whose survey sends them the exact way."""
    if not isinstance(document, dict) or document.get("resourceType") != "Bundle":
        return None
    raw = document.get("entry", [])
    if not isinstance(raw, list) or survey(document, Limits().max_depth).suspect_shape:
        return None
    fast = _clean_entries(document, raw)
    entries, problems = _checked_entries(document, raw, "fields", False)
    if fast is not None and not problems:
        assert [(e.index, e.full_url, e.resource) for e in fast] == [(e.index, e.full_url, e.resource) for e in entries]
    return fast is not None, not problems


def assert_sound(document: Any, label: Any) -> bool:
    """The one-call check never accepts what the exact checks refuse; returns whether it refused."""
    found = verdicts(document)
    if found is None:
        return False
    fast, slow = found
    assert slow or not fast, label
    return not fast


def deleted(name: str, path: Path) -> dict[str, Any]:
    document = copy.deepcopy(SEEDS[name])
    node = document
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return document


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_a_clean_verdict_means_the_exact_checks_find_nothing(name: str) -> None:
    refused = 0
    for path in PATHS[name]:
        for value in FIXED:
            refused += assert_sound(orjson.loads(replaced(name, path, value)), (path, value))
        refused += assert_sound(deleted(name, path), (path, "deleted"))
    assert refused > len(PATHS[name])  # the sweep did reach the checks' refusals


def _retyped(resource_type: Any) -> dict[str, Any]:
    document = copy.deepcopy(SEEDS["rich"])
    document["entry"][-1]["resource"]["resourceType"] = resource_type
    return document


def _edited(change: Any) -> dict[str, Any]:
    document = copy.deepcopy(SEEDS["rich"])
    change(document)
    return document


def _resource(document: dict[str, Any], resource_type: str) -> dict[str, Any]:
    return next(e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == resource_type)


TARGETED = {
    "unknown type": _retyped("Devise"),
    "another R4 type": _retyped("Basic"),
    "a nested Bundle": _retyped("Bundle"),
    "numeric type": _retyped(7),
    "list type": _retyped(["Device"]),
    "bad status": _edited(lambda d: _resource(d, "Procedure").update(status="done")),
    "bad clinical status": _edited(
        lambda d: _resource(d, "Condition").update(
            clinicalStatus={
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "gone"}]
            }
        )
    ),
    "duplicate fullUrl": _edited(lambda d: d["entry"][1].update(fullUrl=d["entry"][0]["fullUrl"])),
    "bundle type": _edited(lambda d: d.update(type="document")),
    "no bundle type": _edited(lambda d: d.pop("type")),
    "bundle id": _edited(lambda d: d.update(id="not an id")),
    "bad date": _edited(lambda d: _resource(d, "Procedure")["performedPeriod"].update(start="2025-02-29T09:00:00Z")),
    "not a number": _edited(lambda d: _resource(d, "Observation")["valueQuantity"].update(value=float("nan"))),
    "infinite": _edited(lambda d: _resource(d, "Observation")["valueQuantity"].update(value=float("inf"))),
    "bool order": _edited(lambda d: _resource(d, "Coverage").update(order=True)),
    "float order": _edited(lambda d: _resource(d, "Coverage").update(order=1.0)),
    "integer quantity": _edited(lambda d: _resource(d, "Observation")["valueQuantity"].update(value=3)),
    "no payor": _edited(lambda d: _resource(d, "Coverage").pop("payor")),
    "bad id": _edited(lambda d: _resource(d, "Procedure").update(id="p_1")),
    "id with a newline": _edited(lambda d: _resource(d, "Procedure").update(id="p1\n")),
    "deep extension": _edited(
        lambda d: _resource(d, "Procedure").update(
            extension=[{"url": "urn:a", "extension": [{"url": "urn:b", "extension": [{"valueCode": "x"}]}]}]
        )
    ),
    "entry without resource": _edited(lambda d: d["entry"].append({"request": {"method": "GET", "url": "Patient"}})),
    "entry not an object": _edited(lambda d: d["entry"].append("Patient/pat-1")),
}


@pytest.mark.parametrize("label", sorted(TARGETED))
def test_targeted_changes_get_the_same_verdict(label: str) -> None:
    found = verdicts(TARGETED[label])
    assert found is not None
    fast, slow = found
    assert fast == slow, label


# Values the per-entry checks accept and the one-call check leaves to them (the same result, found slower).
STRICTER = {
    "leap second": _edited(lambda d: _resource(d, "Procedure")["performedPeriod"].update(start="2024-12-31T23:59:60Z")),
    "leap day": _edited(lambda d: _resource(d, "Procedure")["performedPeriod"].update(start="2024-02-29T09:00:00Z")),
    "numeric text": _edited(lambda d: _resource(d, "Observation")["valueQuantity"].update(value="2.5")),
    "year 0": _edited(lambda d: _resource(d, "Condition").update(onsetDateTime="0000")),
}


@pytest.mark.parametrize("label", sorted(STRICTER))
def test_what_only_the_exact_checks_accept_is_left_to_them(label: str) -> None:
    assert verdicts(STRICTER[label]) == (False, True)


@given(st.from_regex(REAL_DATE_TIME))
def test_every_date_time_of_the_pattern_is_one_slim_accepts(value: str) -> None:
    assert slim._date_time(value) == value


@pytest.mark.parametrize(
    "document",
    [
        {"resourceType": "Bundle", "type": "collection", "entry": [types.MappingProxyType({"resource": {}})]},
        {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": OrderedDict(resourceType="Basic")}]},
        {"resourceType": "Bundle", "type": "collection", "entry": [{"fullUrl": Text("urn:uuid:1")}]},
        {"resourceType": "Bundle", "type": "collection", "entry": ({"fullUrl": "urn:uuid:1"},)},
        OrderedDict(resourceType="Bundle", type="collection"),
    ],
)
def test_documents_of_other_python_types_take_the_exact_checks(document: dict[str, Any]) -> None:
    """msgspec reads a Mapping as an object and a set as an array where the exact checks may not."""
    assert not survey(document, Limits().max_depth).plain


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_decoded_documents_are_plain(name: str) -> None:
    assert survey(orjson.loads(orjson.dumps(SEEDS[name])), Limits().max_depth).plain


@given(mutated())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_random_mutations_are_never_accepted_by_the_one_call_alone(case: tuple[str, Path, bytes]) -> None:
    name, path, payload = case
    assert_sound(orjson.loads(payload), (name, path))


@pytest.mark.parametrize(
    "document",
    [*SEEDS.values(), visit(1), visit(3), visit(8), *SYNTHEA.values()],
    ids=[*SEEDS, "visit-1", "visit-3", "visit-8", *SYNTHEA],
)
def test_valid_bundles_take_the_one_call(document: dict[str, Any]) -> None:
    """The ordinary visits and the Synthea bundles never need the per-entry checks."""
    assert verdicts(document) == (True, True)
