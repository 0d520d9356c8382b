"""ClaimDecisions -> a FHIR R4 Bundle (collection) of Claim, Provenance and one OperationOutcome.

Deterministic: ids come from the input digest and the Encounter identities, times from ``now``;
the same input and rule data give the same dictionary, key order included.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from adapter.deadline import checkpoint
from adapter.digest import name_uuid
from adapter.errors import FINDING_SYSTEM, InputError, to_operation_outcome
from adapter.model import ClaimDecision, Contraindication, Finding, ServiceLine, Severity, UnitDerivation
from adapter.rules.catalog import CPT_SYSTEM
from adapter.rules.diagnoses import ICD10CM_SYSTEM

BASE = "https://theraclaim.org/fhir"
UNIT_DERIVATION_URL = f"{BASE}/StructureDefinition/unit-derivation"
RULE_PACK_BASE = f"{BASE}/rule-pack"
CONTRAINDICATION_SYSTEM = f"{BASE}/CodeSystem/contraindication"
OVERRIDE_SYSTEM = f"{BASE}/CodeSystem/contraindication-override"
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
HCPCS_SYSTEM = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
POS_SYSTEM = "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"
OUTPUT_NAMESPACE = uuid.UUID("0b7c3f0e-93a4-4c57-8d0c-3a3c1f6a52b4").bytes


def output_id(*parts: str) -> str:
    """A stable UUID for an output resource, derived from what identifies it."""
    return name_uuid(OUTPUT_NAMESPACE, "|".join(parts))


def _money(cents: int, currency: str) -> dict[str, Any]:
    return {"value": cents / 100, "currency": currency}


def _concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def _derivation_extension(derivation: UnitDerivation | None) -> dict[str, Any]:
    if derivation is None:
        parts: list[dict[str, Any]] = [
            {"url": "method", "valueCode": "per-service"},
            {"url": "explanation", "valueString": "untimed code: 1 unit per date of service"},
        ]
    else:
        parts = [
            {"url": "method", "valueCode": derivation.method},
            {"url": "rule", "valueString": derivation.rule},
            {"url": "codeMinutes", "valueInteger": derivation.code_minutes},
            {"url": "pooledMinutes", "valueInteger": derivation.pooled_minutes},
            {"url": "fullUnits", "valueInteger": derivation.full_units},
            {"url": "remainderUnit", "valueBoolean": derivation.remainder_unit},
        ]
        if derivation.tie_break:
            parts.append({"url": "tieBreak", "valueString": derivation.tie_break})
        if derivation.visits > 1:
            parts.append({"url": "visits", "valueInteger": derivation.visits})
        if derivation.excluded_minutes:
            parts.append({"url": "excludedMinutes", "valueInteger": derivation.excluded_minutes})
        parts.append({"url": "explanation", "valueString": derivation.text})
    return {"url": UNIT_DERIVATION_URL, "extension": parts}


def _modifier(code: str) -> dict[str, Any]:
    # Two-digit modifiers (59, 51) are CPT's; letter modifiers (GP, CQ, XS, KX) are HCPCS Level II.
    return _concept(CPT_SYSTEM if code.isdigit() else HCPCS_SYSTEM, code)


def _item(
    sequence: int, line: ServiceLine, decision: ClaimDecision, display: str, visit_of: dict[str, str | None]
) -> dict[str, Any]:
    """One Claim.item; ``visit_of``: each Procedure's Encounter (a pooled day's lines name their visits)."""
    item: dict[str, Any] = {
        "extension": [_derivation_extension(line.derivation)],
        "sequence": sequence,
    }
    care_team = [decision.care_team.index(r) + 1 for r in line.performer_refs]
    if care_team:
        item["careTeamSequence"] = care_team
    if line.diagnosis_pointers:
        item["diagnosisSequence"] = list(line.diagnosis_pointers)
    item["productOrService"] = _concept(CPT_SYSTEM if line.cpt[0].isdigit() else HCPCS_SYSTEM, line.cpt, display)
    if line.description:
        item["productOrService"]["text"] = line.description
    if line.modifiers:
        item["modifier"] = [_modifier(m) for m in line.modifiers]
    item["servicedDate"] = line.service_date.isoformat()
    item["locationCodeableConcept"] = _concept(POS_SYSTEM, decision.place_of_service)
    item["quantity"] = {"value": line.units}
    if line.unit_price_cents is not None and line.net_cents is not None:
        item["unitPrice"] = _money(line.unit_price_cents, decision.currency)
        item["net"] = _money(line.net_cents, decision.currency)
    if line.body_sites:
        site = line.body_sites[0]
        item["bodySite"] = _concept(site.system, site.code, site.display)
    visits = dict.fromkeys(visit_of.get(r) or decision.encounter.ref for r in line.procedure_refs)
    item["encounter"] = [{"reference": ref} for ref in visits or (decision.encounter.ref,)]
    return item


def render_claim(decision: ClaimDecision, status: str, stamp: str, cpt_displays: dict[str, str]) -> dict[str, Any]:
    encounter = decision.encounter
    assert decision.billing_provider_ref is not None
    dates = [line.service_date for line in decision.lines]
    claim: dict[str, Any] = {
        "resourceType": "Claim",
        "id": decision.claim_id,
        "status": status,
        "type": _concept("http://terminology.hl7.org/CodeSystem/claim-type", "professional"),
        "use": "claim",
        "patient": {"reference": encounter.patient_ref},
        "billablePeriod": {"start": min(dates).isoformat(), "end": max(dates).isoformat()},
        "created": stamp,
        "provider": {"reference": decision.billing_provider_ref},
        "priority": _concept("http://terminology.hl7.org/CodeSystem/processpriority", "normal"),
    }
    if decision.care_team:
        claim["careTeam"] = [
            {
                "sequence": i,
                "provider": {"reference": ref},
                "role": _concept("http://terminology.hl7.org/CodeSystem/claimcareteamrole", "primary"),
            }
            for i, ref in enumerate(decision.care_team, start=1)
        ]
    if decision.diagnoses:
        claim["diagnosis"] = []
        for diagnosis in decision.diagnoses:
            entry: dict[str, Any] = {
                "sequence": diagnosis.sequence,
                "diagnosisCodeableConcept": _concept(ICD10CM_SYSTEM, diagnosis.code, diagnosis.display),
            }
            if diagnosis.sequence == 1:
                entry["type"] = [_concept("http://terminology.hl7.org/CodeSystem/ex-diagnosistype", "principal")]
            claim["diagnosis"].append(entry)
    claim["insurance"] = [
        {"sequence": i, "focal": i == 1, "coverage": {"reference": coverage.ref}}
        for i, coverage in enumerate(encounter.coverages, start=1)
    ]
    visit_of = {p.ref: p.encounter_ref for p in encounter.procedures}
    claim["item"] = [
        _item(i, line, decision, cpt_displays[line.cpt], visit_of) for i, line in enumerate(decision.lines, start=1)
    ]
    claim["total"] = _money(sum(line.net_cents or 0 for line in decision.lines), decision.currency)
    return claim


def render_provenance(
    decision: ClaimDecision, claim_url: str, stamp: str, input_digest: str, version: str
) -> dict[str, Any]:
    encounter = decision.encounter
    sources = [
        *encounter.visits,
        *(p.ref for p in encounter.procedures),
        *(d.condition_ref for d in decision.diagnoses),
    ]
    if decision.coverage is not None:
        sources.append(decision.coverage.ref)
    return {
        "resourceType": "Provenance",
        "id": output_id("provenance", decision.claim_id, input_digest),
        "target": [{"reference": claim_url}],
        "recorded": stamp,
        "policy": [f"{RULE_PACK_BASE}/{label.replace('@', '|')}" for label in decision.rule_versions],
        "activity": _concept("http://terminology.hl7.org/CodeSystem/v3-DataOperation", "CREATE"),
        "agent": [
            {
                "type": _concept("http://terminology.hl7.org/CodeSystem/provenance-participant-type", "assembler"),
                "who": {"display": f"theraclaim {version}"},
            }
        ],
        "entity": [{"role": "source", "what": {"reference": ref}} for ref in dict.fromkeys(sources)],
    }


def render_detected_issue(decision: ClaimDecision, found: Contraindication, stamp: str) -> dict[str, Any]:
    """One contraindication as a DetectedIssue implicating its source and the procedures."""
    issue: dict[str, Any] = {
        "resourceType": "DetectedIssue",
        "id": output_id(
            "detected-issue", decision.claim_id, found.class_id, found.source_ref, found.tier, *found.procedure_refs
        ),
        "status": "final",
        "code": {
            "coding": [
                {"system": ACT_CODE_SYSTEM, "code": found.kind},
                {"system": CONTRAINDICATION_SYSTEM, "code": found.class_id, "display": found.class_display},
            ]
        },
        "severity": found.severity,
        "patient": {"reference": decision.encounter.patient_ref},
        "identifiedDateTime": stamp,
        "implicated": [
            {"reference": ref} for ref in dict.fromkeys((found.source_ref, *found.evidence_refs, *found.procedure_refs))
        ],
        "detail": found.detail,
    }
    if found.override_reason:
        issue["mitigation"] = [
            {
                "action": {
                    "coding": [{"system": OVERRIDE_SYSTEM, "code": "clinician-override"}],
                    "text": found.override_reason,
                },
                "date": stamp,
            }
        ]
    return issue


def finding_issue(finding: Finding, encounter_ref: str | None) -> dict[str, Any]:
    issue: dict[str, Any] = {
        "severity": finding.severity.value,
        "code": "informational" if finding.severity is Severity.INFORMATION else "business-rule",
        "details": {"coding": [{"system": FINDING_SYSTEM, "code": finding.code}], "text": finding.message},
    }
    context = [f"Encounter {encounter_ref}"] if encounter_ref else []
    if finding.rule:
        context.append(f"rule {finding.rule}")
    if finding.hold:
        context.append("holds the Claim")
    if context:
        issue["diagnostics"] = "; ".join(context)
    if finding.expression:
        issue["expression"] = list(finding.expression)
    return issue


def outcome_summary(decision: ClaimDecision, status: str | None) -> Finding:
    encounter = decision.encounter
    who = f"Encounter {encounter.ref}"
    if len(encounter.visits) > 1:
        who = f"Encounters {', '.join(encounter.visits)} (one date of service)"
    if status is None:
        text = f"{who}: no Claim (nothing billable)"
    else:
        lines = ", ".join(f"{line.cpt}x{line.units}" for line in decision.lines)
        text = f"{who}: Claim {decision.claim_id} {status} ({lines})"
    return Finding("encounter-outcome", Severity.INFORMATION, text, (encounter.path,))


def render_bundle(
    decisions: list[ClaimDecision],
    *,
    now: datetime,
    input_digest: str,
    version: str,
    cpt_displays: dict[str, str],
) -> dict[str, Any]:
    entries = []
    issues = []
    stamp = now.isoformat()  # Claim.created, Provenance.recorded, the ids and the timestamp all state it
    for decision in decisions:
        checkpoint()  # a request's time budget (adapter/deadline.py)
        status = decision.status  # (a property that looks at every finding: read once)
        issues += [finding_issue(f, decision.encounter.ref) for f in decision.findings]
        issues.append(finding_issue(outcome_summary(decision, status), None))
        if status is not None:
            claim_url = f"urn:uuid:{decision.claim_id}"
            entries.append({"fullUrl": claim_url, "resource": render_claim(decision, status, stamp, cpt_displays)})
            provenance = render_provenance(decision, claim_url, stamp, input_digest, version)
            entries.append({"fullUrl": f"urn:uuid:{provenance['id']}", "resource": provenance})
        for found in decision.contraindications:
            detected = render_detected_issue(decision, found, stamp)
            entries.append({"fullUrl": f"urn:uuid:{detected['id']}", "resource": detected})
    outcome_id = output_id("outcome", input_digest, stamp)
    outcome = {"resourceType": "OperationOutcome", "id": outcome_id, "issue": issues}
    entries.append({"fullUrl": f"urn:uuid:{outcome_id}", "resource": outcome})
    return collection(output_id("bundle", input_digest, stamp), stamp, entries)


def collection(bundle_id: str, stamp: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "type": "collection",
        "timestamp": stamp,
        "entry": entries,
    }


def render_invalid(error: InputError, input_digest: str, now: datetime) -> dict[str, Any]:
    """The Bundle returned for invalid input: only the OperationOutcome listing every problem."""
    stamp = now.isoformat()
    outcome_id = output_id("outcome", input_digest, stamp)
    outcome = to_operation_outcome(error, outcome_id)
    return collection(
        output_id("bundle", input_digest, stamp), stamp, [{"fullUrl": f"urn:uuid:{outcome_id}", "resource": outcome}]
    )
