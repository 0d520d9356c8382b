"""theraclaim: FHIR R4 therapy encounters in, CPT 97124 / 97140 claims out.

The names below load on first use (PEP 562), so ``python -m adapter.rules.catalog`` does not
import the module it is about to run (runpy would warn).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from adapter.native import use_sources_unless_current
from adapter.version import __version__

use_sources_unless_current()  # before any engine module is imported: a stale compiled build never runs

if TYPE_CHECKING:
    from adapter.errors import InputError, RuleDataError, TheraclaimError
    from adapter.library import process
    from adapter.pipeline import EncounterOutcome, Result
    from adapter.rules.catalog import Rules, load_rules

_WHERE = {
    "InputError": "adapter.errors",
    "RuleDataError": "adapter.errors",
    "TheraclaimError": "adapter.errors",
    "process": "adapter.library",
    "EncounterOutcome": "adapter.pipeline",
    "Result": "adapter.pipeline",
    "Rules": "adapter.rules.catalog",
    "load_rules": "adapter.rules.catalog",
}

__all__ = [
    "EncounterOutcome",
    "InputError",
    "Result",
    "RuleDataError",
    "Rules",
    "TheraclaimError",
    "__version__",
    "load_rules",
    "process",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'adapter' has no attribute {name!r}")
