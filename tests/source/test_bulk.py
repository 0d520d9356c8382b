"""``batch --bulk``: a Bulk Data export gives, per Encounter, what a complete push would."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapter.bulk import BulkIndex
from adapter.cli import main
from adapter.pipeline import run
from adapter.rules.catalog import Rules
from adapter.sourcing import observation_codes
from tests.conftest import NOW, shared_path
from tests.source.conftest import of_type, server_view
from tests.source.double import Double
from tests.source.test_pull import claim_of


def export(bundle: dict[str, Any], folder: Path) -> Path:
    """The Bundle's resources written as a Bulk Data export: one NDJSON file per type."""
    folder.mkdir()
    by_type: dict[str, list[str]] = {}
    for entry in bundle["entry"]:
        by_type.setdefault(entry["resource"]["resourceType"], []).append(json.dumps(entry["resource"]))
    for rtype, lines in by_type.items():
        (folder / f"{rtype}.000.ndjson").write_text("\n".join(lines) + "\n")
    return folder


def test_the_bulk_bundle_of_an_encounter_gives_the_claim_of_the_complete_push(
    double: Double, rules: Rules, tmp_path: Path, visit: tuple[dict[str, Any], str]
) -> None:
    complete = server_view(double)
    folder = export(complete, tmp_path / "export")
    out = tmp_path / "out.ndjson"
    code = main(["batch", "--bulk", str(folder), "--out", str(out), "--workers", "1", "--now", NOW.isoformat()])
    assert code in (0, 1)
    results = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(results) == len(of_type(complete, "Encounter"))
    claims = [c for r in results for c in of_type(r, "Claim")]
    expected = claim_of(run(complete, rules=rules, now=NOW), visit[1])
    assert claims == [expected]


def test_each_bulk_bundle_holds_one_encounter_and_only_its_patient(
    double: Double, rules: Rules, tmp_path: Path
) -> None:
    folder = export(server_view(double), tmp_path / "export")
    with BulkIndex(tmp_path) as index:
        tally = index.load(folder, io.StringIO())
        assert tally.resources == len(double.resources) and tally.skipped == 0
        bundles = [orjson.loads(b) for _, b in index.encounter_bundles(observation_codes(rules))]
    for bundle in bundles:
        assert len(of_type(bundle, "Encounter")) == 1
        assert len(of_type(bundle, "Patient")) == 1
        assert not of_type(bundle, "Claim") and not of_type(bundle, "ExplanationOfBenefit")
        observations = of_type(bundle, "Observation")
        assert all(c["code"] in ("777-3", "38263-7", "38267-8") for o in observations for c in o["code"]["coding"])
    assert not list(tmp_path.glob("theraclaim-bulk-*")), "the index file is removed"


def test_the_synthea_bulk_sample_gives_one_result_per_encounter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sample's single-patient file (every type mixed in one file) and its log; the whole
    sample, at 1x and 10x, runs in ``python -m bench`` (peak memory)."""
    sample = shared_path("external", "synthea-bulk-ndjson-10-patients")
    folder = tmp_path / "export"
    folder.mkdir()
    for name in ("patient-97bd3e5510cb-chronic-pain-movement-therapy.ndjson", "log.ndjson", "Patient.000.ndjson"):
        (folder / name).write_bytes((sample / name).read_bytes())
    out = tmp_path / "out.ndjson"
    code = main(["batch", "--bulk", str(folder), "--out", str(out), "--workers", "1", "--now", NOW.isoformat()])
    err = capsys.readouterr().err
    lines = [
        orjson.loads(line)
        for line in (folder / "patient-97bd3e5510cb-chronic-pain-movement-therapy.ndjson").read_bytes().splitlines()
    ]
    encounters = [r for r in lines if r["resourceType"] == "Encounter"]
    results = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(results) == len(encounters) > 10
    assert "log.ndjson line 1: not a FHIR resource with an id; skipped" in err
    assert "1 repeated" in err  # the patient is in both files
    # The sample carries conditional references to Organizations it does not include: every
    # Encounter is reported, none is guessed.
    assert code == 2
    for result in results:
        (outcome,) = of_type(result, "OperationOutcome")
        assert "unresolved-reference" in {i["details"]["coding"][0]["code"] for i in outcome["issue"]}


def test_bulk_needs_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "x.ndjson"
    path.write_text("{}\n")
    assert main(["batch", "--bulk", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "--bulk needs the export's folder" in capsys.readouterr().err
