"""HL7 v2 golden pairs: message.hl7 -> the FHIR Bundle it maps to -> the pipeline's output and the ACK.

Every folder under tests/fixtures/hl7v2/ holds ``message.hl7`` and ``why.txt`` (written by
``python -m tests.hl7v2.golden_cases``) and the expected ``bundle.json`` (the FHIR input the FHIR
intake reads), ``output.json`` (Claims, DetectedIssues, Provenance, OperationOutcome with HL7
locations) and ``ack.hl7``.  THERACLAIM_UPDATE_GOLDEN=1 rewrites the expected files: read the diff.
"""

from __future__ import annotations

import json
import os
from datetime import UTC
from pathlib import Path

import pytest

from adapter.intake.hl7v2 import V2Outcome, convert_message, packaged_mapping
from adapter.rules.catalog import Rules
from tests.conftest import NOW, validate_fhir, write_json
from tests.test_golden import canonical

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "hl7v2"
UPDATE = os.environ.get("THERACLAIM_UPDATE_GOLDEN") == "1"
CASES = sorted(p for p in GOLDEN.iterdir() if (p / "message.hl7").is_file()) if GOLDEN.is_dir() else []


def _convert(case: Path, rules: Rules) -> V2Outcome:
    raw = (case / "message.hl7").read_bytes()
    return convert_message(raw, rules=rules, mapping=packaged_mapping(), now=NOW, tz=UTC)


def test_there_are_hl7v2_golden_cases() -> None:
    assert len(CASES) >= 5, "run .venv/bin/python -m tests.hl7v2.golden_cases"


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_hl7v2_golden(case: Path, rules: Rules) -> None:
    outcome = _convert(case, rules)
    assert outcome.result is not None
    ack = "".join(outcome.acks(NOW))
    files = {"bundle.json": outcome.input_bundle, "output.json": outcome.result.bundle}
    if UPDATE:
        for name, document in files.items():
            if document is not None:
                write_json(case / name, document)
        (case / "ack.hl7").write_text(ack.replace("\r", "\n"), encoding="utf-8")
        return
    for name, document in files.items():
        path = case / name
        if document is None:
            assert not path.exists(), f"{case.name}: {name} expected but the message was refused"
            continue
        assert canonical(document) == canonical(json.loads(path.read_text(encoding="utf-8"))), f"{case.name}/{name}"
    assert ack.replace("\r", "\n") == (case / "ack.hl7").read_text(encoding="utf-8")


def test_the_same_visit_gives_the_same_claim_in_every_version(rules: Rules) -> None:
    """The mapping does not depend on the version: a 2.3 message and a 2.8 one give one Claim id."""
    from tests.hl7v2.messages import visit

    claims = set()
    for version in ("2.3", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.8"):
        outcome = convert_message(visit(version=version), rules=rules, mapping=packaged_mapping(), now=NOW, tz=UTC)
        assert outcome.code == "AA", (version, outcome.text)
        assert outcome.result is not None
        resources = [e["resource"] for e in outcome.result.bundle["entry"]]
        claims |= {r["id"] for r in resources if r["resourceType"] == "Claim"}
    assert len(claims) == 1


def test_hl7v2_golden_bundles_pass_the_independent_validator(tmp_path: Path, rules: Rules) -> None:
    paths = []
    for case in CASES:
        outcome = _convert(case, rules)
        assert outcome.result is not None
        if outcome.input_bundle is not None:
            paths.append(write_json(tmp_path / f"{case.name}-bundle.json", outcome.input_bundle))
        paths.append(write_json(tmp_path / f"{case.name}-output.json", outcome.result.bundle))
    validate_fhir(paths)
