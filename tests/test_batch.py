"""``theraclaim batch``: input order, bad records reported and skipped, workers agree, constant-size windows."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapter.batch import Job, run_batch
from adapter.cli import main
from adapter.intake.wire import Limits
from adapter.rules.claim import ClaimOptions
from tests import bundle_builder as bb
from tests.conftest import validate_fhir

NOW = datetime(2025, 1, 15, 12, tzinfo=UTC)


def visit_line(i: int, minutes: int = 30) -> str:
    encounter = f"Encounter/e{i}"
    bundle = bb.visit(bb.procedure("97124", minutes, proc_id=f"p{i}", encounter=encounter), enc_id=f"e{i}")
    return json.dumps(bundle)


def job() -> Job:
    return Job(now=NOW, payer=None, options=ClaimOptions(), limits=Limits(), validation="fields", mappings_dir=None)


@pytest.fixture
def ndjson(tmp_path: Path) -> Path:
    lines = [visit_line(i) for i in range(150)]
    lines.insert(3, "this is not JSON")
    lines.insert(10, visit_line(999, minutes=5))  # nothing billable
    path = tmp_path / "in.ndjson"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("workers", [1, 2])
def test_results_come_out_in_input_order(ndjson: Path, workers: int) -> None:
    out, errors = io.BytesIO(), io.StringIO()
    tally = run_batch(ndjson, out, job(), workers, errors)
    results = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(results) == 152
    claims = [r["entry"][0]["resource"] for r in results if r["entry"][0]["resource"]["resourceType"] == "Claim"]
    encounter_order = [c["item"][0]["encounter"][0]["reference"] for c in claims]
    assert encounter_order == [f"Encounter/e{i}" for i in range(150)]
    assert results[3]["entry"][0]["resource"]["resourceType"] == "OperationOutcome"
    assert "record 4: invalid (not-json)" in errors.getvalue()
    assert (tally.records, tally.claims, tally.invalid, tally.without_claim) == (152, 150, 1, 1)
    assert tally.findings["timed-code-not-billed"] == 1
    assert tally.exit_code == 2


def test_one_and_two_workers_write_the_same_bytes(ndjson: Path) -> None:
    one, two = io.BytesIO(), io.BytesIO()
    run_batch(ndjson, one, job(), 1, io.StringIO())
    run_batch(ndjson, two, job(), 2, io.StringIO())
    assert one.getvalue() == two.getvalue()


def test_a_folder_of_json_files(tmp_path: Path) -> None:
    for i in range(3):
        (tmp_path / f"visit-{i}.json").write_text(visit_line(i))
    (tmp_path / "notes.txt").write_text("ignored")
    out = io.BytesIO()
    tally = run_batch(tmp_path, out, job(), 1, io.StringIO())
    assert (tally.records, tally.claims, tally.exit_code) == (3, 3, 0)


def test_cli_batch_writes_the_file_and_a_summary(
    ndjson: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.ndjson"
    code = main(["batch", str(ndjson), "--out", str(out), "--workers", "2", "--now", "2025-01-15T12:00:00Z"])
    assert code == 2
    lines = out.read_bytes().splitlines()
    assert len(lines) == 152
    # what two workers' spooled output became is FHIR: a Claim's Bundle, a refusal's, nothing billable
    samples = [tmp_path / f"line-{n}.json" for n in (1, 4, 11)]
    for sample in samples:
        sample.write_bytes(lines[int(sample.stem.split("-")[1]) - 1])
    validate_fhir(samples)
    stderr = capsys.readouterr().err
    assert "152 bundles: 150 claims" in stderr and "1 invalid" in stderr
    assert "Example" not in stderr and "1950-02-03" not in stderr  # no PHI in the report


def test_cli_batch_missing_input(tmp_path: Path) -> None:
    assert main(["batch", str(tmp_path / "absent.ndjson"), "--out", str(tmp_path / "o.ndjson")]) == 2
