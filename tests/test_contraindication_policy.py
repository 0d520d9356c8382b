"""Payer policy for contraindications: ``block`` takes the lines concerned out (no golden case: no shipped pack
blocks, so a copy of the rule data sets ``dvt: {full: block}``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from adapter.pipeline import run
from adapter.rules.catalog import Rules, default_mappings_dir, load_rules
from tests import bundle_builder as bb
from tests.conftest import NOW


@pytest.fixture(scope="module")
def blocking_rules(tmp_path_factory: pytest.TempPathFactory) -> Rules:
    copy = tmp_path_factory.mktemp("rules") / "mappings"
    shutil.copytree(default_mappings_dir(), copy)
    pack = copy / "payers" / "medicare.yaml"
    pack.write_text(
        pack.read_text() + "contraindications:\n  by_class:\n    dvt: {full: block, lesser: warn, minor: warn}\n"
    )
    return load_rules(copy)


def dvt_visit(*procedures: dict[str, object]) -> dict[str, object]:
    bundle = bb.visit(*procedures)
    bundle["entry"].append(
        {
            "fullUrl": "http://ehr.example.org/fhir/Condition/dvt",
            "resource": bb.condition("dvt", "I82.401", "Acute DVT of right femoral vein"),
        }
    )
    return bundle


def test_block_leaves_no_claim_when_only_massage_was_done(blocking_rules: Rules) -> None:
    result = run(dvt_visit(bb.procedure("97124", 30)), rules=blocking_rules, now=NOW)
    assert result.exit_code == 1
    (outcome,) = result.outcomes
    assert outcome.status is None and "procedures-blocked" in outcome.findings
    kinds = [e["resource"]["resourceType"] for e in result.bundle["entry"]]
    assert kinds == ["DetectedIssue", "OperationOutcome"]  # the finding is still reported


def test_block_keeps_the_lines_it_does_not_concern(blocking_rules: Rules) -> None:
    visit = dvt_visit(
        bb.procedure("97124", 7, proc_id="massage"),
        bb.procedure("97110", 22, proc_id="exercise", start="2025-01-14T10:00:00-05:00"),
    )
    result = run(visit, rules=blocking_rules, now=NOW)
    (outcome,) = result.outcomes
    # pooled with the blocked 7 minutes, 29 minutes would give 97110 two units; alone, 22 minutes give one
    assert outcome.lines == (("97110", 1),)
    assert result.exit_code == 0


def test_the_shipped_medicare_pack_holds_instead(rules: Rules) -> None:
    result = run(dvt_visit(bb.procedure("97124", 30)), rules=rules, now=NOW)
    (outcome,) = result.outcomes
    assert outcome.status == "draft" and outcome.lines == (("97124", 2),)


def test_an_unknown_class_in_a_policy_is_broken_rule_data(tmp_path: Path) -> None:
    from adapter.errors import RuleDataError

    copy = tmp_path / "mappings"
    shutil.copytree(default_mappings_dir(), copy)
    pack = copy / "payers" / "medicare.yaml"
    pack.write_text(pack.read_text() + "contraindications:\n  by_class:\n    scurvy: {full: block}\n")
    with pytest.raises(RuleDataError, match="scurvy"):
        load_rules(copy)
