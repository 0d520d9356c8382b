"""Golden cases of contraindication screening (issue 3): every class and rule, allowed and disallowed."""

from __future__ import annotations

from tests.golden_cases import Case

CASES: list[Case] = []
