"""The direction of imports stays honest: the core never imports a shell, rules never import FHIR models."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ADAPTER = Path(__file__).resolve().parent.parent / "adapter"
CORE = ["model.py", "errors.py", "pipeline.py", "intake", "rules", "output"]
SHELLS = ("adapter.service", "adapter.cli", "adapter.library")
FRAMEWORKS = ("fastapi", "starlette", "sqlalchemy", "httpx", "uvicorn")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _files(*parts: str) -> list[Path]:
    found = []
    for part in parts:
        target = ADAPTER / part
        found += sorted(target.rglob("*.py")) if target.is_dir() else [target]
    return found


@pytest.mark.parametrize("path", _files(*CORE), ids=lambda p: str(p.relative_to(ADAPTER)))
def test_core_never_imports_a_shell_or_a_framework(path: Path) -> None:
    bad = {name for name in _imports(path) if name.startswith(SHELLS + FRAMEWORKS)}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", _files("rules", "model.py"), ids=lambda p: str(p.relative_to(ADAPTER)))
def test_rules_never_import_fhir_models(path: Path) -> None:
    bad = {name for name in _imports(path) if name.startswith(("fhir", "adapter.intake", "adapter.output"))}
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_fhir_models_come_from_r4b_only() -> None:
    for path in _files("."):
        for name in _imports(path):
            if name.startswith("fhir.resources"):
                assert name.startswith("fhir.resources.R4B"), f"{path.name} imports {name}"


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from adapter.service.settings import Settings\nimport fhir.resources.claim\n")
    assert {"adapter.service.settings", "fhir.resources.claim"} <= _imports(bad)
