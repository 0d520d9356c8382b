"""Golden cases of the payer edits (issue 5): every edit fires in one case and not in another."""

from __future__ import annotations

from tests.golden_cases import Case

CASES: list[Case] = []
