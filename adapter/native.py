"""The engine's modules compiled to C by mypyc, and the guard that runs them only while they match
their sources.

``python -m adapter.native_build`` compiles MODULES in place (a ``.so`` beside each ``.py``, one shared
library ``adapter/_compiled__mypyc*.so``) and writes the manifest ``adapter/_compiled.json``: the
interpreter, and the SHA-256 of every source compiled and of every adapter module they import
(mypyc compiles against their types and constants).  ``make install`` runs it
when the manifest is missing or stale.  The same code runs either way; compiled, a visit's
``run()`` takes about 1.7x less time (bench/README.md).

Python imports a ``.so`` before the ``.py`` beside it, and compiled modules call each other
directly, not through ``sys.modules``: after an edit, one stale module would run old code without
a sign.  So ``use_sources_unless_current()`` (called by ``adapter/__init__.py``, before any of
these is imported) checks the manifest, and unless every source still matches, it makes all of
MODULES load from their sources.  ``THERACLAIM_NATIVE=0`` does the same on purpose (a debugger, a
traceback with every frame, or comparing both builds).

Left as Python, by reason: pydantic models and what builds msgspec Structs from them
(intake/slim.py, onecall.py, validation.py, rules/catalog.py, edit_data.py, rulefile.py,
screening_data.py, hl7v2/mapping.py); model.py, whose dataclasses msgspec reads the fields of
(a compiled class gives it no types: service/daypool.py); intake/shape.py (mypyc 2.4 fails an
assertion on it), and everything the service, CLI and X12 output run around the engine.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType

PACKAGE = Path(__file__).resolve().parent
MANIFEST = PACKAGE / "_compiled.json"
GROUP = "adapter._compiled"  # mypyc's shared library: adapter/_compiled__mypyc.<tag>.so
MODULES = (
    "adapter.deadline",
    "adapter.digest",
    "adapter.errors",
    "adapter.pipeline",
    "adapter.intake.billing",
    "adapter.intake.bindings",
    "adapter.intake.fhir",
    "adapter.intake.parties",
    "adapter.intake.r4_types",
    "adapter.intake.references",
    "adapter.intake.resources",
    "adapter.intake.survey",
    "adapter.intake.values",
    "adapter.intake.wire",
    "adapter.intake.hl7v2.ack",
    "adapter.intake.hl7v2.batch",
    "adapter.intake.hl7v2.bundle",
    "adapter.intake.hl7v2.datatypes",
    "adapter.intake.hl7v2.er7",
    "adapter.intake.hl7v2.message",
    "adapter.output.fhir",
    "adapter.rules.claim",
    "adapter.rules.coding",
    "adapter.rules.contraindications",
    "adapter.rules.dates",
    "adapter.rules.day",
    "adapter.rules.diagnoses",
    "adapter.rules.edits",
    "adapter.rules.lines",
    "adapter.rules.payers",
    "adapter.rules.per_patient",
    "adapter.rules.plausibility",
    "adapter.rules.sent",
    "adapter.rules.sites",
    "adapter.rules.telehealth",
    "adapter.rules.units",
)


def source_of(module: str) -> Path:
    return PACKAGE.parent.joinpath(*module.split(".")).with_suffix(".py")


def digests(modules: Iterable[str]) -> dict[str, str]:
    return {m: hashlib.sha256(source_of(m).read_bytes()).hexdigest() for m in modules}


def current() -> bool:
    """True when the compiled build on disk was made for this interpreter from these very sources
    and the modules they import, as they are now."""
    try:
        built = json.loads(MANIFEST.read_text())
        if built.get("python") != sys.implementation.cache_tag or set(built["sources"]) != set(MODULES):
            return False
        recorded = built["sources"] | built["dependencies"]
        return bool(digests(recorded) == recorded)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


class _SourcesFinder(importlib.abc.MetaPathFinder):
    """Finds each of MODULES at its ``.py`` file, never at the ``.so`` beside it."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MODULES:
            return None
        return importlib.util.spec_from_file_location(fullname, source_of(fullname))


def use_sources_unless_current() -> None:
    """Make MODULES load from their sources unless the compiled build is current (and wanted)."""
    if os.environ.get("THERACLAIM_NATIVE", "1") == "0" or not current():
        sys.meta_path.insert(0, _SourcesFinder())


def compiled_in_use() -> bool:
    """Whether the engine modules imported so far are the compiled ones."""
    loaded = [sys.modules[m] for m in MODULES if m in sys.modules]
    return bool(loaded) and all(str(getattr(m, "__file__", "")).endswith(".so") for m in loaded)
