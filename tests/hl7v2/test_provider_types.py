"""ROL-9 / PRT-6 provider types become the performer's Practitioner.qualification, so a payer pack's
provider edit can tell a physical therapist from someone who may not bill therapy."""

from __future__ import annotations

from datetime import UTC
from typing import Any

import pytest

from adapter.intake.hl7v2 import convert_message, packaged_mapping
from adapter.rules.catalog import Rules
from tests.conftest import NOW
from tests.hl7v2.messages import THERAPIST, dg1, ft1, in1, message, msh, pid, pr1, pv1, segment

NUCC = "http://nucc.org/provider-taxonomy"
DAY = "20250114"


def _medicare_visit(version: str, *extra: str) -> bytes:
    return message(
        msh("PT-1", version=version),
        pid(),
        pv1("V-PT-1"),
        ft1(1, "97110", f"{DAY}090000-0500", units="2"),
        pr1(1, "97110", f"{DAY}090000-0500", "30"),
        *extra,
        dg1(1, "M54.50", "Low back pain, unspecified"),
        in1(plan_type="MC"),
    )


def _convert(raw: bytes, rules: Rules) -> tuple[list[dict[str, Any]], tuple[str, ...]]:
    outcome = convert_message(raw, rules=rules, mapping=packaged_mapping(), now=NOW, tz=UTC)
    assert outcome.input_bundle is not None and outcome.result is not None, outcome.text
    practitioners = [
        e["resource"] for e in outcome.input_bundle["entry"] if e["resource"]["resourceType"] == "Practitioner"
    ]
    return practitioners, tuple(f for o in outcome.result.outcomes for f in o.findings)


@pytest.mark.parametrize(
    ("version", "role"),
    [
        ("2.5.1", segment("ROL", {1: "1", 2: "AD", 3: "PP", 4: THERAPIST, 9: "225100000X^Physical Therapist^HCPT"})),
        ("2.7", segment("PRT", {2: "AD", 4: "PP", 5: THERAPIST, 6: "225100000X^Physical Therapist^HCPT"})),
    ],
    ids=["ROL-9", "PRT-6"],
)
def test_the_provider_type_qualifies_the_performer(version: str, role: str, rules: Rules) -> None:
    practitioners, findings = _convert(_medicare_visit(version, role), rules)
    (therapist,) = practitioners
    assert therapist["qualification"] == [
        {"code": {"coding": [{"system": NUCC, "code": "225100000X", "display": "Physical Therapist"}]}}
    ]
    assert "provider-qualification-unknown" not in findings


def test_without_a_provider_type_medicare_cannot_tell(rules: Rules) -> None:
    practitioners, findings = _convert(_medicare_visit("2.5.1"), rules)
    assert "qualification" not in practitioners[0] and "provider-qualification-unknown" in findings


def test_a_provider_type_of_another_person_or_an_unknown_system_qualifies_no_one(rules: Rules) -> None:
    stranger = segment("ROL", {1: "1", 3: "PP", 4: "1679576722^Other^Olga^^^^^^^^^^NPI", 9: "225100000X^^HCPT"})
    unknown_system = segment("ROL", {1: "2", 3: "PP", 4: THERAPIST, 9: "PT^Physical Therapist^LOCAL"})
    practitioners, findings = _convert(_medicare_visit("2.5.1", stranger, unknown_system), rules)
    assert [p["identifier"][0]["value"] for p in practitioners] == ["1245319599"]  # the stranger is not added
    (qualification,) = practitioners[0]["qualification"]
    assert qualification["code"]["coding"][0]["system"] == "urn:theraclaim:hl7v2:coding-system:LOCAL"
    assert "provider-qualification-unknown" in findings
