"""``python -m adapter.native_build [--if-stale | --remove]``: compile adapter/native.py's MODULES
with mypyc, in place, and write the manifest that lets them run (adapter/native.py says why)."""

from __future__ import annotations

import ast
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from adapter.native import GROUP, MANIFEST, MODULES, PACKAGE, current, digests, source_of

# What mypyc's type check of MODULES needs (pyproject.toml's [tool.mypy], less what only linting wants).
MYPY_CONFIG = """[mypy]
python_version = 3.11
plugins = pydantic.mypy
[mypy-fhir.resources.*,hl7,hl7.*]
ignore_missing_imports = True
"""


def dependencies() -> set[str]:
    """The adapter modules MODULES import, directly or through one another, less MODULES."""
    found: set[str] = set()
    pending = list(MODULES)
    while pending:
        tree = ast.parse(source_of(pending.pop()).read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # ``from adapter.intake import slim`` imports a module by a package
                names += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            for name in names:
                new = name.startswith("adapter.") and name not in found and name not in MODULES
                if new and source_of(name).is_file():  # (a package's __init__ is not compiled against)
                    found.add(name)
                    pending.append(name)
    return found


def _remove() -> None:
    """Delete the build; unlinked, not overwritten: a running process may have its files mapped."""
    for old in [*PACKAGE.rglob("*.so"), MANIFEST]:
        old.unlink(missing_ok=True)


def build() -> None:
    """Compile MODULES in place and write the manifest last (an interrupted build leaves none:
    its modules are then not used)."""
    from mypyc.build import mypycify  # a build-time tool (the ``native`` extra), not a runtime one
    from setuptools import Distribution  # type: ignore[import-untyped]

    _remove()
    # the sources as compiled, and what they import (one edited meanwhile leaves the build stale)
    compiled = {
        "python": sys.implementation.cache_tag,
        "sources": digests(MODULES),
        "dependencies": digests(sorted(dependencies())),
    }
    root = PACKAGE.parent
    with tempfile.TemporaryDirectory(prefix="theraclaim-mypyc-") as folder:
        work = Path(folder)
        config = work / "mypy.ini"  # its own: an installed package has no pyproject.toml beside it
        config.write_text(MYPY_CONFIG)
        extensions = mypycify(
            ["--config-file", str(config), *(str(source_of(m)) for m in MODULES)],
            opt_level="3",
            group_name=GROUP,
            target_dir=str(work / "c"),
        )
        distribution = Distribution({"name": "theraclaim-native", "ext_modules": extensions})
        command = distribution.get_command_obj("build_ext")
        command.build_lib, command.build_temp = str(work / "lib"), str(work / "temp")
        here = Path.cwd()
        os.chdir(work)  # setuptools must not read a pyproject.toml of the working folder (ours is hatchling's)
        try:
            distribution.run_command("build_ext")
        finally:
            os.chdir(here)
        for built in (work / "lib").rglob("*.so"):
            shutil.copyfile(built, root / built.relative_to(work / "lib"))
    MANIFEST.write_text(json.dumps(compiled, indent=1, sort_keys=True) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Build (always, or ``--if-stale``), or ``--remove`` the compiled build; non-zero if it failed."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--remove"]:
        _remove()
        return 0
    if args not in ([], ["--if-stale"]):
        print("usage: python -m adapter.native_build [--if-stale | --remove]", file=sys.stderr)
        return 2
    if args == ["--if-stale"] and current():
        return 0
    try:
        build()
    except Exception as error:  # a missing compiler or mypyc: the sources still run
        cause = f"{type(error).__name__}: {error}"
        print(f"theraclaim: the mypyc build failed ({cause}); the engine runs from its sources", file=sys.stderr)
        return 1
    print(f"theraclaim: compiled {len(MODULES)} engine modules with mypyc", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
