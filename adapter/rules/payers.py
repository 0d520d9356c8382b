"""Which payer rule pack applies to a Coverage."""

from __future__ import annotations

from adapter.errors import InputError, Problem, RuleDataError
from adapter.model import CoverageFact, Finding, Severity
from adapter.rules.catalog import PayerPack, Rules


def _matches(pack: PayerPack, coverage: CoverageFact) -> bool:
    by_type = any(
        coding.system == m.system and coding.code.startswith(m.code_prefix)
        for m in pack.match.coverage_types
        for coding in coverage.types
    )
    if by_type:
        return True
    payors = {(ident.system, ident.code) for ident in coverage.payor_identifiers}
    return any((m.system, m.value) in payors for m in pack.match.payor_identifiers)


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
