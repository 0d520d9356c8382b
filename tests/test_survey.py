"""The survey (intake/survey.py) lets the intake skip the exact walks only when they find nothing.

Every element of both hostile-input seeds is replaced with each fixed hostile value (and with
urn: references that name no entry): whenever the shape walk or the urn walk reports a problem
for a resource, the survey of the whole document must have said it could.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from adapter.intake.references import Entry, unresolved_urns
from adapter.intake.shape import shape_problems
from adapter.intake.survey import survey
from adapter.intake.wire import Limits
from tests.mutations import FIXED, PATHS, SEEDS, replaced

DANGLING = ({"reference": "urn:uuid:0b7d4c4e-0000-4000-8000-000000000000"}, "urn:oid:1.2.3")


def exact_findings(document: dict[str, Any]) -> tuple[bool, bool, set[str]]:
    """(the shape walk reports something, the urn walk reports something, the fullUrls it resolves
    against) over every resource."""
    raw = document.get("entry")
    resources = [(i, e) for i, e in enumerate(raw if isinstance(raw, list) else []) if isinstance(e, dict)]
    shells = [({k: v for k, v in document.items() if k != "entry"}, "Bundle")]
    shells += [(e["resource"], f"entry[{i}]") for i, e in resources if isinstance(e.get("resource"), dict)]
    shape = any(shape_problems(resource, path) for resource, path in shells)
    entries = [
        Entry(i, e.get("fullUrl") if isinstance(e.get("fullUrl"), str) else None, e["resource"])
        for i, e in resources
        if isinstance(e.get("resource"), dict) and isinstance(e["resource"].get("resourceType"), str)
    ]
    full_urls = {e.full_url for e in entries if e.full_url}
    return shape, any(unresolved_urns(entry, full_urls) for entry in entries), full_urls


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_a_clean_survey_means_the_exact_walks_find_nothing(name: str) -> None:
    flagged = 0
    for path in PATHS[name]:
        for value in (*FIXED, *DANGLING):
            document = orjson.loads(replaced(name, path, value))
            shape, urns, full_urls = exact_findings(document)
            found = survey(document, Limits().max_depth)
            assert found.suspect_shape or not shape, (path, value)
            assert not urns or not found.urn_references <= full_urls, (path, value)
            flagged += shape or urns
    assert flagged > len(PATHS[name])  # the sweep did reach both walks' problems


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_the_seeds_survey_clean(name: str) -> None:
    """The ordinary visits skip both walks (else the survey would only add work)."""
    document = copy.deepcopy(SEEDS[name])
    found = survey(document, Limits().max_depth)
    full_urls = {e["fullUrl"] for e in document["entry"]}
    assert not found.suspect_shape
    assert found.urn_references <= full_urls
    assert exact_findings(document)[:2] == (False, False)
