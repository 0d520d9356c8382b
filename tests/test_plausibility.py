"""Plausibility holds (issue 10): implausible times and units hold the Claim with a finding a
biller can read; nothing absurd is billed silently."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapter.errors import RuleDataError
from adapter.pipeline import run
from adapter.rules.catalog import Rules, default_mappings_dir, load_rules
from adapter.rules.claim import ClaimOptions
from adapter.rules.plausibility import add_months
from tests import bundle_builder as bb
from tests.conftest import NOW


def convert(rules: Rules, document: dict[str, Any], **kwargs: Any) -> tuple[str | None, dict[str, str]]:
    """(Claim status, {finding code: its text}) of a one-encounter visit."""
    result = run(json.dumps(document).encode(), rules=rules, now=kwargs.pop("now", NOW), **kwargs)
    assert not result.invalid, result.bundle
    [outcome] = result.outcomes
    texts = {
        issue["details"]["coding"][0]["code"]: issue["details"]["text"]
        for entry in result.bundle["entry"]
        if entry["resource"]["resourceType"] == "OperationOutcome"
        for issue in entry["resource"]["issue"]
    }
    return outcome.status, texts


def test_a_procedure_lasting_ten_years_is_held_not_billed_silently(rules: Rules) -> None:
    document = bb.visit(bb.procedure("97124", 10 * 365 * 24 * 60), payer="commercial")
    status, found = convert(rules, document)
    assert status == "draft"
    assert "lasts 5256000 minutes, more than the 180" in found["procedure-too-long"]
    assert "more than the 8 per line of commercial@" in found["units-over-ceiling"]


@pytest.mark.parametrize(("minutes", "held"), [(180, False), (181, True)])
def test_the_longest_plausible_timed_procedure_is_a_setting(rules: Rules, minutes: int, held: bool) -> None:
    document = bb.visit(bb.procedure("97530", minutes))
    _, found = convert(rules, document)
    assert ("procedure-too-long" in found) is held
    _, relaxed = convert(rules, document, options=ClaimOptions(max_procedure_minutes=240))
    assert "procedure-too-long" not in relaxed


def test_units_over_the_pack_ceiling_hold_the_claim(rules: Rules) -> None:
    status, found = convert(rules, bb.visit(bb.procedure("97110", 150), payer="commercial"))  # 10 units
    assert status == "draft"
    assert found["units-over-ceiling"].startswith("CPT 97110 on 2025-01-14: 10 units, more than the 8 per line")
    status, found = convert(rules, bb.visit(bb.procedure("97110", 120), payer="commercial"))  # 8 units
    assert "units-over-ceiling" not in found


@pytest.mark.parametrize(
    ("start", "minutes", "how"),
    [("2025-01-14T08:00:00-05:00", 30, "starts before"), ("2025-01-14T09:45:00-05:00", 30, "ends after")],
)
def test_a_procedure_outside_its_encounter_period_is_held(rules: Rules, start: str, minutes: int, how: str) -> None:
    document = bb.visit(bb.procedure("97124", minutes, start=start))
    encounter = bb.find(document, "Encounter", "enc-1")
    encounter["period"] = {"start": "2025-01-14T08:55:00-05:00", "end": "2025-01-14T10:00:00-05:00"}
    status, found = convert(rules, document)
    assert status == "draft"
    assert f"the Procedure {how} the period of Encounter/enc-1" in found["procedure-outside-encounter"]


def test_a_procedure_inside_a_date_only_encounter_period_is_fine(rules: Rules) -> None:
    document = bb.visit(bb.procedure("97124", 30))
    bb.find(document, "Encounter", "enc-1")["period"] = {"start": "2025-01-14", "end": "2025-01-14"}
    status, found = convert(rules, document)
    assert status == "active" and "procedure-outside-encounter" not in found


@pytest.mark.parametrize(
    ("start", "code"),
    [
        ("9999-12-30T09:00:00-05:00", "service-date-in-future"),
        ("2025-01-16T09:00:00-05:00", "service-date-in-future"),
        ("0001-01-02T09:00:00-05:00", "timely-filing-expired"),
        ("2024-01-14T09:00:00-05:00", "timely-filing-expired"),
    ],
)
def test_dates_of_service_in_the_future_or_past_timely_filing_are_held(rules: Rules, start: str, code: str) -> None:
    document = bb.visit(bb.procedure("97124", 30, start=start))
    bb.find(document, "Encounter", "enc-1")["period"] = {"start": start}
    status, found = convert(rules, document)
    assert status == "draft"
    assert code in found, found


def test_timely_filing_counts_calendar_months_to_the_day(rules: Rules) -> None:
    start = "2024-01-15T09:00:00-05:00"  # exactly 12 months before NOW's date: still in time
    document = bb.visit(bb.procedure("97124", 30, start=start))
    bb.find(document, "Encounter", "enc-1")["period"] = {"start": start}
    assert "timely-filing-expired" not in convert(rules, document)[1]
    status, found = convert(rules, document, now=NOW + timedelta(days=1))
    assert status == "draft"
    assert "more than 12 months ago" in found["timely-filing-expired"]
    assert "42 CFR 424.44" in found["timely-filing-expired"]
    assert add_months(datetime(2024, 1, 31, tzinfo=UTC).date(), 1).isoformat() == "2024-02-29"


def test_a_pack_without_limits_is_broken_rule_data(tmp_path: Path) -> None:
    copy = tmp_path / "mappings"
    shutil.copytree(default_mappings_dir(), copy)
    pack = copy / "payers" / "commercial.yaml"
    text = pack.read_text()
    start, end = text.index("limits:"), text.index("fee_schedule:")
    pack.write_text(text[:start] + text[end:])
    with pytest.raises(RuleDataError, match="limits"):
        load_rules(copy)
