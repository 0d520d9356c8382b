"""fhir-kit-client (Node) against a real uvicorn on loopback (issue 11): search, paging, POST
_search, include, resolve, history, operations, If-None-Exist and a transaction.  Needs node and
npm (the package is installed, pinned, into a cache in the temporary folder); skipped otherwise."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

from adapter.rules.catalog import Rules
from adapter.service.api import create_app
from adapter.service.settings import Settings
from tests import bundle_builder as bb
from tests.api.conftest import FHIR_JSON, visit_for
from tests.api.live_server import live_server

PACKAGE = "fhir-kit-client@1.9.2"
SCRIPT = Path(__file__).parent / "node" / "fhir_kit_client.js"


def installed_client() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for fhir-kit-client")
    cache = Path(os.environ.get("THERACLAIM_NODE_CACHE", Path(tempfile.gettempdir()) / "theraclaim-fhir-kit-client"))
    if not (cache / "node_modules" / "fhir-kit-client" / "package.json").exists():
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "package.json").write_text('{"name": "theraclaim-test-clients", "private": true}\n')
        done = subprocess.run(
            ["npm", "install", "--prefix", str(cache), "--no-audit", "--no-fund", "--loglevel=error", PACKAGE],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"npm could not install {PACKAGE}: {done.stderr.strip()[:300]}")
    return cache / "node_modules"


def test_fhir_kit_client(database_url: str, rules: Rules) -> None:
    modules = installed_client()
    app = create_app(Settings(database_url=database_url, page_size=2), rules)
    try:
        with live_server(app) as base:
            for n in range(3):
                response = httpx.post(
                    f"{base}/Claim/$from-encounter",
                    content=json.dumps(
                        visit_for(f"enc-{n}", day=None if n == 0 else f"2025-01-{9 + n:02d}")
                    ),  # one day each
                    headers={"Content-Type": FHIR_JSON},
                )
                assert response.status_code == 201, response.text
            transaction = bb.urn_transaction(e["resource"] for e in visit_for("enc-t", patient="pat-3")["entry"])
            env = os.environ | {
                "FHIR_BASE": base,
                "NODE_PATH": str(modules),
                "VISIT": json.dumps(visit_for("enc-0", minutes=45)),
                "TRANSACTION": json.dumps(transaction),
            }
            done = subprocess.run(
                ["node", str(SCRIPT)], capture_output=True, text=True, timeout=120, env=env, check=False
            )
    finally:
        app.state.store.engine.dispose()
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["fhirVersion"] == "4.0.1"
    assert seen["total"] == 3 and len(seen["paged"]) == 3 == len(set(seen["paged"]))
    assert seen["postedTotal"] == 3
    assert seen["includedTypes"] == ["Claim:match", "Patient:include"]
    assert seen["resolvedPatient"] == "pat-1" and seen["resolvedEncounter"] == "Encounter"
    assert seen["historyType"] == "history"
    assert seen["validateIssues"] >= 2
    assert seen["ifNoneExist"] == "Bundle"
    assert seen["transaction"] == "transaction-response"
    assert seen["unknownParameter"] == 400
