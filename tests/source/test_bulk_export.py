"""``bulk-export``: $export at the source double, polled, downloaded, deleted; then ``batch --bulk``."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from joserfc.jwk import RSAKey

from adapter.cli import main
from adapter.pipeline import run
from adapter.rules.catalog import Rules
from adapter.source.bulk_export import export
from adapter.source.client import SourceClient, SourceConfig
from tests.conftest import NOW
from tests.source.conftest import Sleeps, of_type, server_view
from tests.source.double import Double
from tests.source.test_pull import claim_of


def test_export_polls_honouring_retry_after_downloads_and_deletes(
    double: Double, client: SourceClient, sleeps: Sleeps, tmp_path: Path
) -> None:
    progress = io.StringIO()
    done = export(client, tmp_path / "out", progress=progress, sleep=sleeps)
    assert sleeps == [3.0, 3.0]  # the status answered 202 with Retry-After: 3 twice
    assert "export: 50% done" in progress.getvalue() and "export: 100% done" in progress.getvalue()
    names = {p.name for p in done.files}
    assert {"Encounter.000.ndjson", "Procedure.000.ndjson", "Coverage.000.ndjson", "Patient.000.ndjson"} <= names
    assert "Claim.000.ndjson" not in names  # only the types the claims need were asked for
    assert done.resources == sum(1 for line in b"".join(p.read_bytes() for p in done.files).splitlines())
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["transactionTime"] == "2025-06-01T00:00:00Z"
    (job,) = double.exports.values()
    assert job["deleted"] and done.deleted


def test_since_asks_only_for_what_changed(
    double: Double, client: SourceClient, sleeps: Sleeps, tmp_path: Path, visit: tuple[dict[str, Any], str]
) -> None:
    double.put(double.resources[("Encounter", visit[1])], version=2, last_updated="2025-07-01T00:00:00Z")
    done = export(client, tmp_path / "out", since="2025-06-01T00:00:00Z", progress=io.StringIO(), sleep=sleeps)
    assert [p.name for p in done.files] == ["Encounter.000.ndjson"] and done.resources == 1
    assert double.count("_since=2025-06-01T00%3A00%3A00Z") == 1


def test_a_429_while_polling_and_a_dropped_download_are_retried(
    double: Double, client: SourceClient, sleeps: Sleeps, tmp_path: Path
) -> None:
    double.export_polls = 0
    double.fault("/bulkstatus/", status=429, retry_after="2", times=1)
    double.fault("/bulkfiles/", drop=True, times=1)
    done = export(client, tmp_path / "out", progress=io.StringIO(), sleep=sleeps)
    assert sleeps[0] == 2.0
    assert done.resources == sum(1 for (t, _) in double.resources if t in {p.name.split(".")[0] for p in done.files})


def test_the_files_are_fetched_with_the_token_when_the_manifest_says_so(
    double: Double, sleeps: Sleeps, tmp_path: Path
) -> None:
    key = RSAKey.generate_key(2048)
    (tmp_path / "key.pem").write_bytes(key.as_pem(private=True))
    double.client_public_key, double.export_polls = key, 0
    config = SourceConfig(base=double.base, client_id=double.client_id, private_key=tmp_path / "key.pem")
    with SourceClient(config, sleep=sleeps) as client:
        done = export(client, tmp_path / "out", progress=io.StringIO(), sleep=sleeps)
    assert done.resources > 0 and double.count("/token") == 1


def test_a_backfill_is_two_commands(
    double: Double,
    rules: Rules,
    tmp_path: Path,
    visit: tuple[dict[str, Any], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    double.export_polls = 0
    monkeypatch.setenv("THERACLAIM_SOURCE_FHIR_BASE", double.base)
    folder = tmp_path / "export"
    assert main(["bulk-export", "--out", str(folder), "--since", "2024-01-01"]) == 0
    assert "next: theraclaim batch --bulk" in capsys.readouterr().err
    out = tmp_path / "out.ndjson"
    assert main(["batch", "--bulk", str(folder), "--out", str(out), "--workers", "1", "--now", NOW.isoformat()]) in (
        0,
        1,
    )
    claims = [c for line in out.read_bytes().splitlines() for c in of_type(orjson.loads(line), "Claim")]
    assert claims == [claim_of(run(server_view(double), rules=rules, now=NOW), visit[1])]


def test_bulk_export_without_a_source_or_with_a_dead_one(
    double: Double, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("THERACLAIM_SOURCE_FHIR_BASE", raising=False)
    assert main(["bulk-export", "--out", str(tmp_path / "o")]) == 2
    assert "THERACLAIM_SOURCE_FHIR_BASE" in capsys.readouterr().err
    monkeypatch.setenv("THERACLAIM_SOURCE_FHIR_BASE", double.base)
    double.fault("$export", status=500)
    assert main(["bulk-export", "--out", str(tmp_path / "o")]) == 4
    assert "source answered 500" in capsys.readouterr().err
