"""theraclaim: FHIR R4 therapy encounters in, CPT 97124 / 97140 claims out."""

from adapter.errors import InputError, RuleDataError, TheraclaimError
from adapter.library import process
from adapter.pipeline import EncounterOutcome, Result
from adapter.rules.catalog import Rules, load_rules
from adapter.version import __version__

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
