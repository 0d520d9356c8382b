"""Modifiers the EHR sent are checked, not passed through (issue 12, item 4).

Before the edits run, the modifiers the rules decide themselves are taken off the lines: the
discipline (GP / GO / GN), the assistant modifiers (CQ / CO, per unit), the NCCI bypass modifiers
(59, XE, XS, XP, XU: only where an edit needs them), AT, the telehealth modifier and GY; KX is checked
by the KX edit.  Unknown modifiers (not in the pack's list) are removed or hold the Claim, and a
modifier sent twice is sent once.  After the edits, each sent modifier the rules did not put back is
reported with the rule that decided.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date

from msgspec.structs import replace

from adapter.model import Finding, ProcedureFact, ServiceLine, Severity
from adapter.rules.catalog import PayerPack

BYPASS = ("XE", "XS", "XP", "XU", "59")
DECIDED = ("GP", "GO", "GN", "CQ", "CO", "AT", "95", "GT", "GY", *BYPASS)
WHY = {
    **dict.fromkeys(BYPASS, ("ncci-ptp", "no NCCI edit between this line and another needs a bypass modifier")),
    **dict.fromkeys(("GP", "GO", "GN"), ("modifiers", "it contradicts the discipline of the plan of care")),
    **dict.fromkeys(("CQ", "CO"), ("modifiers", "the assistant's minutes do not make these units 'in part'")),
    "AT": ("chiropractic", "AT is for a chiropractor's active spinal CMT only"),
    "95": ("telehealth", "the visit is not a telehealth visit (or the pack wants no modifier)"),
    "GT": ("telehealth", "the visit is not a telehealth visit (or the pack wants no modifier)"),
    "GY": ("providers", "the service is not excluded for this performer"),
}


@dataclass
class Sent:
    """What the sender attached to each line (by code and date of service)."""

    decided: dict[tuple[str, date], set[str]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


def line_label(line: ServiceLine) -> str:
    """How findings name a line (made only for a finding: most lines have none)."""
    return f"CPT {line.cpt} on {line.service_date.isoformat()}"


def _line_key(line: ServiceLine) -> tuple[str, date]:
    return line.cpt, line.service_date


def take_off(
    lines: list[ServiceLine], procedures: dict[str, ProcedureFact], pack: PayerPack
) -> tuple[list[ServiceLine], Sent]:
    policy = pack.edits.sent_modifiers
    known = set(policy.known) | set(DECIDED) | {"KX", "51"}
    sent = Sent()
    rule = f"edits/sent-modifiers {pack.label}"
    result = []
    for line in lines:
        for ref in line.procedure_refs:
            procedure = procedures.get(ref)
            if procedure is None or len(set(procedure.modifiers)) == len(procedure.modifiers):
                continue  # (most send none: no Counter for them)
            twice = [m for m, n in Counter(procedure.modifiers).items() if n > 1]
            if twice:
                sent.findings.append(
                    Finding(
                        "modifier-duplicate-removed",
                        Severity.WARNING,
                        f"{line_label(line)}: modifier {', '.join(twice)} sent more than once; kept once",
                        (f"{procedure.path}.extension",),
                        rule,
                    )
                )
        if not line.modifiers:
            result.append(line)
            continue
        unknown = [m for m in line.modifiers if m not in known]
        for modifier in unknown:
            hold = policy.unknown == "hold"
            sent.findings.append(
                Finding(
                    "modifier-unknown",
                    Severity.WARNING,
                    f"{line_label(line)}: modifier {modifier} is not one this pack knows; "
                    + ("the Claim is held. Next step: check the modifier with the payer" if hold else "removed"),
                    (),
                    rule,
                    hold=hold,
                )
            )
        decided = {m for m in line.modifiers if m in DECIDED}
        if decided:
            sent.decided.setdefault(_line_key(line), set()).update(decided)
        kept = tuple(m for m in line.modifiers if m not in DECIDED and (m in known or policy.unknown == "hold"))
        result.append(replace(line, modifiers=kept) if kept != line.modifiers else line)
    return result, sent


def report(lines: list[ServiceLine], sent: Sent, pack: PayerPack) -> list[Finding]:
    """The sent modifiers the rules did not put back, each with the rule that decided."""
    policy = pack.edits.sent_modifiers
    final: dict[tuple[str, date], set[str]] = {}
    for line in lines:
        final.setdefault(_line_key(line), set()).update(line.modifiers)
    findings = list(sent.findings)
    for (cpt, day), modifiers in sent.decided.items():
        for modifier in sorted(modifiers - final.get((cpt, day), set())):
            name, why = WHY[modifier]
            hold = modifier in BYPASS and policy.unneeded_bypass == "hold"
            findings.append(
                Finding(
                    "sent-modifier-removed",
                    Severity.WARNING,
                    f"CPT {cpt} on {day.isoformat()}: the sender's modifier {modifier} is not billed: {why} "
                    f"(rule edits/{name})" + ("; the Claim is held" if hold else ""),
                    (),
                    f"edits/sent-modifiers {pack.label}",
                    hold=hold,
                )
            )
    return findings
