"""The front door names the cause (issue 10): broken rule data is one message and exit 3 from every
entry point, a missing price is reported, ``process(now=)`` refuses what it cannot use, and the
build context leaves local files out."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapter import process
from adapter.rules.catalog import default_mappings_dir
from tests import bundle_builder as bb
from tests.conftest import ROOT

PYTHON = sys.executable
THERACLAIM = Path(sys.executable).parent / "theraclaim"


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    copy = tmp_path / "mappings"
    shutil.copytree(default_mappings_dir(), copy)
    (copy / "payers" / "commercial.yaml").write_text("kind: payer-pack\nunits: [\n")
    return copy


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=120, check=False, env=os.environ | (env or {})
    )


def test_the_rule_data_check_runs_without_a_runpy_warning() -> None:
    done = run(PYTHON, "-m", "adapter.rules.catalog")
    assert done.returncode == 0, done.stderr
    assert "rule data ok" in done.stdout
    assert "RuntimeWarning" not in done.stderr and "Traceback" not in done.stderr


def test_broken_rule_data_is_one_message_and_exit_3_everywhere(broken: Path, tmp_path: Path) -> None:
    env = {"THERACLAIM_MAPPINGS_DIR": str(broken)}
    visit = tmp_path / "visit.json"
    visit.write_text(__import__("json").dumps(bb.visit(bb.procedure("97124", 30))))
    entry_points = {
        "catalog": run(PYTHON, "-m", "adapter.rules.catalog", str(broken)),
        "convert": run(str(THERACLAIM), "convert", str(visit), env=env),
        "batch": run(str(THERACLAIM), "batch", str(visit), "--out", str(tmp_path / "o.ndjson"), env=env),
        "serve": run(str(THERACLAIM), "serve", "--port", "0", env=env),
    }
    for name, done in entry_points.items():
        assert done.returncode == 3, (name, done.returncode, done.stderr[-2000:])
        assert "broken rule data" in done.stderr and "commercial.yaml" in done.stderr, name
        assert "Traceback" not in done.stderr, (name, done.stderr[-2000:])


def test_a_pack_without_a_price_for_a_catalog_code_is_reported(tmp_path: Path) -> None:
    copy = tmp_path / "mappings"
    shutil.copytree(default_mappings_dir(), copy)
    pack = copy / "payers" / "commercial.yaml"
    pack.write_text("\n".join(line for line in pack.read_text().splitlines() if '"97035":' not in line) + "\n")
    done = run(PYTHON, "-m", "adapter.rules.catalog", str(copy))
    assert done.returncode == 0, done.stderr
    assert "no price for CPT 97035 in pack commercial" in done.stderr


def test_process_takes_a_datetime_or_an_iso_string_for_now() -> None:
    document = bb.visit(bb.procedure("97124", 30))
    when = datetime(2025, 1, 15, 12, tzinfo=UTC)
    assert process(document, now=when).bundle == process(document, now="2025-01-15T12:00:00Z").bundle
    assert process(document, now="2025-01-15T12:00:00+00:00").exit_code == 0
    with pytest.raises(TypeError, match="now must be a datetime or an ISO 8601 string, not int"):
        process(document, now=1736942400)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="time zone"):
        process(document, now=datetime(2025, 1, 15, 12))
    with pytest.raises(ValueError, match="ISO 8601"):
        process(document, now="yesterday")


def test_the_docker_build_context_and_git_leave_local_files_out() -> None:
    ignored = (ROOT / "docker" / "Dockerfile.dockerignore").read_text().split()
    assert {".venv/", "*.sqlite3", "*-wal", "*-shm", ".git/"} <= set(ignored)
    gitignore = (ROOT / ".gitignore").read_text().split()
    assert {"*-wal", "*-shm", "*.partial", "bench/results-latest.json"} <= set(gitignore)
