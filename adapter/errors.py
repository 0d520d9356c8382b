"""One error tree with stable codes.

Exceptions mean "cannot process": malformed input or broken rule data.  Decisions about a
valid input (a contraindication, a zero-unit code) are Findings, never exceptions.
"""

from __future__ import annotations

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
        "details": {"coding": [{"system": FINDING_SYSTEM, "code": problem.code}], "text": problem.message},
    }
    if problem.expression:
        issue["expression"] = [problem.expression]
    return issue


def to_operation_outcome(error: TheraclaimError, resource_id: str | None = None) -> dict[str, Any]:
    outcome: dict[str, Any] = {"resourceType": "OperationOutcome"}
    if resource_id:
        outcome["id"] = resource_id
    outcome["issue"] = [problem_issue(p) for p in error.problems]
    return outcome
