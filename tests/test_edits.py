"""Payer edits driven by CMS files (issue 5), and the modifier order.

tests/fixtures/cms/ holds two small files in the CMS layouts, with invented rows (test data, not CMS
values): an NCCI PTP practitioner table (tab separated, preamble lines, the real header columns) and
a practitioner MUE table (CSV).  The tests parse them, list them in a copy of the packaged Medicare
pack and check through adapter.pipeline.run that the edits follow them.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from adapter.errors import RuleDataError
from adapter.model import EncounterFacts, ServiceLine, Severity
from adapter.pipeline import Result, run
from adapter.rules.catalog import Rules, default_mappings_dir, load_rules
from adapter.rules.edit_data import MueCap, PtpPair, load_mue_file, load_ptp_file
from adapter.rules.edits import EditContext, order_modifiers
from tests.bundle_builder import back_to_back, visit
from tests.conftest import NOW

CMS = Path(__file__).resolve().parent / "fixtures" / "cms"
PTP_FILE = CMS / "ptp-practitioner-sample.txt"
MUE_FILE = CMS / "mue-practitioner-sample.csv"


# --- the loaders ---------------------------------------------------------------------------------------


def test_load_ptp_file_reads_every_row_exactly() -> None:
    name = PTP_FILE.name
    assert load_ptp_file(PTP_FILE) == [
        PtpPair(
            column1="97110",
            column2="97124",
            modifier_indicator=0,
            effective=date(2020, 1, 1),
            deletion=None,
            source=f"{name}: Mutually exclusive procedures",
        ),
        PtpPair(
            column1="97110",
            column2="97140",
            modifier_indicator=1,
            effective=date(2020, 1, 1),
            deletion=None,
            source=f"{name}: Standards of medical / surgical practice",
        ),
        PtpPair(
            column1="97116",
            column2="97124",
            modifier_indicator=0,
            effective=date(2010, 1, 1),
            deletion=date(2015, 1, 1),
            source=f"{name}: Misuse of column two code with column one code",
        ),
        PtpPair(
            column1="97035",
            column2="97124",
            modifier_indicator=9,
            effective=date(1996, 1, 1),
            deletion=None,
            source=f"{name}: CPT Manual or CMS manual coding instructions",
        ),
        PtpPair(
            column1="97112",
            column2="97124",
            modifier_indicator=0,
            effective=date(2099, 1, 1),
            deletion=None,
            source=f"{name}: Mutually exclusive procedures",
        ),
    ]


def test_ptp_rows_are_active_by_date_and_indicator() -> None:
    active, bypassable, deleted, not_applicable, future = load_ptp_file(PTP_FILE)
    day = date(2025, 1, 14)
    assert active.active_on(day) and bypassable.active_on(day)
    assert deleted.active_on(date(2014, 12, 31)) and not deleted.active_on(date(2015, 1, 1))
    assert not not_applicable.active_on(day)
    assert not future.active_on(day)


def test_load_mue_file_reads_every_row_exactly() -> None:
    name = MUE_FILE.name
    assert load_mue_file(MUE_FILE) == [
        MueCap(cpt="97124", units=4, mai=3, placeholder=False, source=f"{name}: Clinical: Data"),
        MueCap(cpt="97140", units=6, mai=2, placeholder=False, source=f"{name}: Nature of Service/Procedure"),
        MueCap(cpt="97012", units=1, mai=1, placeholder=False, source=f"{name}: Code Descriptor / CPT Instruction"),
    ]


# --- the edits follow the files, through the pipeline ---------------------------------------------------


def _mappings_with(tmp_path: Path, *, ptp: list[str] | None = None, mue: list[str] | None = None) -> Path:
    """A copy of the packaged mappings whose Medicare pack lists CMS files (copied from fixtures/cms)."""
    root = tmp_path / "mappings"
    shutil.copytree(default_mappings_dir(), root)
    shutil.copytree(CMS, root / "cms")
    pack_file = root / "payers" / "medicare.yaml"
    pack = yaml.safe_load(pack_file.read_text(encoding="utf-8"))
    if ptp is not None:
        pack["edits"]["ncci"]["files"] = ptp
    if mue is not None:
        pack["edits"]["mue"]["files"] = mue
    pack_file.write_text(yaml.safe_dump(pack, sort_keys=False), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def file_rules(tmp_path_factory: pytest.TempPathFactory) -> Rules:
    root = _mappings_with(
        tmp_path_factory.mktemp("cms"),
        ptp=[f"cms/{PTP_FILE.name}"],
        mue=[f"cms/{MUE_FILE.name}"],
    )
    return load_rules(root)


def _convert(rules: Rules, *services: tuple[str, int]) -> Result:
    """A Medicare visit with these timed services back to back (PT performer, PT plan of care)."""
    return run(visit(*back_to_back(*services)), rules=rules, now=NOW)


def _items(result: Result) -> dict[str, tuple[int, list[str]]]:
    """CPT -> (units, modifiers) of the one Claim in the output."""
    claims = [e["resource"] for e in result.bundle["entry"] if e["resource"]["resourceType"] == "Claim"]
    assert len(claims) == 1
    return {
        item["productOrService"]["coding"][0]["code"]: (
            item["quantity"]["value"],
            [m["coding"][0]["code"] for m in item.get("modifier", [])],
        )
        for item in claims[0]["item"]
    }


def _issues(result: Result, code: str) -> list[dict[str, Any]]:
    outcome = next(e["resource"] for e in result.bundle["entry"] if e["resource"]["resourceType"] == "OperationOutcome")
    return [i for i in outcome["issue"] if i["details"]["coding"][0]["code"] == code]


def test_the_packaged_medicare_pack_has_no_file_pairs(rules: Rules) -> None:
    """Control: without the file, 97110 + 97124 are both billed (no inline pair for them)."""
    result = _convert(rules, ("97110", 15), ("97124", 15))
    assert _items(result) == {"97110": (1, ["GP"]), "97124": (1, ["GP"])}
    assert not _issues(result, "ncci-column2-not-billable")


def test_indicator_0_drops_the_column_2_line(file_rules: Rules) -> None:
    result = _convert(file_rules, ("97110", 15), ("97124", 15))
    assert _items(result) == {"97110": (1, ["GP"])}
    (issue,) = _issues(result, "ncci-column2-not-billable")
    assert "97110/97124, modifier indicator 0" in issue["details"]["text"]
    assert PTP_FILE.name in issue["details"]["text"]
    assert "edits/ncci-ptp medicare@" in issue["diagnostics"]
    assert result.outcomes[0].status == "active"


def test_indicator_1_bypasses_with_59_for_separate_time_blocks(file_rules: Rules) -> None:
    result = _convert(file_rules, ("97110", 15), ("97140", 15))
    assert _items(result) == {"97110": (1, ["GP"]), "97140": (1, ["GP", "59"])}
    (issue,) = _issues(result, "ncci-bypass")
    assert "97110/97140, modifier indicator 1" in issue["details"]["text"]


@pytest.mark.parametrize(
    ("column1", "why"),
    [("97116", "deleted 2015-01-01"), ("97035", "indicator 9"), ("97112", "effective only from 2099")],
)
def test_inactive_rows_never_fire(file_rules: Rules, column1: str, why: str) -> None:
    result = _convert(file_rules, (column1, 15), ("97124", 15))
    assert _items(result) == {column1: (1, ["GP"]), "97124": (1, ["GP"])}, why
    assert not _issues(result, "ncci-column2-not-billable") and not _issues(result, "ncci-bypass")
    assert result.outcomes[0].status == "active"


def test_the_mue_file_replaces_the_placeholder_cap(file_rules: Rules) -> None:
    """97124: file cap 4 (placeholder 8); 75 min -> 5 units is held, 60 min -> 4 units is not."""
    over = _convert(file_rules, ("97124", 75))
    assert _items(over) == {"97124": (5, ["GP"])}
    assert over.outcomes[0].status == "draft"
    (issue,) = _issues(over, "mue-exceeded")
    text = issue["details"]["text"]
    assert "5 units exceed the MUE of 4 per date of service (clinical)" in text
    assert MUE_FILE.name in text and "placeholder" not in text
    assert "edits/mue medicare@" in issue["diagnostics"]

    at_cap = _convert(file_rules, ("97124", 60))
    assert _items(at_cap) == {"97124": (4, ["GP"])}
    assert at_cap.outcomes[0].status == "active"
    assert not _issues(at_cap, "mue-exceeded")


def test_the_mue_file_cap_with_mai_2(file_rules: Rules, rules: Rules) -> None:
    """97140: file cap 6 (MAI 2); 98 min -> 7 units is held with it, and passes the packaged placeholder 8."""
    held = _convert(file_rules, ("97140", 98))
    assert held.outcomes[0].status == "draft"
    (issue,) = _issues(held, "mue-exceeded")
    assert "7 units exceed the MUE of 6 per date of service (policy)" in issue["details"]["text"]
    assert _convert(rules, ("97140", 98)).outcomes[0].status == "active"
    assert _convert(file_rules, ("97140", 90)).outcomes[0].status == "active"  # 6 units: at the cap


# --- malformed files name the pack -------------------------------------------------------------------------


def _replace_line(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


@pytest.mark.parametrize(
    ("file", "old", "new", "kind"),
    [
        (PTP_FILE.name, "Column 1\tColumn 2", "Col A\tCol B", "ptp"),  # no header row
        (PTP_FILE.name, "20200101\t*\t0", "20201301\t*\t0", "ptp"),  # month 13
        (PTP_FILE.name, "20200101\t*\t1", "20200101\t*\tX", "ptp"),  # modifier indicator not 0/1/9
        (PTP_FILE.name, "97116\t97124", "9711\t97124", "ptp"),  # not a CPT code
        (MUE_FILE.name, "97124,4,", "97124,four,", "mue"),  # units not a number
        (MUE_FILE.name, '"3 Date of Service', '"5 Date of Service', "mue"),  # MAI not 1/2/3
    ],
)
def test_a_malformed_file_is_a_rule_data_error_naming_the_pack(
    tmp_path: Path, file: str, old: str, new: str, kind: str
) -> None:
    listed = {kind: [f"cms/{file}"]}
    root = _mappings_with(tmp_path, **listed)
    _replace_line(root / "cms" / file, old, new)
    with pytest.raises(RuleDataError) as caught:
        load_rules(root)
    assert "payer pack medicare" in str(caught.value)
    assert [p.code for p in caught.value.problems] == ["rule-data-invalid"]


def test_a_listed_file_that_is_absent_names_the_pack(tmp_path: Path) -> None:
    root = _mappings_with(tmp_path, mue=["cms/absent.csv"])
    with pytest.raises(RuleDataError, match="payer pack medicare"):
        load_rules(root)


# --- modifier order (edits.py docstring; billing-rules.md F2.8, F4.4) ---------------------------------------


@pytest.fixture
def context(rules: Rules) -> EditContext:
    encounter = EncounterFacts(
        ref="Encounter/enc-1",
        path="Bundle.entry[0].resource",
        identity="urn:example:visit|V-1",
        status="finished",
        patient_ref="Patient/pat-1",
        billing_provider_ref=None,
        procedures=(),
        diagnoses=(),
        conditions=(),
        coverages=(),
    )
    return EditContext(encounter, rules.payers["medicare"], rules, [])


def _line(cpt: str, *modifiers: str) -> ServiceLine:
    return ServiceLine(cpt, date(2025, 1, 14), 1, (), (), (), (), modifiers=modifiers)


@pytest.mark.parametrize(
    ("given", "ordered"),
    [
        (("KX", "XS", "CQ", "GP"), ("GP", "CQ", "XS", "KX")),  # discipline, assistant, bypass, KX
        (("59", "GO", "KX", "CO"), ("GO", "CO", "59", "KX")),
        (("LT", "GP", "RT"), ("GP", "LT", "RT")),  # sender modifiers last, in the order sent
        (("XU", "GN"), ("GN", "XU")),
        (("GP", "GP", "59", "59"), ("GP", "59")),  # each once
    ],
)
def test_modifiers_follow_the_documented_order(
    context: EditContext, given: tuple[str, ...], ordered: tuple[str, ...]
) -> None:
    assert order_modifiers(_line("97140", *given), context).modifiers == ordered
    assert context.findings == []


def test_modifier_51_is_removed_from_97xxx_with_a_warning(context: EditContext) -> None:
    line = order_modifiers(_line("97124", "51", "GP"), context)
    assert line.modifiers == ("GP",)
    (finding,) = context.findings
    assert (finding.code, finding.severity, finding.hold) == ("modifier-51-removed", Severity.WARNING, False)
    assert finding.rule == "edits/modifiers medicare@1.2.0"


def test_modifier_51_outside_97xxx_is_left_alone(context: EditContext) -> None:
    assert order_modifiers(_line("98941", "51"), context).modifiers == ("51",)
    assert context.findings == []


def test_at_most_four_modifiers_and_the_claim_is_held(context: EditContext) -> None:
    line = order_modifiers(_line("97530", "LT", "KX", "59", "CQ", "GP"), context)
    assert line.modifiers == ("GP", "CQ", "59", "KX")
    (finding,) = context.findings
    assert (finding.code, finding.hold) == ("too-many-modifiers", True)
    assert "5 modifiers (GP, CQ, 59, KX, LT)" in finding.message


def test_removing_51_can_bring_a_line_back_to_four(context: EditContext) -> None:
    line = order_modifiers(_line("97140", "51", "LT", "KX", "59", "GP"), context)
    assert line.modifiers == ("GP", "59", "KX", "LT")
    assert [f.code for f in context.findings] == ["modifier-51-removed"]
