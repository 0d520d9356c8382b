"""Contraindication screening of the 26 Synthea R4 bundles in ../shared/external/synthea-r4-bundles-smart/.

The bundles (PROVENANCE.md there) are whole patient histories: transaction Bundles with urn:uuid
references, SNOMED-coded Conditions, RxNorm MedicationRequests and LOINC Observations, but no
Coverage resource and no massage Procedure.  Each test therefore adds, to a copy, a commercial
Coverage (PHDSC SOPT 5) for the patient and one synthetic completed 97124 Procedure (30 min from the
chosen Encounter's start, lower back, performed by the Encounter's practitioner), then runs the
whole pipeline.  Every other Encounter of the history is converted as well (no billable lines,
so no Claim), which is a useful stress test of intake on real-shaped data.

Three bundles are checked by hand (see HAND_CHECKED): their Conditions, MedicationRequests and
platelet Observations were read with their dates and statuses relative to the synthetic date of
service, and the exact set of findings is asserted.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapter.errors import InputError
from adapter.intake.fhir import read_bundle
from adapter.pipeline import DEFAULT_LIMITS, Result, run
from adapter.rules.catalog import Rules
from tests.conftest import NOW, shared_path

SYNTHEA = ("external", "synthea-r4-bundles-smart")
CPT = "http://www.ama-assn.org/go/cpt"
SNOMED = "http://snomed.info/sct"
LOWER_BACK = ("37822005", "Lower back structure")
SYNTHETIC_PROCEDURE = "synthetic-97124"
NAMESPACE = uuid.UUID("3a4f0c52-6f7e-4d8e-9a0b-5c1d2e3f4a5b")
TIER = re.compile(r"Tier (full|lesser|minor)(?: \(lowered: [^)]*\))? -> (hold|block|warn);")


def synthea_bundles() -> list[Path]:
    folder = shared_path(*SYNTHEA)
    return sorted(folder.glob("*.json"))


def load(name: str) -> dict[str, Any]:
    """A bundle by the start of its file name (``Mafalda_Turcotte``)."""
    (path,) = [p for p in synthea_bundles() if p.name.startswith(f"{name}_")]
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def _entries(document: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [e for e in document["entry"] if e["resource"]["resourceType"] == resource_type]


def _encounter(document: dict[str, Any], encounter_id: str | None) -> dict[str, Any]:
    """The Encounter entry with that id, or the latest one."""
    encounters = _entries(document, "Encounter")
    if encounter_id is None:
        return max(encounters, key=lambda e: datetime.fromisoformat(e["resource"]["period"]["start"]))
    (entry,) = [e for e in encounters if e["resource"]["id"] == encounter_id]
    return entry


def with_massage(document: dict[str, Any], encounter_id: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """A copy with a Coverage and a completed 97124 Procedure on the Encounter; returns (copy, Encounter)."""
    document = copy.deepcopy(document)
    (patient,) = _entries(document, "Patient")
    encounter = _encounter(document, encounter_id)
    start = datetime.fromisoformat(encounter["resource"]["period"]["start"])
    procedure: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": SYNTHETIC_PROCEDURE,
        "status": "completed",
        "code": {"coding": [{"system": CPT, "code": "97124", "display": "Massage"}]},
        "subject": {"reference": patient["fullUrl"]},
        "encounter": {"reference": encounter["fullUrl"]},
        "performedPeriod": {"start": start.isoformat(), "end": (start + timedelta(minutes=30)).isoformat()},
        "bodySite": [{"coding": [{"system": SNOMED, "code": LOWER_BACK[0], "display": LOWER_BACK[1]}]}],
    }
    practitioners = [
        p["individual"]["reference"]
        for p in encounter["resource"].get("participant", [])
        if "reference" in p.get("individual", {})
    ]
    if practitioners:
        procedure["performer"] = [{"actor": {"reference": practitioners[0]}}]
    coverage = {
        "resourceType": "Coverage",
        "id": "synthetic-coverage",
        "status": "active",
        "type": {"coding": [{"system": "https://nahdo.org/sopt", "code": "5"}]},
        "beneficiary": {"reference": patient["fullUrl"]},
        "payor": [{"identifier": {"system": "urn:example:payer-id", "value": "COMMERCIAL"}}],
    }
    for resource in (coverage, procedure):
        url = f"urn:uuid:{uuid.uuid5(NAMESPACE, patient['fullUrl'] + resource['id'])}"
        request = {"method": "POST", "url": resource["resourceType"]}
        document["entry"].append({"fullUrl": url, "resource": resource, "request": request})
    return document, encounter


@dataclass(frozen=True)
class Found:
    """One DetectedIssue as (class, kind, severity, tier, action, source) plus what it implicates."""

    klass: str
    kind: str
    severity: str
    tier: str
    action: str
    source: str


def detected_issues(result: Result) -> list[dict[str, Any]]:
    return [e["resource"] for e in result.bundle["entry"] if e["resource"]["resourceType"] == "DetectedIssue"]


def found(issue: dict[str, Any]) -> Found:
    kind, klass = (c["code"] for c in issue["code"]["coding"])
    match = TIER.search(issue["detail"])
    assert match, issue["detail"]
    return Found(klass, kind, issue["severity"], match[1], match[2], issue["implicated"][0]["reference"])


def screen(document: dict[str, Any], rules: Rules, encounter_id: str | None = None) -> tuple[Result, str]:
    """Run the pipeline on a copy with the synthetic massage; returns the result and the Encounter's ref."""
    augmented, encounter = with_massage(document, encounter_id)
    result = run(augmented, rules=rules, now=NOW)
    return result, f"Encounter/{encounter['resource']['id']}"


# --- every bundle: no crash, nothing rejected -------------------------------------------------------


def test_there_are_26_bundles() -> None:
    assert len(synthea_bundles()) == 26


def test_without_a_coverage_the_only_problem_is_the_missing_coverage() -> None:
    """Why the tests add a Coverage: as shipped, every Encounter lacks one, and nothing else is wrong."""
    for path in synthea_bundles():
        with pytest.raises(InputError) as raised:
            read_bundle(json.loads(path.read_text(encoding="utf-8")), DEFAULT_LIMITS)
        assert {p.code for p in raised.value.problems} == {"missing-coverage"}, path.name


def test_every_bundle_is_screened_without_a_crash(rules: Rules) -> None:
    """Each bundle with the synthetic massage on its latest Encounter gives facts and a valid result."""
    crashed: dict[str, str] = {}
    invalid: dict[str, list[str]] = {}
    for path in synthea_bundles():
        document = json.loads(path.read_text(encoding="utf-8"))
        try:
            augmented, encounter = with_massage(document)
            facts = read_bundle(augmented, DEFAULT_LIMITS)
            assert len(facts) == len(_entries(document, "Encounter"))
            (treated,) = [f for f in facts if f.ref == f"Encounter/{encounter['resource']['id']}"]
            assert [p.ref for p in treated.procedures if p.ref.endswith(SYNTHETIC_PROCEDURE)]
            result = run(augmented, rules=rules, now=NOW)
        except Exception as exc:  # collected so that one report names every bundle that crashed
            crashed[path.name] = f"{type(exc).__name__}: {exc}"
            continue
        if result.invalid:
            outcome = result.bundle["entry"][0]["resource"]
            invalid[path.name] = [i["details"]["text"] for i in outcome["issue"]]
            continue
        # the synthetic Encounter yields a Claim; the rest of the history has nothing billable
        (outcome,) = [o for o in result.outcomes if o.encounter_ref == f"Encounter/{encounter['resource']['id']}"]
        assert outcome.lines == (("97124", 2),), path.name
        for issue in detected_issues(result):
            assert issue["implicated"][-1]["reference"] == f"Procedure/{SYNTHETIC_PROCEDURE}", path.name
    assert not crashed, f"bundles that crashed: {crashed}"
    assert not invalid, f"bundles rejected as invalid: {invalid}"


def test_findings_on_the_latest_encounter_of_every_bundle(rules: Rules) -> None:
    """Across all 26 bundles only four patients have screened data in force on their latest Encounter.

    Read by hand from the bundles: the only class codes in the set are warfarin 855332 (Cleo Friesen,
    Mafalda Turcotte; active MedicationRequests) and SNOMED 64859006 osteoporosis (Laticia Dibbert,
    Willia Runolfsdottir; active, no abatement).  Clopidogrel 309362 (Alejandro Riojas) is stopped;
    the fractures, burns and lacerations (Rickey Becker, Rufus Kihn, Marc Corkery, Hershel Marvin)
    are resolved with an abatement date; every platelet count is 150 10*3/uL or more.
    """
    expected = {
        "Cleo_Friesen": {("anticoagulant", "high")},
        "Laticia_Dibbert": {("osteoporosis", "moderate")},
        "Mafalda_Turcotte": {("anticoagulant", "high")},
        "Willia_Runolfsdottir": {("osteoporosis", "moderate")},
    }
    seen = {}
    for path in synthea_bundles():
        result, _ = screen(json.loads(path.read_text(encoding="utf-8")), rules)
        name = "_".join(path.name.split("_")[:2])
        seen[name] = {(found(i).klass, found(i).severity) for i in detected_issues(result)}
    assert {name: classes for name, classes in seen.items() if classes} == expected


# --- three bundles checked by hand ----------------------------------------------------------------------


@dataclass(frozen=True)
class HandChecked:
    bundle: str
    encounter_id: str
    expected: frozenset[Found]
    why: str


HAND_CHECKED = [
    HandChecked(
        "Mafalda_Turcotte",
        "32bf9876-4d76-428a-bff4-648c4225be5a",  # check-up 2021-03-17
        frozenset(
            {
                Found(
                    "anticoagulant",
                    "DRG",
                    "high",
                    "full",
                    "hold",
                    "MedicationRequest/812e78c3-573f-49f2-a745-d1555fd3cff3",
                )
            }
        ),
        # Warfarin sodium 5 MG (RxNorm 855332) ordered 2015-09-16 for atrial fibrillation, status active:
        # an anticoagulant in force on 2021-03-17 -> full -> hold (T19).  Nothing else: naproxen 849574,
        # verapamil and digoxin are in no class; the whiplash (2015), wrist sprain (2014) and concussion
        # (2019) are resolved; osteoarthritis of hip, migraine, AF and prediabetes are no contraindication;
        # the platelet count of the same day is 171.4 10*3/uL (>= 50, not severe).
        "warfarin active 6 years after it was ordered",
    ),
    HandChecked(
        "Willia_Runolfsdottir",
        "12adf925-4c12-4c12-b18b-dd36a0887d1d",  # check-up 2013-11-18
        frozenset(
            {
                Found(
                    "osteoporosis",
                    "COND",
                    "moderate",
                    "lesser",
                    "warn",
                    "Condition/ec1c8f70-ede5-4ad5-b78c-e119e7c49e7e",
                )
            }
        ),
        # Osteoporosis (SNOMED 64859006) active and confirmed since 2012-11-12, no abatement: tier lesser
        # (no fracture, no DXA T-score in the bundle) -> warn (T24, M81-like).  Alendronic acid 904419 is
        # in no class; obesity, miscarriage (1959) and tubal pregnancy (1972) are no contraindication;
        # the latest platelet count on or before the date is 292.8 (2011-11-07), not severe.
        "osteoporosis without fracture: a warning",
    ),
    HandChecked(
        "Willia_Runolfsdottir",
        "498b40db-9f05-482e-8224-6144a388346a",  # check-up 2011-11-07
        frozenset(),
        # The same patient a year earlier: the osteoporosis' onset (2012-11-12) is after this date of
        # service, so it is not present yet -> nothing (issue 3: onset after the date of service).
        "onset after the date of service",
    ),
    HandChecked(
        "Cleo_Friesen",
        "e03389ab-b598-4740-833d-8ebe5f832a18",  # encounter for problem (chemotherapy) 1988-04-23
        frozenset(
            {
                Found(
                    "anticoagulant",
                    "DRG",
                    "high",
                    "full",
                    "hold",
                    "MedicationRequest/5e27078a-3ea4-4def-9062-7ed28709e683",
                )
            }
        ),
        # Warfarin 855332 active since 1981-06-27 (atrial fibrillation) -> full -> hold.  "Bleeding from
        # anus" (SNOMED 6072007, active since 1988-04-07) is a symptom, not a coagulation disorder: no
        # bleeding-disorder finding.  Metastatic colon cancer, stroke and hypertension are in no class;
        # leucovorin and oxaliplatin are in no class.  The platelet count taken the same day
        # (1988-04-23, 213.7 10*3/uL, final) is the latest on or before the date and is not below 50:
        # no thrombocytopenia finding.
        "warfarin, a bleeding symptom that is not a bleeding disorder, a normal platelet count",
    ),
]


@pytest.mark.parametrize("case", HAND_CHECKED, ids=lambda c: f"{c.bundle}-{c.encounter_id[:8]}")
def test_hand_checked_findings(case: HandChecked, rules: Rules) -> None:
    result, encounter_ref = screen(load(case.bundle), rules, case.encounter_id)
    assert not result.invalid
    issues = detected_issues(result)
    assert frozenset(found(i) for i in issues) == case.expected, case.why
    for issue in issues:
        # every finding implicates its source and the synthetic massage, for the patient of the bundle
        assert [i["reference"] for i in issue["implicated"]][-1] == f"Procedure/{SYNTHETIC_PROCEDURE}"
        assert issue["patient"]["reference"].startswith("Patient/")
    (outcome,) = [o for o in result.outcomes if o.encounter_ref == encounter_ref]
    held = {f"contraindication-{f.klass}" for f in case.expected if f.action == "hold"}
    assert held <= set(outcome.findings)
    # Synthea codes diagnoses in SNOMED only, so every such Claim is held anyway (no ICD-10-CM diagnosis)
    assert outcome.status == "draft" and "no-diagnosis" in outcome.findings
