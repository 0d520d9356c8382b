"""What the pull doors answer passes the independent FHIR validator (../shared/tools/validate-fhir)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from adapter.pipeline import run
from adapter.rules.catalog import Rules
from adapter.source.client import SourceClient
from adapter.sourcing import amend, fill, pull_encounter
from tests.api.conftest import make_api
from tests.conftest import NOW, validate_fhir, write_json
from tests.source.conftest import server_view
from tests.source.double import Double
from tests.source.test_notify import notification, work


def test_pulled_filled_held_and_queued_outputs_validate(
    double: Double, client: SourceClient, rules: Rules, tmp_path: Path, visit: tuple[dict[str, Any], str]
) -> None:
    files = []
    bundle, report = pull_encounter(client, rules, encounter_id=visit[1])
    files.append(write_json(tmp_path / "pulled.json", amend(run(bundle, rules=rules, now=NOW), report).bundle))
    double.fault("/MedicationRequest?", status=503, retry_after="0")
    pushed = server_view(double)
    pushed["entry"] = [e for e in pushed["entry"] if e["resource"]["resourceType"] != "MedicationRequest"]
    filled, report = fill(client, rules, pushed, "missing")
    files.append(write_json(tmp_path / "held.json", amend(run(filled, rules=rules, now=NOW), report).bundle))
    double.faults.clear()
    with make_api(f"sqlite:///{tmp_path / 'db.sqlite3'}", rules, source_fhir_base=double.base, source_workers=0) as api:
        answer = api.post(
            "/subscriptions/notify", notification("event-notification", 1, [(1, f"Encounter/{visit[1]}")])
        )
        files.append(write_json(tmp_path / "notify-answer.json", answer.json()))
        work(api)
        files.append(write_json(tmp_path / "tasks.json", api.client.get("/subscriptions/pulls").json()))
    validate_fhir(files)
