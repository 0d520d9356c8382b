"""Rule data: loads, is consistent, has current JSON Schemas, and broken data fails loudly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from adapter.errors import RuleDataError
from adapter.model import Coding, CoverageFact
from adapter.rules.catalog import RULE_FILE_MODELS, Rules, default_mappings_dir, load_rules
from adapter.rules.payers import select_pack


def test_packaged_rule_data_loads(rules: Rules) -> None:
    assert {"medicare", "commercial"} <= set(rules.payers)
    assert rules.payers["medicare"].units.method == "cms-pooled"
    assert rules.payers["commercial"].units.method == "ama-per-code"
    assert rules.procedures.is_timed("97124") and rules.procedures.is_timed("97140")
    assert not rules.procedures.is_timed("97161")
    assert rules.payers["medicare"].edits.disciplines[0].modifier == "GP"
    assert rules.payers["commercial"].edits.disciplines == []


def test_every_billable_code_has_a_price(rules: Rules) -> None:
    for pack in rules.payers.values():
        assert set(pack.fee_schedule.prices) == set(rules.procedures.codes), pack.id


def test_exported_schemas_are_current() -> None:
    schema_dir = default_mappings_dir() / "schema"
    for kind, model in RULE_FILE_MODELS.items():
        on_disk = json.loads((schema_dir / f"{kind}.schema.json").read_text())
        assert on_disk == model.model_json_schema(), f"run: python -m adapter.rules.catalog --export-schema ({kind})"


def test_fingerprint_changes_with_the_data(tmp_path: Path, rules: Rules) -> None:
    copy = tmp_path / "mappings"
    shutil.copytree(default_mappings_dir(), copy)
    assert load_rules(copy).fingerprint == rules.fingerprint
    pack = copy / "payers" / "medicare.yaml"
    pack.write_text(pack.read_text().replace('"97124": "40.00"', '"97124": "41.00"'))
    assert load_rules(copy).fingerprint != rules.fingerprint


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("method: cms-pooled", "method: nearest", "units.method"),
        ("{id: pt, modifier: GP,", "{id: pt, modifier: '51',", "modifier"),
        ('"97124": "40.00"', '"97124": "-1.00"', "prices"),
        ("version: 1.2.0", "version: one", "version"),
        ('"97124": "40.00"', '"99999": "40.00"', "unknown codes"),
    ],
)
def test_broken_rule_data_names_the_file_and_field(tmp_path: Path, old: str, new: str, message: str) -> None:
    copy = tmp_path / "mappings"
    shutil.copytree(default_mappings_dir(), copy)
    pack = copy / "payers" / "medicare.yaml"
    text = pack.read_text()
    assert old in text
    pack.write_text(text.replace(old, new))
    with pytest.raises(RuleDataError) as caught:
        load_rules(copy)
    assert message in str(caught.value)


def test_unmapped_source_code_target_is_rejected(tmp_path: Path) -> None:
    copy = tmp_path / "mappings"
    shutil.copytree(default_mappings_dir(), copy)
    procedures = copy / "procedures" / "therapy.yaml"
    procedures.write_text(
        procedures.read_text().replace('code: "386438000", cpt: "97124"', 'code: "386438000", cpt: "97999"')
    )
    with pytest.raises(RuleDataError, match="not in codes"):
        load_rules(copy)


def test_a_pack_matches_a_coverage_by_its_payor_identifier(tmp_path: Path, rules: Rules) -> None:
    """Coverage.payor identifiers select a pack as well as Coverage.type does (no packaged pack uses them)."""
    copy = tmp_path / "mappings"
    shutil.copytree(default_mappings_dir(), copy)
    pack = copy / "payers" / "medicare.yaml"
    pack.write_text(
        pack.read_text().replace("payor_identifiers: []", "payor_identifiers: [{system: urn:payer, value: MCR}]")
    )
    loaded = load_rules(copy)
    paying = CoverageFact("Coverage/c", "Bundle.entry[0].resource", "active", 1, (), (Coding("urn:payer", "MCR"),))
    assert select_pack(loaded, paying, None, "commercial") == (loaded.payers["medicare"], [])
    other = CoverageFact("Coverage/c", "Bundle.entry[0].resource", "active", 1, (), (Coding("urn:payer", "MCX"),))
    chosen, findings = select_pack(loaded, other, None, "commercial")
    assert chosen.id == "commercial" and [f.code for f in findings] == ["payer-defaulted"]
