"""Work and output are linear in the input (issue 10): pathological shapes stay bounded."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest

from adapter.pipeline import run
from adapter.rules import contraindications
from adapter.rules.catalog import Rules
from adapter.rules.lines import MAX_NAMED_OVERLAPS
from bench.worst import START, many_encounters, overlapping
from tests.conftest import NOW


def overlap_findings(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        issue
        for entry in bundle["entry"]
        if entry["resource"]["resourceType"] == "OperationOutcome"
        for issue in entry["resource"]["issue"]
        if issue["details"]["coding"][0]["code"] == "overlapping-timed-services"
    ]


def test_800_overlapping_procedures_make_one_finding_and_a_small_output(rules: Rules) -> None:
    payload = orjson.dumps(overlapping(800))
    result = run(payload, rules=rules, now=NOW)
    [finding] = overlap_findings(result.bundle)
    assert len(finding["expression"]) == MAX_NAMED_OVERLAPS
    assert (
        "800 timed procedures overlap in time (319600 overlapping pairs; the first 10 are named)"
        in (finding["details"]["text"])
    )
    assert [o.status for o in result.outcomes] == ["draft"]
    assert len(orjson.dumps(result.bundle)) < len(payload)  # was 255 MB for a 479 KB input


@pytest.mark.parametrize(
    ("starts", "pairs", "named"),
    [
        ((0, 20, 40), 2, [0, 1, 2]),  # 30-minute procedures 20 minutes apart: (0,20), (20,40); 0 and 40 do not
        ((0, 40, 45), 1, [1, 2]),
        ((0, 30, 60), 0, []),  # back to back is not an overlap
    ],
)
def test_the_overlap_finding_counts_pairs_and_names_the_procedures(
    rules: Rules, starts: tuple[int, ...], pairs: int, named: list[int]
) -> None:
    document = overlapping(len(starts), step_seconds=0)
    procedures = [e for e in document["entry"] if e["resource"]["resourceType"] == "Procedure"]
    for entry, minute in zip(procedures, starts, strict=True):
        begin = START + timedelta(minutes=minute)
        entry["resource"]["performedPeriod"] = {
            "start": begin.isoformat(),
            "end": (begin + timedelta(minutes=30)).isoformat(),
        }
    found = overlap_findings(run(orjson.dumps(document), rules=rules, now=NOW).bundle)
    if not pairs:
        assert found == []
        return
    [finding] = found
    first = document["entry"].index(procedures[0])
    assert finding["expression"] == [f"Bundle.entry[{first + i}].resource.performedPeriod" for i in named]
    text = finding["details"]["text"]
    expected = (
        "two timed procedures overlap"
        if pairs == 1
        else f"3 timed procedures overlap in time ({pairs} overlapping pairs)"
    )
    assert text.startswith(expected), text


def test_the_conditions_of_a_patient_are_matched_once_for_all_its_encounters(
    rules: Rules, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    original = contraindications._condition_matches

    def counted(classes: Any, condition: Any) -> Any:
        calls.append(condition.ref)
        return original(classes, condition)

    monkeypatch.setattr(contraindications, "_condition_matches", counted)
    result = run(orjson.dumps(many_encounters(60)), rules=rules, now=NOW)
    assert len(result.outcomes) == 60 and all(o.status for o in result.outcomes)
    assert sorted(calls) == sorted(["Condition/dx-1", *(f"Condition/c{n}" for n in range(60))])  # 61, not 60 x 61
