"""Bad input, kind by kind: exit status 2, a Bundle holding only an OperationOutcome, and for
every problem its stable finding code and exact FHIRPath location.  Never a traceback.

The valid visit built by ``tests.bundle_builder.visit`` has its entries in this order:
0 Patient, 1 Organization, 2 Practitioner, 3 Coverage, 4 Condition, 5 Encounter, 6.. Procedures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adapter import cli, process
from adapter.errors import FINDING_SYSTEM
from adapter.intake.wire import Limits
from adapter.pipeline import Result, run
from adapter.rules.catalog import Rules
from tests import bundle_builder as bb
from tests.conftest import NOW, validate_fhir, write_json

THERACLAIM = Path(sys.executable).parent / "theraclaim"
NOW_ARG = "2025-01-15T12:00:00Z"
DEEP = 10_000

Expected = list[tuple[str, str | None]]  # (finding code, FHIRPath expression or None)


# --- helpers --------------------------------------------------------------------------------


def outcome_issues(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """The issues of the only resource of an invalid-input Bundle, checking its shape on the way."""
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "collection"
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["OperationOutcome"]
    issues: list[dict[str, Any]] = bundle["entry"][0]["resource"]["issue"]
    assert issues, "an invalid input must say what is wrong"
    for issue in issues:
        assert issue["severity"] == "error"
        [coding] = issue["details"]["coding"]
        assert coding["system"] == FINDING_SYSTEM
        assert issue["details"]["text"]
    return issues


def found(bundle: dict[str, Any]) -> Expected:
    """(code, expression) of every issue, in the order reported."""
    result = []
    for issue in outcome_issues(bundle):
        expressions = issue.get("expression", [])
        assert len(expressions) <= 1
        result.append((issue["details"]["coding"][0]["code"], expressions[0] if expressions else None))
    return result


def encode(document: Any) -> bytes:
    return json.dumps(document).encode()


def visit(*procedures: dict[str, Any], **encounter_args: Any) -> dict[str, Any]:
    return bb.visit(*(procedures or (bb.procedure("97124", 24),)), **encounter_args)


def edit(change: Callable[[dict[str, Any]], object], *procedures: dict[str, Any]) -> Callable[[], bytes]:
    """A payload builder: the valid visit with one change applied."""

    def build() -> bytes:
        document = visit(*procedures)
        change(document)
        return encode(document)

    return build


def res(document: dict[str, Any], index: int) -> dict[str, Any]:
    resource: dict[str, Any] = document["entry"][index]["resource"]
    return resource


def swap_period(document: dict[str, Any]) -> None:
    period = res(document, 6)["performedPeriod"]
    period["start"], period["end"] = period["end"], period["start"]


def set_start(value: str) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        res(document, 6)["performedPeriod"]["start"] = value

    return change


def deep_lists() -> bytes:
    return b"[" * DEEP + b"]" * DEEP


def deep_objects() -> bytes:
    return b'{"a":' * DEEP + b"1" + b"}" * DEEP


def deep_inside_bundle() -> bytes:
    # 100 levels: under orjson's own limit of 1024, over the adapter's limit of 64.
    return b'{"resourceType": "Bundle", "type": "collection", "extension": ' + b"[" * 100 + b"]" * 100 + b"}"


def without_coverage() -> bytes:
    resources = [r for r in bb.base_resources() if r["resourceType"] != "Coverage"]
    return encode(bb.bundle(*resources, bb.encounter(), bb.procedure("97124", 24)))


def two_procedures_one_fullurl() -> bytes:
    document = visit(bb.procedure("97124", 24), bb.procedure("97140", 20, start="2025-01-14T09:30:00-05:00"))
    document["entry"][7]["fullUrl"] = document["entry"][6]["fullUrl"]
    return encode(document)


CASES: list[tuple[str, Callable[[], bytes | str], dict[str, Any], Expected]] = [
    ("not-json", lambda: b'{"resourceType": "Bundle",', {}, [("not-json", None)]),
    ("json-array", lambda: encode([visit()]), {}, [("not-a-resource", None)]),
    ("json-string", lambda: b'"Bundle"', {}, [("not-a-resource", None)]),
    ("empty-body", lambda: b"", {}, [("not-json", None)]),
    ("whitespace-body", lambda: " \n\t", {}, [("not-json", None)]),
    ("invalid-utf8", lambda: b'{"resourceType": "Bundle\xff"}', {}, [("not-json", None)]),
    ("patient-not-bundle", lambda: encode(bb.base_resources()[0]), {}, [("not-a-bundle", "Patient")]),
    ("no-resource-type", lambda: encode({"type": "collection"}), {}, [("not-a-bundle", "resourceType")]),
    (
        "document-bundle",
        lambda: encode(
            bb.bundle(*bb.base_resources(), bb.encounter(), bb.procedure("97124", 24), bundle_type="document")
        ),
        {},
        [("unsupported-bundle-type", "Bundle.type")],
    ),
    (
        "entry-not-array",
        lambda: encode({"resourceType": "Bundle", "type": "collection", "entry": {}}),
        {},
        [("fhir-invalid", "Bundle.entry")],
    ),
    (
        "no-encounter",
        lambda: encode(bb.bundle(*bb.base_resources(), bb.procedure("97124", 24))),
        {},
        [("no-encounter", "Bundle.entry")],
    ),
    (
        "timed-procedure-without-period",
        lambda: encode(visit(bb.procedure("97124", None))),
        {},
        [("missing-performed-period", "Bundle.entry[6].resource.performedPeriod")],
    ),
    (
        "period-end-before-start",
        edit(swap_period),
        {},
        [("period-end-before-start", "Bundle.entry[6].resource.performedPeriod.end")],
    ),
    (
        "unresolved-performer",
        lambda: encode(visit(bb.procedure("97124", 24, performer="Practitioner/missing"))),
        {},
        [("unresolved-reference", "Bundle.entry[6].resource.performer[0].actor.reference")],
    ),
    (
        "procedure-encounter-is-a-patient",
        lambda: encode(visit(bb.procedure("97124", 24, encounter="Patient/pat-1"))),
        {},
        [("wrong-reference-type", "Bundle.entry[6].resource.encounter.reference")],
    ),
    ("missing-coverage", without_coverage, {}, [("missing-coverage", "Bundle.entry[4].resource")]),
    (
        "only-a-cancelled-coverage",
        edit(lambda d: res(d, 3).update(status="cancelled")),
        {},
        [("missing-coverage", "Bundle.entry[5].resource")],
    ),
    (
        "encounter-subject-absent",
        edit(lambda d: res(d, 5).pop("subject")),
        {},
        [("missing-patient", "Bundle.entry[5].resource.subject")],
    ),
    (
        "encounter-subject-display-only",
        edit(lambda d: res(d, 5).update(subject={"display": "someone"})),
        {},
        [("missing-patient", "Bundle.entry[5].resource.subject")],
    ),
    (
        "encounter-subject-points-nowhere",
        edit(lambda d: res(d, 5).update(subject={"reference": "Patient/nowhere"})),
        {},
        [("unresolved-reference", "Bundle.entry[5].resource.subject.reference")],
    ),
    (
        "encounter-subject-is-a-practitioner",
        edit(lambda d: res(d, 5).update(subject={"reference": "Practitioner/pt-1"})),
        {},
        [("wrong-reference-type", "Bundle.entry[5].resource.subject.reference")],
    ),
    (
        "procedure-status-bogus",
        lambda: encode(visit(bb.procedure("97124", 24, status="bogus"))),
        {},
        [("invalid-code", "Bundle.entry[6].resource.status")],
    ),
    (
        "encounter-status-bogus",
        lambda: encode(visit(status="bogus")),
        {},
        [("invalid-code", "Bundle.entry[5].resource.status")],
    ),
    (
        "condition-clinical-status-bogus",
        edit(lambda d: res(d, 4)["clinicalStatus"]["coding"][0].update(code="bogus")),
        {},
        [("invalid-code", "Bundle.entry[4].resource.clinicalStatus.coding[0].code")],
    ),
    (
        "coverage-status-bogus",
        edit(lambda d: res(d, 3).update(status="bogus")),
        {},
        [("invalid-code", "Bundle.entry[3].resource.status")],
    ),
    (
        "date-february-30",
        edit(set_start("2025-02-30T10:00:00Z")),
        {},
        [("fhir-invalid", "Bundle.entry[6].resource.performedPeriod.start")],
    ),
    (
        "date-time-without-zone",
        edit(set_start("2025-01-14T09:00:00")),
        {},
        [("fhir-invalid", "Bundle.entry[6].resource.performedPeriod.start")],
    ),
    (
        "date-leap-second",  # FHIR's regex allows :60, Python's dates do not
        edit(set_start("2025-01-14T09:00:60-05:00")),
        {},
        [("invalid-date", "Bundle.entry[6].resource.performedPeriod.start")],
    ),
    ("duplicate-fullurl", two_procedures_one_fullurl, {}, [("duplicate-fullurl", "Bundle.entry[7].fullUrl")]),
    ("over-byte-limit", lambda: encode(visit()), {"limits": Limits(max_bytes=1024)}, [("too-large", None)]),
    ("deep-lists", deep_lists, {}, [("too-deep", None)]),
    ("deep-objects", deep_objects, {}, [("too-deep", None)]),
    # parsed, then over the adapter's limit: the path of the first element too deep (64 levels down)
    ("deep-inside-bundle", deep_inside_bundle, {}, [("too-deep", "Bundle.extension" + "[0]" * 63)]),
    (
        "over-entry-limit",
        lambda: encode(visit()),
        {"limits": Limits(max_entries=6)},
        [("too-many-entries", "Bundle.entry")],
    ),
    ("unknown-payer", lambda: encode(visit()), {"payer": "no-such-payer"}, [("unknown-payer", None)]),
]


# --- through the pipeline -------------------------------------------------------------------


def test_the_unchanged_visit_is_valid(rules: Rules) -> None:
    """The control: every case below differs from this Claim-producing visit by one change."""
    result = run(encode(visit()), rules=rules, now=NOW)
    assert not result.invalid and result.exit_code == 0
    assert [e["resource"]["resourceType"] for e in result.bundle["entry"]] == [
        "Claim",
        "Provenance",
        "OperationOutcome",
    ]
    # ... and it fits the limits the size cases tighten
    assert len(encode(visit())) > 1024
    assert len(visit()["entry"]) == 8


@pytest.mark.parametrize("validation", ["fields", "full"])
@pytest.mark.parametrize(("payload", "kwargs", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_through_the_pipeline(
    rules: Rules,
    capsys: pytest.CaptureFixture[str],
    payload: Callable[[], bytes | str],
    kwargs: dict[str, Any],
    expected: Expected,
    validation: str,
) -> None:
    """Both validation levels find the same problems at the same paths for the elements the rules read."""
    result = run(payload(), rules=rules, now=NOW, validation=validation, **kwargs)
    assert result.invalid
    assert result.exit_code == 2
    assert result.outcomes == ()
    assert found(result.bundle) == expected
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err


def test_messages_say_what_is_wrong(rules: Rules) -> None:
    result = run(encode(visit(bb.procedure("97124", 24, performer="Practitioner/missing"))), rules=rules, now=NOW)
    [issue] = outcome_issues(result.bundle)
    assert issue["code"] == "not-found"
    assert "Practitioner/missing" in issue["details"]["text"]
    result = run(encode(visit()), rules=rules, now=NOW, limits=Limits(max_bytes=1024))
    [issue] = outcome_issues(result.bundle)
    assert issue["code"] == "too-long"
    assert "the limit is 1024" in issue["details"]["text"]


def test_invalid_output_is_deterministic(rules: Rules) -> None:
    first = run(b"[]", rules=rules, now=NOW).bundle
    assert run(b"[]", rules=rules, now=NOW).bundle == first
    assert run(b"{}", rules=rules, now=NOW).bundle["id"] != first["id"]


# --- parsed dicts through the embedding API -------------------------------------------------


def nested_dict(depth: int) -> dict[str, Any]:
    document: dict[str, Any] = {"resourceType": "Bundle", "type": "collection"}
    node = document
    for _ in range(depth):
        node["extension"] = {}
        node = node["extension"]
    return document


def test_a_deeply_nested_dict_is_refused_without_recursion_error() -> None:
    result = process(nested_dict(DEEP), now=NOW)
    assert result.exit_code == 2
    assert found(result.bundle) == [("too-deep", "Bundle" + ".extension" * 64)]


def test_a_dict_that_is_not_json_data_is_refused() -> None:
    document: dict[Any, Any] = visit()
    document[1] = "an integer key"
    result = process(document, now=NOW)
    assert result.exit_code == 2
    assert found(result.bundle) == [("not-json", None)]


def test_a_parsed_dict_gets_the_same_checks_as_bytes(rules: Rules) -> None:
    document = visit(bb.procedure("97124", 24, status="bogus"))
    assert found(run(document, rules=rules, now=NOW).bundle) == [("invalid-code", "Bundle.entry[6].resource.status")]


# --- every problem at once ------------------------------------------------------------------


def two_bogus_statuses() -> dict[str, Any]:
    document = visit(bb.procedure("97124", 24, status="bogus"))
    res(document, 4)["clinicalStatus"]["coding"][0]["code"] = "bogus"
    return document


def unresolved_and_uncovered() -> dict[str, Any]:
    resources = [r for r in bb.base_resources() if r["resourceType"] != "Coverage"]
    return bb.bundle(*resources, bb.encounter(), bb.procedure("97124", 24, performer="Practitioner/missing"))


def two_encounters_without_periods() -> dict[str, Any]:
    return bb.bundle(
        *bb.base_resources(),
        bb.encounter("enc-1"),
        bb.encounter("enc-2"),
        bb.procedure("97124", None, proc_id="a"),
        bb.procedure("97140", None, proc_id="b", encounter="Encounter/enc-2"),
    )


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (
            two_bogus_statuses,
            [
                ("invalid-code", "Bundle.entry[4].resource.clinicalStatus.coding[0].code"),
                ("invalid-code", "Bundle.entry[6].resource.status"),
            ],
        ),
        (
            unresolved_and_uncovered,
            [
                ("unresolved-reference", "Bundle.entry[5].resource.performer[0].actor.reference"),
                ("missing-coverage", "Bundle.entry[4].resource"),
            ],
        ),
        (
            two_encounters_without_periods,
            [
                ("missing-performed-period", "Bundle.entry[7].resource.performedPeriod"),
                ("missing-performed-period", "Bundle.entry[8].resource.performedPeriod"),
            ],
        ),
    ],
    ids=["two-bindings", "reference-and-coverage", "two-encounters"],
)
def test_all_problems_are_reported_at_once(
    rules: Rules, build: Callable[[], dict[str, Any]], expected: Expected
) -> None:
    result = run(encode(build()), rules=rules, now=NOW)
    assert result.exit_code == 2
    assert found(result.bundle) == expected


def test_a_payer_problem_shared_by_encounters_is_reported_once(rules: Rules) -> None:
    document = bb.bundle(*bb.base_resources(), bb.encounter("enc-1"), bb.encounter("enc-2"), bb.procedure("97124", 24))
    result = run(encode(document), rules=rules, now=NOW, payer="no-such-payer")
    assert found(result.bundle) == [("unknown-payer", None)]


# --- through the command line ---------------------------------------------------------------


def theraclaim(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(THERACLAIM), *args], input=stdin, capture_output=True, timeout=120, check=False)


def assert_invalid_cli(completed: subprocess.CompletedProcess[bytes], expected: Expected) -> None:
    stderr = completed.stderr.decode()
    assert completed.returncode == 2, stderr
    assert "Traceback" not in stderr
    assert f"invalid input: {len(expected)} problem(s)" in stderr
    assert found(json.loads(completed.stdout)) == expected


CLI_CASES = ["not-json", "empty-body", "patient-not-bundle", "unresolved-performer", "date-february-30", "deep-lists"]


@pytest.mark.parametrize("name", CLI_CASES)
def test_bad_input_through_the_cli(tmp_path: Path, name: str) -> None:
    [(payload, kwargs, expected)] = [c[1:] for c in CASES if c[0] == name]
    assert not kwargs
    body = payload()
    path = tmp_path / "input.json"
    path.write_bytes(body.encode() if isinstance(body, str) else body)
    assert_invalid_cli(theraclaim("convert", str(path), "--now", NOW_ARG), expected)


def test_bad_input_on_stdin() -> None:
    assert_invalid_cli(theraclaim("convert", "-", "--now", NOW_ARG, stdin=deep_objects()), [("too-deep", None)])


def test_unknown_payer_through_the_cli(tmp_path: Path) -> None:
    path = write_json(tmp_path / "visit.json", visit())
    completed = theraclaim("convert", str(path), "--now", NOW_ARG, "--payer", "no-such-payer")
    assert_invalid_cli(completed, [("unknown-payer", None)])


def test_a_file_that_does_not_exist(tmp_path: Path) -> None:
    completed = theraclaim("convert", str(tmp_path / "absent.json"), "--now", NOW_ARG)
    assert_invalid_cli(completed, [("unreadable-input", None)])
    [issue] = outcome_issues(json.loads(completed.stdout))
    assert issue["code"] == "not-found"


@pytest.mark.parametrize("now", ["yesterday", "2025-01-15T12:00:00", "2025-13-01T00:00:00Z"])
def test_an_invalid_now_is_a_usage_error(tmp_path: Path, now: str) -> None:
    path = write_json(tmp_path / "visit.json", visit())
    completed = theraclaim("convert", str(path), "--now", now)
    stderr = completed.stderr.decode()
    assert completed.returncode == 2
    assert completed.stdout == b""
    assert stderr.startswith("usage: theraclaim convert")
    assert "argument --now" in stderr
    assert "Traceback" not in stderr


def test_cli_main_in_process(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    path = write_json(tmp_path / "visit.json", bb.bundle(*bb.base_resources(), bb.procedure("97124", 24)))
    assert cli.main(["convert", str(path), "--now", NOW_ARG]) == 2
    captured = capsysbinary.readouterr()
    assert found(json.loads(captured.out)) == [("no-encounter", "Bundle.entry")]
    assert b"Traceback" not in captured.err


# --- the independent validator --------------------------------------------------------------


def test_error_bundles_are_valid_fhir(rules: Rules, tmp_path: Path) -> None:
    chosen = ["not-json", "patient-not-bundle", "unresolved-performer", "date-february-30", "over-entry-limit"]
    paths = []
    for name, payload, kwargs, _ in CASES:
        if name in chosen:
            result: Result = run(payload(), rules=rules, now=NOW, **kwargs)
            assert result.invalid
            paths.append(write_json(tmp_path / f"{name}.json", result.bundle))
    many = run(encode(two_encounters_without_periods()), rules=rules, now=NOW)
    paths.append(write_json(tmp_path / "two-problems.json", many.bundle))
    assert len(paths) == len(chosen) + 1
    validate_fhir(paths)
