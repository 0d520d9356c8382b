"""The pull through the service (``$from-encounter`` with ``encounter``) and the CLI (``convert --encounter``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapter.cli import EXIT_SOURCE_UNAVAILABLE, main
from adapter.pipeline import run
from adapter.rules.catalog import Rules
from tests.api.conftest import OPERATION, assert_outcome, make_api
from tests.conftest import NOW
from tests.source.conftest import of_type, server_view
from tests.source.double import Double
from tests.source.test_pull import claim_of

VOLATILE = ("meta", "created")


def _stable(claim: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in claim.items() if k not in VOLATILE}


def _parameters(**value: Any) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [{"name": "encounter", **value}]}


def test_from_encounter_pulls_by_reference_and_by_identifier(
    double: Double, rules: Rules, tmp_path: Path, visit: tuple[dict[str, Any], str]
) -> None:
    encounter_id = visit[1]
    double.resources[("Encounter", encounter_id)]["identifier"] = [{"system": "urn:example:visits", "value": "V-9"}]
    expected = _stable(claim_of(run(server_view(double), rules=rules, now=NOW), encounter_id))
    with make_api(f"sqlite:///{tmp_path / 'db.sqlite3'}", rules, source_fhir_base=double.base) as api:
        response = api.post(OPERATION, _parameters(valueReference={"reference": f"Encounter/{encounter_id}"}))
        assert response.status_code == 201, response.text[:1000]
        (claim,) = of_type(response.json(), "Claim")
        assert _stable(claim) == expected
        (provenance,) = of_type(response.json(), "Provenance")
        assert f"{double.base}/Encounter/{encounter_id}/_history/1" in str(provenance["entity"])
        again = api.post(OPERATION, _parameters(valueIdentifier={"system": "urn:example:visits", "value": "V-9"}))
        assert again.status_code == 200, again.text[:500]  # the same Claim, no new version
        absolute = api.post(
            OPERATION, _parameters(valueReference={"reference": f"{double.base}/Encounter/{encounter_id}"})
        )
        assert absolute.status_code == 200


@pytest.mark.parametrize(
    ("parameter", "status", "code"),
    [
        ({"valueReference": {"reference": "Encounter/not-there"}}, 422, "encounter-not-on-source"),
        ({"valueReference": {"reference": "http://other.example/fhir/Encounter/x"}}, 422, "encounter-not-on-source"),
        ({"valueString": "x"}, 400, "invalid-parameter"),
    ],
    ids=["unknown", "another-server", "not-a-reference"],
)
def test_bad_encounter_parameters_are_refused(
    double: Double, rules: Rules, tmp_path: Path, parameter: dict[str, Any], status: int, code: str
) -> None:
    with make_api(f"sqlite:///{tmp_path / 'db.sqlite3'}", rules, source_fhir_base=double.base) as api:
        body = assert_outcome(api.post(OPERATION, _parameters(**parameter)), status)
        assert body["issue"][0]["details"]["coding"][0]["code"] == code
        assert body["issue"][0]["expression"] == ["Parameters.parameter[0]"]
        assert api.count("resource_current") == 0


def test_a_dead_source_answers_503_and_stores_nothing(
    double: Double, rules: Rules, tmp_path: Path, visit: tuple[dict[str, Any], str]
) -> None:
    double.fault("/Encounter", status=503, retry_after="0")
    with make_api(f"sqlite:///{tmp_path / 'db.sqlite3'}", rules, source_fhir_base=double.base) as api:
        body = assert_outcome(
            api.post(OPERATION, _parameters(valueReference={"reference": f"Encounter/{visit[1]}"})), 503
        )
        assert body["issue"][0]["details"]["text"] == "the Encounter could not be fetched: source answered 503"
        assert api.count("resource_current") == 0


def test_without_a_source_the_encounter_parameter_is_refused(rules: Rules, tmp_path: Path) -> None:
    with make_api(f"sqlite:///{tmp_path / 'db.sqlite3'}", rules) as api:
        body = assert_outcome(api.post(OPERATION, _parameters(valueReference={"reference": "Encounter/x"})), 400)
        assert body["issue"][0]["details"]["coding"][0]["code"] == "no-source"


def test_a_push_is_filled_by_the_service(
    double: Double, rules: Rules, tmp_path: Path, visit: tuple[dict[str, Any], str]
) -> None:
    pushed = server_view(double)
    pushed["entry"] = [e for e in pushed["entry"] if e["resource"]["resourceType"] != "Coverage"]
    with make_api(f"sqlite:///{tmp_path / 'db.sqlite3'}", rules, source_fhir_base=double.base) as api:
        response = api.push(pushed)
        assert response.status_code == 201, response.text[:500]
        (outcome,) = of_type(response.json(), "OperationOutcome")
        assert any(i["details"]["text"].startswith("filled from the source: ") for i in outcome["issue"])
    with make_api(
        f"sqlite:///{tmp_path / 'db2.sqlite3'}", rules, source_fhir_base=double.base, source_fill="never"
    ) as api:
        assert api.push(pushed).status_code == 422  # no Coverage, and nothing asked of the source


def test_convert_encounter_url(
    double: Double, rules: Rules, visit: tuple[dict[str, Any], str], capsys: pytest.CaptureFixture[str]
) -> None:
    encounter_id = visit[1]
    expected = claim_of(run(server_view(double), rules=rules, now=NOW), encounter_id)
    code = main(["convert", "--encounter", f"{double.base}/Encounter/{encounter_id}", "--now", NOW.isoformat()])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (claim,) = of_type(json.loads(captured.out), "Claim")
    assert claim == expected
    assert "Claim" in captured.err and double.base not in captured.err


def test_convert_encounter_with_a_dead_source(
    double: Double, visit: tuple[dict[str, Any], str], capsys: pytest.CaptureFixture[str]
) -> None:
    double.fault("/Encounter", drop=True)
    code = main(["convert", "--encounter", f"{double.base}/Encounter/{visit[1]}"])
    captured = capsys.readouterr()
    assert code == EXIT_SOURCE_UNAVAILABLE
    assert captured.out == ""
    assert "could not be fetched: source did not answer (RemoteProtocolError)" in captured.err
    assert visit[1] not in captured.err


def test_convert_needs_a_file_or_an_encounter(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert"]) == 2
    assert "one of them" in capsys.readouterr().err
