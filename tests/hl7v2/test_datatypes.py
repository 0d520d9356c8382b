"""HL7 v2 DTM values: ASCII digits only, and nothing after the value (HL7 v2.5.1 section 2A.3.22)."""

from __future__ import annotations

from datetime import UTC

import pytest

from adapter.errors import Problem
from adapter.intake.hl7v2.datatypes import read_time
from adapter.intake.hl7v2.er7 import Location

WHERE = Location("PR1", 1, 5)


def test_a_dtm_with_an_offset_is_read_as_that_moment() -> None:
    problems: list[Problem] = []
    instant = read_time("202501140900-0500", WHERE, UTC, problems)
    assert problems == [] and instant is not None and instant.text == "2025-01-14T09:00:00-05:00"


@pytest.mark.parametrize(
    "value",
    [
        "\u0662\u0660\u0662\u0665\u0660\u0661\u0661\u0664",  # 20250114 in Arabic-Indic digits, which int() reads
        "20250114\n",  # $ would match before the newline
    ],
)
def test_a_dtm_in_other_digits_or_with_a_final_newline_is_a_problem(value: str) -> None:
    problems: list[Problem] = []
    assert read_time(value, WHERE, UTC, problems) is None
    assert [p.expression for p in problems] == ["PR1[1]-5"]
