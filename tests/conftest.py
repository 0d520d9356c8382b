"""Shared fixtures: the packaged rule data, a fixed clock, and the independent FHIR validator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from adapter.rules.catalog import Rules, load_rules

# CI runs the property and fuzz tests derandomized (HYPOTHESIS_PROFILE=ci, set by .ci/run), so a
# submission's verdict is reproducible; a developer's run explores new examples every time.
settings.register_profile("ci", derandomize=True, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("THERACLAIM_SHARED_DIR", ROOT.parent / "shared"))  # worktrees: set it
VALIDATE_FHIR = SHARED / "tools" / "validate-fhir"
NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def rules() -> Rules:
    return load_rules()


def shared_path(*parts: str) -> Path:
    """A path under ../shared/, skipping the test with a clear reason when it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not here: the shared reference material (../shared/) is not beside the project")
    return path


def validate_fhir(paths: list[Path], layers: str | None = None) -> None:
    """Run ../shared/tools/validate-fhir on files (all layers, or the listed ones); fail with its
    report when any file has an error."""
    tool = shared_path("tools", "validate-fhir")
    if shutil.which("node") is None:
        pytest.skip("node is not installed: ../shared/tools/validate-fhir needs it")
    chosen = ["--layers", layers] if layers else []
    completed = subprocess.run(
        [str(tool), "--quiet", *chosen, *map(str, paths)], capture_output=True, text=True, timeout=1800, check=False
    )
    assert completed.returncode == 0, f"validate-fhir rejected the output:\n{completed.stdout}\n{completed.stderr}"


def write_json(path: Path, document: Any) -> Path:
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
