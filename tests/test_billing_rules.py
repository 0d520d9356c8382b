"""Rules of billing round 2 (issue 12) that a golden case cannot reach: pack options the shipped packs do
not use, and the pieces the day's pool is built from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from adapter.errors import InputError
from adapter.intake.fhir import read_bundle
from adapter.intake.wire import Limits, check_document
from adapter.pipeline import run
from adapter.rules.catalog import default_mappings_dir, load_rules
from adapter.service.daypool import decode_facts, encode_facts, only_visit
from tests import bundle_builder as bb
from tests.conftest import NOW
from tests.golden_cases import GOLDEN

MASSAGE_THERAPIST = "225700000X"


def _medicare_with(tmp_path: Path, change: dict[str, Any]) -> Path:
    root = tmp_path / "mappings"
    shutil.copytree(default_mappings_dir(), root)
    pack_file = root / "payers" / "medicare.yaml"
    pack = yaml.safe_load(pack_file.read_text(encoding="utf-8"))
    for path, value in change.items():
        target = pack
        *parents, last = path.split(".")
        for key in parents:
            target = target[key]
        target[last] = value
    pack_file.write_text(yaml.safe_dump(pack, sort_keys=False), encoding="utf-8")
    return root


def _claim(bundle: dict[str, Any]) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Claim")


def _by_massage_therapist() -> dict[str, Any]:
    manual = bb.procedure("97124", 30, performer="Practitioner/lmt-1")
    return bb.visit(bb.practitioner("lmt-1", MASSAGE_THERAPIST), manual)


def test_a_pack_that_wants_the_denial_bills_an_excluded_service_with_gy(tmp_path: Path) -> None:
    rules = load_rules(_medicare_with(tmp_path, {"edits.providers.excluded_route": "gy"}))
    result = run(_by_massage_therapist(), rules=rules, now=NOW)
    claim = _claim(result.bundle)
    assert claim["status"] == "active"
    assert [m["coding"][0]["code"] for m in claim["item"][0]["modifier"]] == ["GP", "GY"]
    assert "provider-excluded-gy" in result.outcomes[0].findings


def test_the_shipped_medicare_pack_holds_an_excluded_service(rules: Any) -> None:
    result = run(_by_massage_therapist(), rules=rules, now=NOW)
    assert _claim(result.bundle)["status"] == "draft"
    assert "provider-not-qualified" in result.outcomes[0].findings


def test_the_therapist_midpoint_final_unit_rule_keeps_the_last_unit_without_cq(tmp_path: Path) -> None:
    """PT 13 + PTA 8 minutes left over: the 10 % test alone gives CQ; therapist-midpoint does not."""
    rules = load_rules(_medicare_with(tmp_path, {"edits.assistant.final_unit": "therapist-midpoint"}))
    pta = bb.procedure("97110", 23, performer="Practitioner/pta-1", proc_id="proc-pta")
    pt = bb.procedure("97110", 13, start="2025-01-14T09:23:00-05:00", proc_id="proc-pt")
    result = run(bb.visit(bb.practitioner("pta-1", "225200000X"), pta, pt), rules=rules, now=NOW)
    items = [
        (i["quantity"]["value"], [m["coding"][0]["code"] for m in i["modifier"]]) for i in _claim(result.bundle)["item"]
    ]
    assert items == [(1, ["GP"]), (1, ["GP", "CQ"])]


def test_only_visit_keeps_one_encounter_and_its_procedures() -> None:
    document = bb.bundle(
        *bb.base_resources(),
        bb.encounter("enc-1"),
        bb.encounter("enc-2"),
        bb.procedure("97140", 10, proc_id="p1"),
        bb.procedure("97140", 10, proc_id="p2", encounter="Encounter/enc-2"),
    )
    kept = only_visit(document, "urn:example:visit|V-enc-2")
    ids = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in kept}
    assert ("Encounter", "enc-2") in ids and ("Procedure", "p2") in ids
    assert ("Encounter", "enc-1") not in ids and ("Procedure", "p1") not in ids
    assert ("Patient", "pat-1") in ids


def test_a_visit_read_back_from_its_stored_facts_is_the_visit_as_read() -> None:
    """The day's pool decides over stored facts instead of reading every stored Bundle again: that is
    only the same decision if every golden visit survives the round trip unchanged."""
    visits = 0
    for path in sorted(GOLDEN.glob("*/input.json")):
        try:
            read = read_bundle(check_document(json.loads(path.read_text()), Limits()), Limits())
        except InputError:
            continue
        for visit in read:
            stored = encode_facts(visit)
            # (equal datetimes may differ in offset: the second encoding shows any that was lost)
            assert decode_facts(stored) == visit and encode_facts(decode_facts(stored)) == stored, path
            visits += 1
    assert visits > 100


def test_stored_facts_keep_the_form_and_offset_of_the_encounter_period() -> None:
    """Encounter.period's bounds may be a date or a dateTime: each comes back as the kind it was,
    with its offset (UTC as UTC, -05:00 and +05:30 as themselves)."""
    for start, end in (
        ("2025-01-14", "2025-01-14"),
        ("2025-01-14T08:55:00-05:00", "2025-01-14T10:00:00+05:30"),
        ("2025-01-14T13:55:00Z", "2025-01-14T14:55:00.250+00:00"),
    ):
        document = bb.visit(bb.procedure("97140", 10), start=start)
        encounter = next(e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == "Encounter")
        encounter["period"]["end"] = end
        (visit,) = read_bundle(check_document(document, Limits()), Limits())
        assert visit.period_end is not None, end
        read = decode_facts(encode_facts(visit))
        for kept, was in ((read.period_start, visit.period_start), (read.period_end, visit.period_end)):
            assert type(kept) is type(was) and repr(kept) == repr(was)
