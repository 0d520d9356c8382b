"""One DFT message through the pipeline: parse, map to the FHIR Bundle, run the rules, say what to ACK.

Pure: the rules, the mapping, the time zone of times without an offset and ``now`` are arguments.
Storing the result and answering the sender is the service's job (commit first, then the ACK).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from adapter.errors import FINDING_SYSTEM, Problem
from adapter.intake.hl7v2.ack import AckIssue, acknowledgments
from adapter.intake.hl7v2.bundle import Charge, Converted, to_bundle
from adapter.intake.hl7v2.er7 import Header, Parsed, V2Error, check_header, hl7_error_code, read_header
from adapter.intake.hl7v2.mapping import Hl7v2Mapping
from adapter.intake.wire import Limits
from adapter.pipeline import DEFAULT_LIMITS, DEFAULT_OPTIONS, Result, run
from adapter.rules.catalog import CPT_SYSTEM, Rules
from adapter.rules.claim import ClaimOptions


@dataclass
class V2Outcome:
    """What a message came to: the ACK code and text, its issues, and (for AA) what to store."""

    header: Header | None
    code: str  # AA | AE | AR (in enhanced mode the accept acknowledgment is CA / CE / CR, ack.py)
    text: str
    issues: list[AckIssue]
    content_sha256: str
    result: Result | None = None  # the pipeline's output (Claims, OperationOutcome with HL7 locations)
    inputs: tuple[dict[str, Any], ...] = ()  # the FHIR resources the message was mapped to
    input_bundle: dict[str, Any] | None = field(default=None, repr=False)

    def acks(self, now: datetime, seed: str = "") -> list[str]:
        """The ACK messages to send, in order (enhanced mode: accept, then application; maybe none)."""
        return acknowledgments(
            self.header, self.code, self.text, self.issues, now=now, seed=f"{seed}|{self.content_sha256}|{self.code}"
        )

    @property
    def key(self) -> tuple[str, str] | None:
        """The idempotency key: (sending facility with application, MSH-10)."""
        if self.header is None or not self.header.control_id:
            return None
        return f"{self.header.sending_application}|{self.header.sending_facility}", self.header.control_id


def content_digest(raw: bytes) -> str:
    """The message's content hash, the same for the same segments whatever the line ends."""
    normal = raw.lstrip(b"\xef\xbb\xbf").replace(b"\r\n", b"\r").replace(b"\n", b"\r").strip()
    return hashlib.sha256(normal).hexdigest()


def _issues(problems: list[Problem], severity: str = "E") -> list[AckIssue]:
    return [AckIssue(severity, hl7_error_code(p), p.code, p.message, p.expression) for p in problems]


def convert_message(
    raw: bytes,
    *,
    rules: Rules,
    mapping: Hl7v2Mapping,
    now: datetime,
    tz: tzinfo,
    options: ClaimOptions = DEFAULT_OPTIONS,
    limits: Limits = DEFAULT_LIMITS,
    validation: str = "fields",
) -> V2Outcome:
    digest = content_digest(raw)
    header: Header | None = None
    try:
        parsed = read_header(raw, mapping)
        header = parsed.header
        check_header(parsed, mapping)
        converted = to_bundle(parsed, mapping, tz)
    except V2Error as error:
        code = "AR" if error.reject else "AE"
        return V2Outcome(header, code, _refusal(code, error.problems), _issues(error.problems), digest)
    result = run(converted.bundle, rules=rules, now=now, options=options, limits=limits, validation=validation)
    outcome = _locate(result, converted)
    if result.invalid:
        problems = [_problem(issue) for issue in outcome.get("issue", []) if issue.get("severity") == "error"]
        return V2Outcome(header, "AE", _refusal("AE", problems), _issues(problems), digest, result)
    units = _unit_differences(result, converted.charges, rules)
    outcome.setdefault("issue", []).extend(units)
    issues = [
        AckIssue("W", "0", _finding(i), i.get("details", {}).get("text", ""), (i.get("expression") or [None])[0])
        for i in outcome.get("issue", [])
        if i.get("severity") in ("error", "warning")
    ]
    inputs = tuple(e["resource"] for e in converted.bundle["entry"])
    return V2Outcome(header, "AA", _accepted(result, converted), issues, digest, result, inputs, converted.bundle)


def read(raw: bytes, mapping: Hl7v2Mapping, tz: tzinfo) -> tuple[Parsed, Converted]:
    """Parse and map without running the rules (raises V2Error): the FHIR Bundle a message becomes."""
    parsed = read_header(raw, mapping)
    check_header(parsed, mapping)
    return parsed, to_bundle(parsed, mapping, tz)


def _finding(issue: dict[str, Any]) -> str:
    codings = issue.get("details", {}).get("coding", [])
    found = next((c["code"] for c in codings if c.get("system") == FINDING_SYSTEM), issue.get("code", "processing"))
    return str(found)


def _problem(issue: dict[str, Any]) -> Problem:
    return Problem(
        _finding(issue),
        issue.get("details", {}).get("text", ""),
        (issue.get("expression") or [None])[0],
        issue.get("code", "invalid"),
    )


def _locate(result: Result, converted: Converted) -> dict[str, Any]:
    """Each issue's expression gets the HL7 location first, the FHIRPath of the Bundle second."""
    outcome: dict[str, Any] = next(
        e["resource"] for e in result.bundle["entry"] if e["resource"]["resourceType"] == "OperationOutcome"
    )
    for issue in outcome.get("issue", []):
        paths = issue.get("expression") or []
        located = [str(loc) for loc in (converted.locate(p) for p in paths) if loc is not None]
        if located:
            issue["expression"] = list(dict.fromkeys(located)) + paths
    return outcome


def _refusal(code: str, problems: list[Problem]) -> str:
    first = problems[0] if problems else None
    where = f" at {first.expression}" if first and first.expression else ""
    kind = "rejected" if code == "AR" else "refused"
    return f"{kind}: {first.message if first else 'invalid message'}{where}"[:200]


def _accepted(result: Result, converted: Converted) -> str:
    parts = []
    for o in result.outcomes:
        if o.status:
            held = "held for review" if o.status == "draft" else "active"
            lines = ", ".join(f"{cpt} x{units}" for cpt, units in o.lines)
            reason = f": {', '.join(dict.fromkeys(o.findings))}" if o.status == "draft" and o.findings else ""
            parts.append(f"stored; Claim {held} ({lines}){reason}")
        elif o.cancels_claim:
            parts.append("stored; the Encounter is not billable and its Claim is cancelled")
        else:
            parts.append(f"stored; nothing billable: {', '.join(dict.fromkeys(o.findings)) or 'no billable charge'}")
    if converted.ignored:
        parts.append(f"ignored segments: {' '.join(converted.ignored)}")
    return "; ".join(parts)


def _unit_differences(result: Result, charges: list[Charge], rules: Rules) -> list[dict[str, Any]]:
    """FT1-10 (the sender's units) against the Claim's quantity per CPT code and date of service."""
    billed: dict[tuple[str, str], int] = {}
    for entry in result.bundle["entry"]:
        claim = entry["resource"]
        if claim["resourceType"] != "Claim":
            continue
        for item in claim.get("item", []):
            for coding in item["productOrService"]["coding"]:
                if coding["system"] == CPT_SYSTEM:  # the item's first CPT coding
                    if coding["code"]:
                        key = (coding["code"], item.get("servicedDate", ""))
                        billed[key] = billed.get(key, 0) + int(item.get("quantity", {}).get("value", 0))
                    break
    sent: dict[tuple[str, str], list[Charge]] = {}
    for charge in charges:
        cpt = _cpt(charge, rules)
        if cpt and charge.day is not None:
            sent.setdefault((cpt, charge.day), []).append(charge)
    issues = []
    for (cpt, day), group in sorted(sent.items()):
        quantities = [c.quantity for c in group if c.quantity is not None]
        if len(quantities) < len(group):  # a charge without FT1-10: nothing to compare
            continue
        said = sum(quantities)
        computed = billed.get((cpt, day), 0)
        if said != computed:
            where = str(group[0].location.at(10))
            issues.append(
                {
                    "severity": "warning",
                    "code": "business-rule",
                    "details": {
                        "coding": [{"system": FINDING_SYSTEM, "code": "hl7v2-units-differ"}],
                        "text": f"FT1-10 says {said} unit(s) of {cpt} on {day}; the rules compute {computed} "
                        "(the Claim uses the computed units)",
                    },
                    "expression": [where],
                }
            )
    return issues


def _cpt(charge: Charge, rules: Rules) -> str | None:
    if charge.system == CPT_SYSTEM and charge.code in rules.procedures.codes:
        return charge.code
    source = rules.procedures.source_codes.get((charge.system, charge.code))
    return source.cpt if source is not None else None
