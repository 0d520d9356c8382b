"""The quick benchmark runs (a smoke test: it asserts that it runs and reports its targets, never a time).

The sections that start servers (HTTP, HL7 v2, delivery, auth) need PostgreSQL and wrk and are
left out; their code paths have their own tests through the same servers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

SKIPPED = ("--skip-http", "--skip-hl7v2", "--skip-delivery", "--skip-auth")


def test_the_quick_benchmark_runs_and_reports_its_targets(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", *SKIPPED, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    sections = {row["issue"] for row in figures["targets"]}
    assert {10, 17} <= sections
    assert "targets met" in done.stdout and "load average" in done.stdout
