"""HL7 v2 DTM values: ASCII digits only, and nothing after the value (HL7 v2.5.1 section 2A.3.22)."""

from __future__ import annotations

from datetime import UTC

import pytest

from adapter.intake.hl7v2 import packaged_mapping
from adapter.intake.hl7v2.datatypes import read_time
from adapter.intake.hl7v2.er7 import V2Error
from adapter.intake.hl7v2.message import read
from tests.hl7v2.messages import dg1, ft1, in1, message, msh, pid, pr1, pv1


def test_a_dtm_with_an_offset_is_read_as_that_moment() -> None:
    instant = read_time("202501140900-0500", UTC)
    assert instant is not None and instant.text == "2025-01-14T09:00:00-05:00"


@pytest.mark.parametrize(
    "value",
    [
        "\u0662\u0660\u0662\u0665\u0660\u0661\u0661\u0664",  # 20250114 in Arabic-Indic digits, which int() reads
        "20250114\n",  # $ would match before the newline
    ],
)
def test_a_dtm_in_other_digits_or_with_a_final_newline_is_not_a_time(value: str) -> None:
    assert read_time(value, UTC) is None


def test_a_time_that_is_not_a_dtm_is_a_problem_at_its_component() -> None:
    raw = message(
        msh("DTM-1"),
        pid(),
        pv1("V-1"),
        ft1(1, "97124", "20250114090000-0500"),
        pr1(1, "97124", "\u0662\u0660\u0662\u0665\u0660\u0661\u0661\u0664", "24"),
        dg1(1, "M54.50", "Low back pain, unspecified"),
        in1(),
    )
    with pytest.raises(V2Error) as raised:
        read(raw, packaged_mapping(), UTC)
    assert [(p.code, p.expression) for p in raised.value.problems] == [("hl7v2-invalid-time", "PR1[1]-5.1")]
