"""Which payer rule pack applies to a Coverage."""

from __future__ import annotations

from adapter.errors import InputError, Problem, RuleDataError
from adapter.model import CoverageFact, Finding, Severity
from adapter.rules.catalog import PayerPack, Rules


def _matches(pack: PayerPack, coverage: CoverageFact) -> bool:
    prefixes = pack.match.type_prefixes
    if any(coding.code.startswith(prefixes.get(coding.system, ())) for coding in coverage.types):
        return True
    return not pack.match.payors.isdisjoint((ident.system, ident.code) for ident in coverage.payor_identifiers)


def select_pack(
    rules: Rules, coverage: CoverageFact | None, override: str | None, default_id: str
) -> tuple[PayerPack, list[Finding]]:
    """The override when given; else the first pack (by id) matching the Coverage; else the default.

    Falling back to the default is a warning: the sender should see that nothing matched.
    """
    if override is not None:
        if override not in rules.payers:
            raise InputError(
                [
                    Problem(
                        "unknown-payer", f"no payer pack {override!r}; known: {sorted(rules.payers)}", None, "not-found"
                    )
                ]
            )
        return rules.payers[override], []
    if coverage is not None:
        for pack_id in sorted(rules.payers):
            if _matches(rules.payers[pack_id], coverage):
                return rules.payers[pack_id], []
    if default_id not in rules.payers:
        raise RuleDataError([Problem("unknown-default-payer", f"the default payer pack {default_id!r} is not loaded")])
    pack = rules.payers[default_id]
    where = (f"{coverage.path}.type",) if coverage else ()
    message = f"no payer pack matches the Coverage; the default pack {pack.label} is used"
    return pack, [Finding("payer-defaulted", Severity.WARNING, message, where, "payers/select")]
