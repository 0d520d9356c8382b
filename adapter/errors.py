"""One error tree with stable codes.

Exceptions mean "cannot process": malformed input or broken rule data.  Decisions about a
valid input (a contraindication, a zero-unit code) are Findings, never exceptions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

FINDING_SYSTEM = "https://theraclaim.org/fhir/CodeSystem/finding"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input: a stable code, a message and where (FHIRPath)."""

    code: str
    message: str
    expression: str | None = None
    issue_type: str = "invalid"  # FHIR IssueType code


class TheraclaimError(Exception):
    """Base of every error the adapter raises on purpose."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(p.message for p in problems))


class InputError(TheraclaimError):
    """The payload cannot be processed as it is (exit status 2, HTTP 4xx)."""


class RuleDataError(TheraclaimError):
    """The rule data in mappings/ is broken: a deployment problem, not the sender's."""


def problem_issue(problem: Problem, severity: str = "error") -> dict[str, Any]:
    issue: dict[str, Any] = {
        "severity": severity,
        "code": problem.issue_type,
        "details": {"coding": [{"system": FINDING_SYSTEM, "code": problem.code}], "text": fhir_string(problem.message)},
    }
    if problem.expression:
        issue["expression"] = [fhir_string(problem.expression)]
    return issue


# Control characters and whitespace other than space, tab, CR and LF: not in a FHIR string.
_NOT_FHIR_STRING = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
)


def fhir_string(text: str) -> str:
    """``text`` as a valid FHIR string: what a hostile JSON key can carry into a path or a message
    (control characters, exotic whitespace) is written as a ``\\uXXXX`` escape."""
    return _NOT_FHIR_STRING.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def to_operation_outcome(error: TheraclaimError, resource_id: str | None = None) -> dict[str, Any]:
    outcome: dict[str, Any] = {"resourceType": "OperationOutcome"}
    if resource_id:
        outcome["id"] = resource_id
    outcome["issue"] = [problem_issue(p) for p in error.problems]
    return outcome
