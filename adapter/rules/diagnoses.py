"""The Claim's ICD-10-CM diagnoses, principal first, from the Encounter's ranked diagnoses and reasons."""

from __future__ import annotations

from adapter.model import Diagnosis, EncounterFacts, Finding, Severity
from adapter.rules.per_patient import once_per_patient

ICD10CM_SYSTEM = "http://hl7.org/fhir/sid/icd-10-cm"
MAX_DIAGNOSES = 12  # X12 837P HI segment (billing-rules.md F8.3)


def claim_diagnoses(encounter: EncounterFacts, findings: list[Finding]) -> tuple[list[Diagnosis], dict[str, int]]:
    """ICD-10-CM diagnoses in claim order (principal first), deduplicated by code."""
    conditions = once_per_patient(
        "conditions-by-ref", (encounter.conditions,), lambda: {c.ref: c for c in encounter.conditions}
    )
    diagnoses: list[Diagnosis] = []
    sequence_of: dict[str, int] = {}
    by_code: dict[str, int] = {}
    for named in encounter.diagnoses:
        if named.condition_ref in sequence_of:
            continue
        condition = conditions.get(named.condition_ref)
        if condition is None:
            findings.append(
                Finding(
                    "diagnosis-other-patient",
                    Severity.WARNING,
                    f"diagnosis {named.condition_ref} is not a Condition of the Encounter's patient",
                    (encounter.path,),
                    "claim/diagnosis",
                )
            )
            continue
        icd = next((c for c in condition.codes if c.system == ICD10CM_SYSTEM), None)
        if icd is None:
            findings.append(
                Finding(
                    "diagnosis-not-icd10cm",
                    Severity.WARNING,
                    "a diagnosis Condition has no ICD-10-CM coding and is left off the Claim",
                    (f"{condition.path}.code",),
                    "claim/diagnosis",
                )
            )
            continue
        key = icd.code.replace(".", "").upper()
        if key not in by_code:
            if len(diagnoses) == MAX_DIAGNOSES:
                findings.append(
                    Finding(
                        "too-many-diagnoses",
                        Severity.WARNING,
                        f"more than {MAX_DIAGNOSES} diagnoses; {icd.code} is left off the Claim",
                        (f"{condition.path}.code",),
                        "claim/diagnosis",
                    )
                )
                continue
            diagnoses.append(Diagnosis(len(diagnoses) + 1, icd.code, icd.display, condition.ref))
            by_code[key] = len(diagnoses)
        sequence_of[named.condition_ref] = by_code[key]
    return diagnoses, sequence_of
