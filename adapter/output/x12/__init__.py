"""ASC X12 005010X222A1 837P output, rendered from ClaimDecisions as output/fhir.py renders Claims.

The one function other doors need (delivery's folder drop, ``convert --format x12``,
``export-837``, ``$export-x12``) is :func:`interchange_of`: decisions + rule data + clearinghouse
profile + control numbers -> the bytes of one interchange.  Control numbers are passed in:
``fixed_envelope`` without a store, ``adapter.service.x12store.X12Store.allocate`` with one.

- ``claim.py``: ClaimDecision -> X12Claim (checked content of one claim; NotExportable says why not)
- ``render.py``: X12Claims -> ISA/GS/ST.../SE/GE/IEA bytes
- ``profile.py``: clearinghouse profiles (mappings/clearinghouses/*.yaml)
- ``text.py``: delimiters, character set, amounts, NPI check digit
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime

from adapter.model import ClaimDecision
from adapter.output.x12.claim import NotExportable, X12Claim, claim_of
from adapter.output.x12.profile import ClearinghouseProfile, load_profile
from adapter.output.x12.render import Envelope, fixed_envelope, render_interchange
from adapter.rules.catalog import Rules

__all__ = [
    "ClearinghouseProfile",
    "Envelope",
    "NotExportable",
    "X12Claim",
    "claim_of",
    "fixed_envelope",
    "interchange_of",
    "load_profile",
    "render_interchange",
]


def interchange_of(
    decisions: Sequence[ClaimDecision],
    rules: Rules,
    profile: ClearinghouseProfile,
    envelope: Envelope,
    now: datetime,
    frequency: str = "1",
) -> bytes:
    """One 837P interchange of billable, not held decisions (one transaction set each, in order).

    Raises NotExportable listing every problem of every decision (a held or unbillable one
    included) before anything is written.
    """
    claims, problems = [], []
    for decision in decisions:
        if decision.status != "active":
            why = "is held for review (draft)" if decision.status == "draft" else "has no Claim"
            problems.append(
                NotExportable.problem(
                    f"Encounter {decision.encounter.ref} {why}: not exported", decision.encounter.path
                )
            )
            continue
        try:
            claims.append(dataclasses.replace(claim_of(decision, rules), frequency=frequency))
        except NotExportable as error:
            problems += error.problems
    if problems:
        raise NotExportable(problems)
    return render_interchange(claims, profile, envelope, now)
