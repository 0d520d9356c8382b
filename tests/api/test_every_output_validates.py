"""The output kinds no other test hands to the independent validator: error and refusal bodies,
``$validate`` answers, batch responses with failed entries, and ``theraclaim batch`` output lines."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adapter.batch import Job, run_batch
from adapter.intake.wire import Limits
from adapter.rules.claim import ClaimOptions
from tests import bundle_builder as bb
from tests.api.conftest import Api
from tests.conftest import validate_fhir, write_json


def _body(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    assert body["resourceType"] in ("OperationOutcome", "Bundle"), body
    return body


def test_refusals_validate_and_batch_answers_pass_the_validator(api: Api, tmp_path: Path) -> None:
    bodies = {
        "not-found": _body(api.client.get("/fhir/Claim/does-not-exist")),
        "method": _body(api.client.delete("/fhir/metadata")),
        "not-acceptable": _body(api.client.get("/fhir/metadata", headers={"Accept": "application/fhir+xml"})),
        "nothing-billable": _body(api.push(bb.visit(bb.procedure("97124", 7)))),
        "invalid": _body(api.push({"resourceType": "Bundle", "type": "collection", "entry": []})),
        "validate-ok": _body(api.post("/fhir/Procedure/$validate", bb.procedure("97124", 30))),
        "validate-problems": _body(
            api.post("/fhir/Encounter/$validate", {"resourceType": "Encounter", "status": "bogus"})
        ),
    }
    batch = bb.bundle(
        *bb.base_resources(), bb.encounter(), bb.procedure("97124", 30), bb.plan_of_care(), bundle_type="batch"
    )
    batch["entry"].append(
        {
            "resource": {"resourceType": "Procedure", "status": "bogus"},
            "request": {"method": "POST", "url": "Procedure"},
        }
    )
    response = api.post("/fhir", batch)
    assert response.status_code == 200
    bodies["batch-response"] = _body(response)
    assert bodies["batch-response"]["entry"][-1]["response"]["status"].startswith("400")
    validate_fhir([write_json(tmp_path / f"{name}.json", body) for name, body in bodies.items()])


def test_batch_output_lines_pass_the_validator(tmp_path: Path) -> None:
    source = tmp_path / "in.ndjson"
    source.write_text(json.dumps(bb.visit(bb.procedure("97124", 30))) + "\nnot json\n")
    out = io.BytesIO()
    job = Job(
        now=datetime(2025, 1, 15, 12, tzinfo=UTC),
        payer=None,
        options=ClaimOptions(),
        limits=Limits(),
        validation="fields",
        mappings_dir=None,
    )
    run_batch(source, out, job, 1, io.StringIO())
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["entry"][0]["resource"]["resourceType"] for line in lines] == ["Claim", "OperationOutcome"]
    validate_fhir([write_json(tmp_path / f"line-{i}.json", line) for i, line in enumerate(lines)])
