"""Golden files: every folder under tests/fixtures/golden/ is one case of the claims engine.

A case folder holds ``input.json`` (a FHIR Bundle), ``why.txt`` (what it shows, and the source),
optionally ``args.json`` (``{"payer": "commercial"}``), and the expected output: ``expected.json``
(the whole output Bundle, compared as canonical JSON) and ``expected-exit.txt`` (the exit code).

    .venv/bin/python -m tests.golden_cases                       # (re)write the inputs
    THERACLAIM_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_golden.py   # rewrite the expected files
    git diff tests/fixtures/golden                                # READ it: it is the review

With THERACLAIM_UPDATE_GOLDEN=1 the test writes expected.json / expected-exit.txt instead of
comparing, so only set it to accept a change you have checked by hand against
../shared/docs/billing-rules.md.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from adapter.pipeline import run
from adapter.rules.catalog import Rules
from tests.conftest import NOW, validate_fhir, write_json

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "golden"
UPDATE = os.environ.get("THERACLAIM_UPDATE_GOLDEN") == "1"
CASES = sorted(p for p in GOLDEN.iterdir() if (p / "input.json").is_file()) if GOLDEN.is_dir() else []


def canonical(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_there_are_golden_cases() -> None:
    assert CASES, f"no golden cases under {GOLDEN}: run .venv/bin/python -m tests.golden_cases"


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_golden(case: Path, rules: Rules) -> None:
    args_file = case / "args.json"
    args = json.loads(args_file.read_text(encoding="utf-8")) if args_file.exists() else {}
    result = run((case / "input.json").read_bytes(), rules=rules, now=NOW, payer=args.get("payer"))
    expected_file, exit_file = case / "expected.json", case / "expected-exit.txt"
    if UPDATE:
        write_json(expected_file, result.bundle)
        exit_file.write_text(f"{result.exit_code}\n", encoding="utf-8")
        return
    assert expected_file.exists() and exit_file.exists(), (
        f"{case.name} has no expected output: run THERACLAIM_UPDATE_GOLDEN=1 pytest tests/test_golden.py and review"
    )
    assert canonical(result.bundle) == canonical(json.loads(expected_file.read_text(encoding="utf-8")))
    assert result.exit_code == int(exit_file.read_text(encoding="utf-8").strip())


def test_golden_outputs_pass_the_independent_validator(tmp_path: Path) -> None:
    """Every expected.json through ../shared/tools/validate-fhir, in one call (it is slow to start)."""
    expected = [case / "expected.json" for case in CASES if (case / "expected.json").exists()]
    assert expected, "no expected.json to validate"
    copies = [shutil.copyfile(path, tmp_path / f"{path.parent.name}.json") for path in expected]
    validate_fhir(copies)


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_full_validation_agrees_on_golden_inputs(case: Path, rules: Rules) -> None:
    """The fast ``fields`` level (the default) and ``full`` (fhir.resources) give the same output."""
    args = json.loads((case / "args.json").read_text()) if (case / "args.json").is_file() else {}
    payload = (case / "input.json").read_bytes()
    fields = run(payload, rules=rules, now=NOW, payer=args.get("payer"), validation="fields")
    full = run(payload, rules=rules, now=NOW, payer=args.get("payer"), validation="full")
    assert canonical(full.bundle) == canonical(fields.bundle)
