"""The mypyc build of the engine (adapter/native.py): the compiled modules give exactly what their
sources give, and they run only while they match those sources."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adapter import native
from tests.conftest import ROOT

# Every golden input and HL7 v2 message, and inputs that fail in typed code (wrong JSON types, a
# bomb of nesting), through both builds: each prints one line per input, its output's digest.
SCRIPT = r"""
import hashlib, sys
from datetime import UTC, datetime
from pathlib import Path
import orjson
from adapter.intake.hl7v2 import convert_message, packaged_mapping
from adapter.native import compiled_in_use
from adapter.pipeline import run
from adapter.rules.catalog import load_rules

NOW = datetime(2025, 1, 15, 12, tzinfo=UTC)
rules, mapping, fixtures = load_rules(), packaged_mapping(), Path("tests/fixtures")
hostile = [
    b'{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Encounter", '
    b'"id": "e", "status": 5, "period": [], "subject": {"reference": 7}}}]}',
    b'{"resourceType": "Bundle", "entry": ' + b'[' * 5000 + b']' * 5000 + b'}',
    b'{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Procedure", '
    b'"id": "p", "status": "completed", "code": {"coding": [{"system": 1, "code": null}]}}}]}',
]
def digest(value):
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()
for path in sorted(fixtures.glob("golden/*/input.json")):
    print(path.parent.name, digest(run(path.read_bytes(), rules=rules, now=NOW).bundle))
for number, raw in enumerate(hostile):
    print("hostile", number, digest(run(raw, rules=rules, now=NOW).bundle))
for path in sorted(fixtures.glob("hl7v2/*/message.hl7")):
    outcome = convert_message(path.read_bytes(), rules=rules, mapping=mapping, now=NOW, tz=UTC)
    result = outcome.result.bundle if outcome.result is not None else None
    issues = [[i.severity, i.hl7_code, i.finding, i.message, i.location] for i in outcome.issues]
    print(path.parent.name, outcome.code, digest([result, issues, outcome.text, outcome.acks(NOW, "seed")]))
print("compiled" if compiled_in_use() else "sources", file=sys.stderr)
"""


def _outputs(native_build: bool) -> list[str]:
    env = {**os.environ, "THERACLAIM_NATIVE": "1" if native_build else "0"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1] == ("compiled" if native_build else "sources")
    return done.stdout.splitlines()


@pytest.mark.skipif(not native.current(), reason="no current mypyc build (make install builds one)")
def test_the_compiled_engine_gives_what_its_sources_give() -> None:
    compiled, sources = _outputs(native_build=True), _outputs(native_build=False)
    assert len(compiled) > 190  # the golden inputs, the hostile ones and the HL7 v2 messages
    assert compiled == sources


def _copy(tmp_path: Path) -> Path:
    """The package with its compiled build, where the test may edit a source."""
    shutil.copytree(ROOT / "adapter", tmp_path / "adapter", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "mappings", tmp_path / "mappings")
    return tmp_path


def _runs(root: Path, **env: str) -> str:
    """Which build a fresh interpreter runs from ``root``, and where it found adapter.rules.units."""
    script = (
        "import adapter.pipeline, adapter.rules.units as u; from adapter.native import compiled_in_use; "
        "print('compiled' if compiled_in_use() else 'sources', u.__file__)"
    )
    environment = {k: v for k, v in os.environ.items() if k != "THERACLAIM_NATIVE"} | env
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, env=environment, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    kind, where = done.stdout.split()
    assert Path(where).resolve().is_relative_to(root.resolve())
    return f"{kind} {Path(where).suffix}"


@pytest.mark.skipif(not native.current(), reason="no current mypyc build (make install builds one)")
def test_a_build_runs_only_while_every_source_matches_it(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    assert _runs(root) == "compiled .so"
    assert _runs(root, THERACLAIM_NATIVE="0") == "sources .py"
    edited = root / "adapter" / "intake" / "survey.py"  # not the module the script names: all go back
    edited.write_text(edited.read_text() + "\n# an edit after the build\n")
    assert _runs(root) == "sources .py"
    edited.write_text(edited.read_text().removesuffix("\n# an edit after the build\n"))
    assert _runs(root) == "compiled .so"
    imported = root / "adapter" / "model.py"  # not compiled, but compiled against (its classes' types)
    imported.write_text(imported.read_text() + "\n# an edit after the build\n")
    assert _runs(root) == "sources .py"
    imported.write_text(imported.read_text().removesuffix("\n# an edit after the build\n"))
    assert _runs(root) == "compiled .so"
    (root / "adapter" / "_compiled.json").write_text("{")  # a build interrupted before its manifest
    assert _runs(root) == "sources .py"


def test_without_a_manifest_the_sources_run(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    (root / "adapter" / "_compiled.json").unlink(missing_ok=True)
    assert _runs(root) == "sources .py"


def test_the_manifest_names_every_compiled_module() -> None:
    assert len(set(native.MODULES)) == len(native.MODULES)
    for module in native.MODULES:
        assert native.source_of(module).is_file(), module
    if native.current():
        built = json.loads(native.MANIFEST.read_text())
        assert sorted(built["sources"]) == sorted(native.MODULES)
        assert {"adapter.model", "adapter.rules.catalog", "adapter.intake.slim"} <= set(built["dependencies"])
        for module in native.MODULES:
            assert list(native.source_of(module).parent.glob(f"{module.rsplit('.', 1)[1]}.*.so")), module
