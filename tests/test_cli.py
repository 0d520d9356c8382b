"""``theraclaim convert``: the output Bundle on stdout, the summary on stderr, exit statuses,
determinism, payer override, and agreement with the embedding API."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from adapter import process
from tests import bundle_builder as bb
from tests.conftest import NOW, ROOT, validate_fhir, write_json

THERACLAIM = Path(sys.executable).parent / "theraclaim"
EXAMPLE = ROOT / "examples" / "medicare-visit.json"
NOW_ARG = "2025-01-15T12:00:00Z"
PHI = re.compile(r"\bExample\b|\bPat\b|1950-02-03")


def theraclaim(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(THERACLAIM), *args], input=stdin, capture_output=True, timeout=120, check=False)


def convert(source: Path | str, *extra: str) -> subprocess.CompletedProcess[bytes]:
    """Convert a file (or ``-`` with the example on stdin) at the fixed clock."""
    if source == "-":
        return theraclaim("convert", "-", "--now", NOW_ARG, *extra, stdin=EXAMPLE.read_bytes())
    return theraclaim("convert", str(source), "--now", NOW_ARG, *extra)


def kinds(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["resourceType"] for e in bundle["entry"]]


def claim_lines(bundle: dict[str, Any]) -> list[tuple[str, int, list[str]]]:
    [claim] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Claim"]
    return [
        (
            item["productOrService"]["coding"][0]["code"],
            item["quantity"]["value"],
            [m["coding"][0]["code"] for m in item.get("modifier", [])],
        )
        for item in claim["item"]
    ]


def finding_codes(bundle: dict[str, Any]) -> list[str]:
    [outcome] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "OperationOutcome"]
    return [issue["details"]["coding"][0]["code"] for issue in outcome["issue"]]


def test_the_example_holds_the_phi_the_checks_look_for() -> None:
    assert PHI.search(EXAMPLE.read_text()), "the PHI check below needs the example to hold the patient's data"


@pytest.mark.parametrize("source", [EXAMPLE, "-"], ids=["file", "stdin"])
def test_convert_writes_one_bundle_to_stdout(source: Path | str) -> None:
    completed = convert(source)
    stderr = completed.stderr.decode()
    assert completed.returncode == 0, stderr
    bundle = json.loads(completed.stdout)  # the whole of stdout is one JSON document
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "collection"
    assert bundle["timestamp"] == "2025-01-15T12:00:00+00:00"
    assert kinds(bundle) == ["Claim", "Provenance", "OperationOutcome"]
    claim, provenance = bundle["entry"][0]["resource"], bundle["entry"][1]["resource"]
    assert claim["status"] == "active"
    assert claim["created"] == "2025-01-15T12:00:00+00:00"
    assert claim["patient"] == {"reference": "Patient/pat-1"}
    assert provenance["target"] == [{"reference": bundle["entry"][0]["fullUrl"]}]
    # Medicare pools 24 + 23 = 47 timed minutes into 3 units; the larger remainder (97124) gets the third.
    assert claim_lines(bundle) == [("97124", 2, ["GP"]), ("97140", 1, ["GP"])]
    # KX is not guessed: without a year-to-date amount on the Coverage it is reported as not evaluated
    assert finding_codes(bundle) == ["kx-not-evaluated", "encounter-outcome"]
    # the human summary goes to stderr, and carries no PHI
    assert f"Encounter/enc-1: Claim {claim['id']} active (97124 x2, 97140 x1)" in stderr
    assert "1 encounter(s): 1 claim(s), 0 held for review" in stderr
    assert not PHI.search(stderr), stderr
    assert "Traceback" not in stderr


def test_file_and_stdin_give_the_same_bundle() -> None:
    assert convert(EXAMPLE).stdout == convert("-").stdout


def test_same_input_and_now_give_byte_identical_output() -> None:
    first, second = convert(EXAMPLE), convert(EXAMPLE)
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout
    # ... and the clock really is an input: another --now gives another Bundle
    later = theraclaim("convert", str(EXAMPLE), "--now", "2025-01-16T12:00:00Z")
    assert later.returncode == 0
    assert later.stdout != first.stdout


def test_exit_1_when_an_encounter_produces_no_claim(tmp_path: Path) -> None:
    path = write_json(tmp_path / "seven-minutes.json", bb.visit(bb.procedure("97124", 7)))
    completed = convert(path)
    stderr = completed.stderr.decode()
    assert completed.returncode == 1, stderr
    bundle = json.loads(completed.stdout)
    assert kinds(bundle) == ["OperationOutcome"]
    assert finding_codes(bundle) == ["timed-code-not-billed", "encounter-outcome"]
    [not_billed, _] = bundle["entry"][0]["resource"]["issue"]
    assert not_billed["expression"] == ["Bundle.entry[6].resource.performedPeriod"]
    assert "Encounter/enc-1: no Claim" in stderr
    assert "1 encounter(s): 0 claim(s)" in stderr
    assert not PHI.search(stderr)


def test_payer_override_uses_the_ama_per_code_rule() -> None:
    medicare, commercial = convert(EXAMPLE), convert(EXAMPLE, "--payer", "commercial")
    assert medicare.returncode == commercial.returncode == 0
    # per code: 24 minutes -> 2 units, 23 minutes -> 2 units; no therapy modifier for commercial
    assert claim_lines(json.loads(commercial.stdout)) == [("97124", 2, []), ("97140", 2, [])]
    assert claim_lines(json.loads(medicare.stdout)) == [("97124", 2, ["GP"]), ("97140", 1, ["GP"])]
    claim = json.loads(commercial.stdout)["entry"][0]["resource"]
    methods = {part["valueCode"] for item in claim["item"] for part in item["extension"][0]["extension"][:1]}
    assert methods == {"ama-per-code"}
    assert claim["total"] == {"value": 2 * 40.0 + 2 * 45.0, "currency": "USD"}


@pytest.mark.parametrize("payer", [None, "commercial"])
def test_process_returns_the_cli_bundle(payer: str | None) -> None:
    extra = ("--payer", payer) if payer else ()
    completed = convert(EXAMPLE, *extra)
    assert completed.returncode == 0
    result = process(EXAMPLE.read_bytes(), now=NOW, payer=payer)
    assert result.exit_code == completed.returncode
    assert result.bundle == json.loads(completed.stdout)


def test_the_output_is_valid_fhir(tmp_path: Path) -> None:
    medicare = tmp_path / "medicare.json"
    medicare.write_bytes(convert(EXAMPLE).stdout)
    seven = convert(write_json(tmp_path / "seven-minutes.json", bb.visit(bb.procedure("97124", 7))))
    unbilled = tmp_path / "unbilled.json"
    unbilled.write_bytes(seven.stdout)
    validate_fhir([medicare, unbilled])
