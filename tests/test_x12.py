"""The 837P output: every golden visit with an active Claim, golden 837P files, refusals, the CLI.

THERACLAIM_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_x12.py   # rewrite tests/fixtures/x12/*.x12
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.model import ClaimDecision
from adapter.output.x12 import NotExportable, fixed_envelope, interchange_of, load_profile
from adapter.output.x12.text import amount, npi_valid
from adapter.pipeline import run
from adapter.rules.catalog import Rules
from tests.bundle_builder import find, practitioner, procedure, visit, with_modifiers
from tests.conftest import NOW, ROOT
from tests.x12_support import pyx12_accepts, segments, validate_x12, with_demographics

GOLDEN = ROOT / "tests" / "fixtures" / "golden"
X12_GOLDEN = ROOT / "tests" / "fixtures" / "x12"
UPDATE = os.environ.get("THERACLAIM_UPDATE_GOLDEN") == "1"
EXAMPLE = ROOT / "examples" / "medicare-visit.json"


def _case_args(case: Path) -> dict[str, Any]:
    args_file = case / "args.json"
    return json.loads(args_file.read_text(encoding="utf-8")) if args_file.exists() else {}


def _render(bundle: dict[str, Any], rules: Rules, payer: str | None = None) -> tuple[bytes, list[dict[str, Any]]]:
    result = run(bundle, rules=rules, now=NOW, payer=payer)
    active = [d for d in result.decisions if d.status == "active"]
    claims = [e["resource"] for e in result.bundle["entry"] if e["resource"]["resourceType"] == "Claim"]
    content = interchange_of(active, rules, load_profile(), fixed_envelope(len(active)), NOW)
    return content, [c for c in claims if c["status"] == "active"]


def _claim_blocks(content: bytes) -> list[dict[str, Any]]:
    """Per CLM: its total and the (code, modifiers, units, charge) of its SV1 lines."""
    blocks: list[dict[str, Any]] = []
    for seg in segments(content):
        if seg[0] == "CLM":
            blocks.append({"total": seg[2], "lines": []})
        elif seg[0] == "SV1":
            product = seg[1].split(":")
            blocks[-1]["lines"].append((product[1], tuple(m for m in product[2:6] if m), int(seg[4]), seg[2]))
    return blocks


GOLDEN_ACTIVE = [
    case
    for case in sorted(GOLDEN.iterdir())
    if (case / "expected.json").is_file()
    and any(
        e["resource"]["resourceType"] == "Claim" and e["resource"]["status"] == "active"
        for e in json.loads((case / "expected.json").read_text(encoding="utf-8"))["entry"]
    )
]


def test_golden_cases_with_an_active_claim_exist() -> None:
    assert len(GOLDEN_ACTIVE) > 20


def test_every_golden_active_claim_gives_a_valid_837p_matching_the_fhir_claim(tmp_path: Path, rules: Rules) -> None:
    everything: list[ClaimDecision] = []
    for case in GOLDEN_ACTIVE:
        bundle = with_demographics(json.loads((case / "input.json").read_text(encoding="utf-8")))
        payer = _case_args(case).get("payer")
        content, claims = _render(bundle, rules, payer)
        blocks = _claim_blocks(content)
        assert len(blocks) == len(claims), case.name
        for block, claim in zip(blocks, claims, strict=True):
            assert block["total"] == amount(round(claim["total"]["value"] * 100)), case.name
            expected = [
                (
                    item["productOrService"]["coding"][0]["code"],
                    tuple(m["coding"][0]["code"] for m in item.get("modifier", [])),
                    item["quantity"]["value"],
                    amount(round(item["net"]["value"] * 100)),
                )
                for item in claim["item"]
            ]
            assert block["lines"] == expected, case.name
        everything += [d for d in run(bundle, rules=rules, now=NOW, payer=payer).decisions if d.status == "active"]
    # one interchange with every claim (one transaction set each): one validator run
    path = tmp_path / "every-golden-claim.x12"
    path.write_bytes(interchange_of(everything, rules, load_profile(), fixed_envelope(len(everything)), NOW))
    ok, ack = pyx12_accepts(path)
    assert ok, ack
    assert ack.count("IK5*A") == len(everything)
    validate_x12([path])


GOLDEN_837 = {
    "medicare-visit": (EXAMPLE, None),
    "commercial-visit": (EXAMPLE, "commercial"),
    **{
        name: (GOLDEN / name / "input.json", _case_args(GOLDEN / name).get("payer"))
        for name in (
            "edit-modifier-pta-gp-cq",
            "edit-modifier-order-four-gp-cq-59-kx",
            "edit-necessity-z733-with-m5450-billable",
            "multi-date-lines-per-date",
            "multi-encounter-two-claims",
            "edit-device-massage-chair-medicare-97039",
            "ama-manual-ex4-four-codes-97124-8",
        )
    },
}


@pytest.mark.parametrize("name", sorted(GOLDEN_837))
def test_golden_837p_files(name: str, rules: Rules, tmp_path: Path) -> None:
    source, payer = GOLDEN_837[name]
    bundle = json.loads(source.read_text(encoding="utf-8"))
    content, _ = _render(with_demographics(bundle), rules, payer)
    expected = X12_GOLDEN / f"{name}.x12"
    if UPDATE:
        expected.parent.mkdir(parents=True, exist_ok=True)
        expected.write_bytes(content)
    assert expected.is_file(), f"run THERACLAIM_UPDATE_GOLDEN=1 pytest {__file__} and review the .x12 files"
    assert content == expected.read_bytes()


def test_the_golden_837p_files_pass_the_validators() -> None:
    files = sorted(X12_GOLDEN.glob("*.x12"))
    assert files
    for path in files:
        ok, ack = pyx12_accepts(path)
        assert ok, f"{path.name}: {ack}"
        assert "IK5*A" in ack
    validate_x12(files)


def _decisions(bundle: dict[str, Any], rules: Rules) -> list[ClaimDecision]:
    return [d for d in run(bundle, rules=rules, now=NOW).decisions if d.status == "active"]


def _problems(bundle: dict[str, Any], rules: Rules) -> set[tuple[str, str | None]]:
    with pytest.raises(NotExportable) as raised:
        interchange_of(_decisions(bundle, rules), rules, load_profile(), fixed_envelope(1), NOW)
    return {(p.code, p.expression) for p in raised.value.problems}


def _example() -> dict[str, Any]:
    return dict(json.loads(EXAMPLE.read_text(encoding="utf-8")))


def test_a_delimiter_in_a_name_or_address_is_refused_with_its_path(rules: Rules) -> None:
    bundle = _example()
    patient = find(bundle, "Patient", "pat-1")
    patient["name"][0]["family"] = "Smith*Jones"
    find(bundle, "Organization", "org-1")["address"][0]["line"] = ["100 Main St~Suite 4"]
    assert _problems(bundle, rules) == {
        ("x12-delimiter", "Bundle.entry[0].resource.name"),
        ("x12-delimiter", "Bundle.entry[1].resource.address[0].line"),
    }
    with pytest.raises(NotExportable) as raised:
        interchange_of(_decisions(bundle, rules), rules, load_profile(), fixed_envelope(1), NOW)
    delimiter_paths = {p.expression for p in raised.value.problems if p.code == "x12-delimiter"}
    assert delimiter_paths == {"Bundle.entry[0].resource.name", "Bundle.entry[1].resource.address[0].line"}
    assert all("Smith" not in p.message for p in raised.value.problems)  # no PHI in the message


def test_accents_are_folded_and_names_upper_cased(rules: Rules) -> None:
    bundle = _example()
    find(bundle, "Patient", "pat-1")["name"][0]["family"] = "Muñoz-Pérez"
    content = interchange_of(_decisions(bundle, rules), rules, load_profile(), fixed_envelope(1), NOW)
    assert b"NM1*IL*1*MUNOZ-PEREZ*PAT****MI*1EG4TE5MK72~" in content


def test_npi_check_digits_are_verified_before_output(rules: Rules) -> None:
    assert npi_valid("1234567893") and npi_valid("1245319599")
    assert not npi_valid("1234567890") and not npi_valid("123456789")
    bundle = _example()
    find(bundle, "Organization", "org-1")["identifier"][0]["value"] = "1234567890"
    assert _problems(bundle, rules) == {("npi-invalid", "Bundle.entry[1].resource.identifier")}


def test_what_an_837p_needs_and_the_visit_lacks_is_listed_with_paths(rules: Rules) -> None:
    bundle = _example()
    del find(bundle, "Patient", "pat-1")["address"]
    del find(bundle, "Patient", "pat-1")["birthDate"]
    organization = find(bundle, "Organization", "org-1")
    organization["identifier"] = organization["identifier"][:1]
    organization["address"][0]["postalCode"] = "62701"
    del find(bundle, "Coverage", "cov-1")["subscriberId"]
    assert _problems(bundle, rules) == {
        ("x12-tax-id", "Bundle.entry[1].resource.identifier"),
        ("x12-postal-code", "Bundle.entry[1].resource.address[0].postalCode"),
        ("x12-missing", "Bundle.entry[0].resource"),  # the patient's address
        ("x12-missing", "Bundle.entry[0].resource.birthDate"),
        ("x12-missing", "Bundle.entry[3].resource"),  # the member id (Coverage.subscriberId)
    }


def test_a_held_claim_is_not_exported(rules: Rules) -> None:
    bundle = with_demographics(visit(procedure("97124", 24)))
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "Encounter":
            entry["resource"]["status"] = "in-progress"  # not finished: held
    result = run(bundle, rules=rules, now=NOW)
    assert [d.status for d in result.decisions] == ["draft"]
    with pytest.raises(NotExportable) as raised:
        interchange_of(list(result.decisions), rules, load_profile(), fixed_envelope(1), NOW)
    assert [p.code for p in raised.value.problems] == ["not-exportable"]


def test_the_patient_loop_when_the_patient_is_not_the_subscriber(rules: Rules, tmp_path: Path) -> None:
    bundle = _example()
    bundle["entry"].append(
        {
            "fullUrl": "http://ehr.example.org/fhir/RelatedPerson/sub-1",
            "resource": {
                "resourceType": "RelatedPerson",
                "id": "sub-1",
                "patient": {"reference": "Patient/pat-1"},
                "name": [{"family": "Example", "given": ["Sam"]}],
            },
        }
    )
    coverage = find(bundle, "Coverage", "cov-1")
    coverage["subscriber"] = {"reference": "RelatedPerson/sub-1"}
    coverage["relationship"] = {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "code": "spouse"}]
    }
    content = interchange_of(_decisions(bundle, rules), rules, load_profile(), fixed_envelope(1), NOW)
    found = [s[0:3] for s in segments(content)]
    assert ["HL", "2", "1"] in found and ["HL", "3", "2"] in found
    assert ["PAT", "01"] in [s for s in segments(content) if s[0] == "PAT"]
    assert b"SBR*P********MB~" in content and b"NM1*IL*1*EXAMPLE*SAM****MI*1EG4TE5MK72~" in content
    assert b"NM1*QC*1*EXAMPLE*PAT~" in content
    path = tmp_path / "patient-loop.x12"
    path.write_bytes(content)
    validate_x12([path])


def test_a_second_practitioner_gets_a_line_level_rendering_provider(rules: Rules, tmp_path: Path) -> None:
    other = practitioner("pt-2", "225100000X")
    other["identifier"] = [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "1679576722"}]
    other["name"] = [{"family": "Second", "given": ["Therapist"]}]
    bundle = with_demographics(
        visit(
            procedure("97124", 24),
            procedure("97140", 23, start="2025-01-14T09:30:00-05:00", performer="Practitioner/pt-2"),
            other,
        )
    )
    find(bundle, "Practitioner", "pt-1")["identifier"] = [
        {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1245319599"}
    ]
    content = interchange_of(_decisions(bundle, rules), rules, load_profile(), fixed_envelope(1), NOW)
    rendering = [s for s in segments(content) if s[:2] == ["NM1", "82"]]
    assert [s[-1] for s in rendering] == ["1245319599", "1679576722"]
    path = tmp_path / "two-practitioners.x12"
    path.write_bytes(content)
    validate_x12([path])


def test_modifiers_keep_their_order_in_sv101(rules: Rules) -> None:
    bundle = with_demographics(visit(with_modifiers(procedure("97140", 23), "KX")))
    content = interchange_of(_decisions(bundle, rules), rules, load_profile(), fixed_envelope(1), NOW)
    claim = next(
        e["resource"]
        for e in run(bundle, rules=rules, now=NOW).bundle["entry"]
        if e["resource"]["resourceType"] == "Claim"
    )
    modifiers = [m["coding"][0]["code"] for m in claim["item"][0]["modifier"]]
    sv1 = next(s for s in segments(content) if s[0] == "SV1")
    assert sv1[1] == ":".join(["HC", "97140", *modifiers])


def test_amounts_drop_trailing_zeros() -> None:
    assert [amount(c) for c in (12500, 12550, 12555, 5, 0)] == ["125", "125.5", "125.55", "0.05", "0"]


def _cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "adapter.cli", *args], capture_output=True, cwd=ROOT, timeout=120, check=False
    )


def test_convert_format_x12_writes_the_837p_and_lists_held_claims_on_stderr(tmp_path: Path) -> None:
    done = _cli("convert", str(EXAMPLE), "--format", "x12", "--now", "2025-01-15T12:00:00Z")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (X12_GOLDEN / "medicare-visit.x12").read_bytes()
    held = with_demographics(visit(procedure("97124", 24)))
    find(held, "Encounter", "enc-1")["status"] = "in-progress"
    path = tmp_path / "held.json"
    path.write_text(json.dumps(held), encoding="utf-8")
    done = _cli("convert", str(path), "--format", "x12", "--now", "2025-01-15T12:00:00Z")
    assert done.returncode == 0 and done.stdout == b""
    assert b"held for review: not in the 837P" in done.stderr


def test_convert_format_x12_exit_codes_for_bad_input_and_missing_demographics(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"resourceType": "Patient"}', encoding="utf-8")
    done = _cli("convert", str(bad), "--format", "x12")
    assert done.returncode == 2 and done.stdout == b"" and b"invalid input" in done.stderr
    lacking = tmp_path / "lacking.json"
    lacking.write_text(json.dumps(visit(procedure("97124", 24))), encoding="utf-8")
    done = _cli("convert", str(lacking), "--format", "x12", "--now", "2025-01-15T12:00:00Z")
    assert done.returncode == 2 and done.stdout == b""
    assert b"x12-tax-id" in done.stderr and b"Bundle.entry[" in done.stderr
    assert b"Pat" not in done.stderr  # no names on stderr


def test_no_rendering_provider_loop_when_it_is_the_billing_provider(rules: Rules) -> None:
    bundle = _example()
    find(bundle, "Practitioner", "pt-1")["identifier"][0]["value"] = "1234567893"  # the clinic's NPI
    content = interchange_of(_decisions(bundle, rules), rules, load_profile(), fixed_envelope(1), NOW)
    assert not [s for s in segments(content) if s[:2] == ["NM1", "82"]]
    assert b"PRV*PE" not in content


@given(family=st.text(min_size=1, max_size=70), city=st.text(min_size=1, max_size=40))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_name_or_city_is_refused_or_carried_without_breaking_the_segments(
    family: str, city: str, rules: Rules
) -> None:
    bundle = _example()
    find(bundle, "Patient", "pat-1")["name"][0]["family"] = family
    find(bundle, "Patient", "pat-1")["address"][0]["city"] = city
    decisions = _decisions(bundle, rules)
    try:
        content = interchange_of(decisions, rules, load_profile(), fixed_envelope(1), NOW)
    except NotExportable as error:
        assert {p.code for p in error.problems} <= {"x12-delimiter", "x12-character", "x12-missing", "x12-too-long"}
        assert all(p.expression and p.expression.startswith("Bundle.entry[0].resource") for p in error.problems)
        return
    found = segments(content)
    subscriber = next(s for s in found if s[:2] == ["NM1", "IL"])
    assert len(subscriber) == 10 and subscriber[3] and subscriber[3] == subscriber[3].upper()
    n4 = [s for s in found if s[0] == "N4"]
    assert all(len(s) == 4 for s in n4)
    se = next(s for s in found if s[0] == "SE")
    st_index = next(i for i, s in enumerate(found) if s[0] == "ST")
    assert int(se[1]) == found.index(se) - st_index + 1
