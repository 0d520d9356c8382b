"""Procedure codings -> CPT, through the procedure map.  An unknown code is a finding, never a guess."""

from __future__ import annotations

from adapter.model import Finding, ProcedureFact, Severity
from adapter.rules.catalog import CPT_SYSTEM, ProcedureCatalog


def map_to_cpt(procedure: ProcedureFact, catalog: ProcedureCatalog) -> tuple[str | None, Finding | None]:
    """The CPT code to bill for a Procedure, or None and the finding that says why not.

    A CPT coding is used as it is (when the catalog knows it); otherwise the first coding that
    the table maps (SNOMED CT, theraclaim's technique codes, local systems) decides.
    """
    rule = f"coding/map {'+'.join(catalog.labels)}"
    cpt_codes = [c.code for c in procedure.codes if c.system == CPT_SYSTEM]
    for code in cpt_codes:
        if code in catalog.codes:
            return code, None
    for coding in procedure.codes:
        mapped = catalog.source_codes.get((coding.system, coding.code))
        if mapped is not None:
            return mapped.cpt, None
    if cpt_codes:
        message = f"CPT {', '.join(cpt_codes)} is outside theraclaim's therapy catalog; the Procedure is not billed"
        return None, Finding("cpt-not-in-catalog", Severity.WARNING, message, (f"{procedure.path}.code",), rule)
    shown = ", ".join(f"{c.system}|{c.code}" for c in procedure.codes) or "no coding"
    message = f"no CPT mapping for the Procedure code ({shown}); the Procedure is not billed"
    return None, Finding("unmapped-procedure-code", Severity.WARNING, message, (f"{procedure.path}.code",), rule)
