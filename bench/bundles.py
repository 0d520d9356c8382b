"""Deterministic benchmark inputs: visits with 1, 3 and 8 procedures, and the Synthea bundles made billable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
SYNTHEA = SHARED / "external" / "synthea-r4-bundles-smart"
CODES = ("97124", "97140", "97110", "97112", "97530", "97116", "97035", "97032")
PATIENT_OWN = (("Patient", "pat-1"), ("Coverage", "cov-1"), ("Condition", "dx-1"), ("ServiceRequest", "poc-1"))
SITES = (("37822005", "Lower back structure"), ("68367000", "Thigh structure"), ("14975008", "Forearm structure"))


def visit(procedures: int, number: int = 0) -> dict[str, Any]:
    """One billable Medicare visit with ``procedures`` timed procedures back to back."""
    from tests import bundle_builder as bb  # the test builders make valid, realistic resources

    encounter = f"Encounter/e{number}"
    start = datetime.fromisoformat("2025-01-14T09:00:00-05:00")
    items = []
    for i in range(procedures):
        minutes = 10 + (number + i * 7) % 25
        items.append(
            bb.procedure(
                CODES[i % len(CODES)],
                minutes,
                start=start.isoformat(),
                proc_id=f"p{number}-{i}",
                encounter=encounter,
                body_site=SITES[i % len(SITES)],
            )
        )
        start += timedelta(minutes=minutes)
    extra = [bb.condition(f"dx-{number}-2", "M62.830", "Muscle spasm of back")]
    return _own_patient(bb.visit(*items, *extra, enc_id=f"e{number}"), number)


def _own_patient(bundle: dict[str, Any], number: int) -> dict[str, Any]:
    """Each numbered visit is another patient's, with the patient's own Coverage, Condition and plan
    of care: one patient's visits of a day make the day's one Claim (issue 12), and pushes that
    share a resource wait for each other's writes of it, which no clinic's pushes would do."""
    if number == 0:
        return bundle
    text = json.dumps(bundle)
    for resource_type, resource_id in PATIENT_OWN:
        text = text.replace(f'{resource_type}/{resource_id}"', f'{resource_type}/{resource_id}-v{number}"')
        text = text.replace(f'"id": "{resource_id}"', f'"id": "{resource_id}-v{number}"')
    return dict(json.loads(text))


def synthea() -> Iterator[tuple[str, dict[str, Any]]]:
    """Each Synthea bundle with a Coverage and a 97124 Procedure on its last Encounter (they have neither)."""
    for path in sorted(SYNTHEA.glob("*.json")):
        bundle = json.loads(path.read_bytes())
        entries = bundle["entry"]
        patient = next(e for e in entries if e["resource"]["resourceType"] == "Patient")
        encounter = [e for e in entries if e["resource"]["resourceType"] == "Encounter"][-1]
        start = datetime.fromisoformat(encounter["resource"]["period"]["start"])
        entries.append(
            {
                "fullUrl": "urn:uuid:bench-coverage",
                "resource": {
                    "resourceType": "Coverage",
                    "status": "active",
                    "beneficiary": {"reference": patient["fullUrl"]},
                    "payor": [{"identifier": {"system": "urn:example:payer-id", "value": "BENCH"}}],
                    "type": {"coding": [{"system": "https://nahdo.org/sopt", "code": "5"}]},
                },
            }
        )
        entries.append(
            {
                "fullUrl": "urn:uuid:bench-procedure",
                "resource": {
                    "resourceType": "Procedure",
                    "status": "completed",
                    "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "97124"}]},
                    "subject": {"reference": patient["fullUrl"]},
                    "encounter": {"reference": encounter["fullUrl"]},
                    "performedPeriod": {"start": start.isoformat(), "end": (start + timedelta(minutes=30)).isoformat()},
                },
            }
        )
        yield path.stem.split("_")[0], bundle
