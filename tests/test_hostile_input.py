"""Hostile input (issue 10): any value at any position of a valid Bundle is answered clearly.

The pipeline and the command line never crash: each mutated Bundle either converts (exit 0 or 1)
or is refused (exit 2) with an OperationOutcome whose every error has a code, a message and its
FHIRPath ``expression``; the CLI then also names the problems on stderr.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from adapter import cli
from adapter.pipeline import run
from adapter.rules.catalog import Rules
from tests import mutations
from tests.conftest import NOW
from tests.mutations import SEEDS, assert_clear_outcome, mutated

NOW_ARG = "2025-01-15T12:00:00Z"


def invalid_outcome(bundle: dict[str, Any]) -> dict[str, Any]:
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["OperationOutcome"]
    outcome: dict[str, Any] = bundle["entry"][0]["resource"]
    assert_clear_outcome(outcome)
    return outcome


def expressions(bundle: dict[str, Any]) -> list[str]:
    return [e for i in invalid_outcome(bundle)["issue"] for e in i.get("expression", [])]


def with_change(change: Any) -> bytes:
    document = copy.deepcopy(SEEDS["rich"])
    change(document)
    return json.dumps(document).encode()


def resource(document: dict[str, Any], resource_type: str) -> dict[str, Any]:
    return next(e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == resource_type)


def entry_index(document: dict[str, Any], resource_type: str) -> int:
    return next(i for i, e in enumerate(document["entry"]) if e["resource"]["resourceType"] == resource_type)


def ytd_value(document: dict[str, Any]) -> None:
    resource(document, "Coverage")["extension"][0]["extension"][0]["valueMoney"]["value"] = 1e308


# The crashes of the issue, each at the path it must name.
REPORTED = [
    ("performed-period-null", lambda d: resource(d, "Procedure").update(performedPeriod=None), "performedPeriod"),
    ("bundle-type-empty-array", lambda d: d.update(type=[]), "Bundle.type"),
    ("bundle-type-list", lambda d: d.update(type=["collection"]), "Bundle.type"),
    ("empty-resource", lambda d: d["entry"][0].update(resource={}), "Bundle.entry[0].resource"),
    ("resource-without-type", lambda d: d["entry"][0].update(resource={"id": "x"}), "Bundle.entry[0].resource"),
    (
        "clinical-status-code-list",
        lambda d: resource(d, "Condition")["clinicalStatus"]["coding"][0].update(code=[]),
        "clinicalStatus.coding[0].code",
    ),
    (
        "clinical-status-code-number",
        lambda d: resource(d, "Condition")["clinicalStatus"]["coding"][0].update(code=[1]),
        "clinicalStatus.coding[0].code",
    ),
    ("year-to-date-1e308", ytd_value, "valueMoney.value"),
]


@pytest.mark.parametrize(("change", "where"), [c[1:] for c in REPORTED], ids=[c[0] for c in REPORTED])
def test_each_reported_crash_is_an_input_error_at_its_path(rules: Rules, change: Any, where: str) -> None:
    result = run(with_change(change), rules=rules, now=NOW)
    assert result.exit_code == 2
    assert any(e.endswith(where) for e in expressions(result.bundle)), expressions(result.bundle)


def test_null_is_refused_where_fhir_forbids_it_and_kept_where_it_aligns_extensions(rules: Rules) -> None:
    def aligned_null(document: dict[str, Any]) -> None:  # FHIR JSON: null keeps a primitive array aligned
        patient = resource(document, "Patient")
        patient["name"][0]["given"] = ["Pat", None]
        patient["name"][0]["_given"] = [None, {"extension": [{"url": "urn:example:x", "valueString": "y"}]}]

    assert run(with_change(aligned_null), rules=rules, now=NOW).exit_code == 0

    def lone_null(document: dict[str, Any]) -> None:
        resource(document, "Patient")["name"][0]["given"] = ["Pat", None]

    result = run(with_change(lone_null), rules=rules, now=NOW)
    patient = entry_index(SEEDS["rich"], "Patient")
    assert expressions(result.bundle) == [f"Bundle.entry[{patient}].resource.name[0].given[1]"]


def cli_convert(payload: bytes) -> tuple[int, bytes, str]:
    """``theraclaim convert FILE`` in this process: (exit status, stdout bytes, stderr text)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bundle.json"
        path.write_bytes(payload)
        out, err = io.BytesIO(), io.StringIO()
        stdout = io.TextIOWrapper(out, encoding="utf-8")
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(err):
            status = cli.main(["convert", str(path), "--now", NOW_ARG])
            stdout.flush()
        return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("change", [c[1] for c in REPORTED], ids=[c[0] for c in REPORTED])
def test_the_cli_names_each_reported_problem_on_stderr(change: Any) -> None:
    status, stdout, stderr = cli_convert(with_change(change))
    assert status == 2
    outcome = invalid_outcome(json.loads(stdout))
    first = outcome["issue"][0]
    assert f"{first['details']['coding'][0]['code']} at {first['expression'][0]}" in stderr
    assert "Traceback" not in stderr


def assert_converts_or_refuses(result: Any) -> None:
    assert result.exit_code in (0, 1, 2)
    if result.invalid:
        invalid_outcome(result.bundle)
    else:
        assert any(e["resource"]["resourceType"] == "Claim" for e in result.bundle["entry"]) or result.exit_code == 1


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_element_replaced_with_every_fixed_hostile_value(rules: Rules, name: str) -> None:
    """Exhaustive: each element of the seed, in turn, becomes each of mutations.FIXED (~6,000 runs)."""
    for path in mutations.PATHS[name]:
        for value in mutations.FIXED:
            try:
                assert_converts_or_refuses(run(mutations.replaced(name, path, value), rules=rules, now=NOW))
            except Exception as failure:  # name the mutation that broke it
                raise AssertionError(f"{name}: {path} = {repr(value)[:60]}") from failure


# Each example costs about a millisecond through the pipeline; CI runs them derandomized.
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_any_value_anywhere_converts_or_is_refused_clearly(rules: Rules, case: tuple[str, Any, bytes]) -> None:
    _, _, payload = case
    assert_converts_or_refuses(run(payload, rules=rules, now=NOW))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_any_value_anywhere_through_the_cli(case: tuple[str, Any, bytes]) -> None:
    _, _, payload = case
    status, stdout, stderr = cli_convert(payload)
    assert status in (0, 1, 2), stderr
    assert "Traceback" not in stderr
    bundle = json.loads(stdout)
    if status == 2:
        outcome = invalid_outcome(bundle)
        assert f"invalid input: {len(outcome['issue'])} problem(s)" in stderr
        assert outcome["issue"][0]["details"]["coding"][0]["code"] in stderr


def test_every_seed_converts(rules: Rules) -> None:
    for name, seed in SEEDS.items():
        assert run(json.dumps(seed).encode(), rules=rules, now=NOW).exit_code == 0, name
    assert len(mutations.PATHS["rich"]) > 150  # the mutations reach deep into every resource
