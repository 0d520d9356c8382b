"""Units: the chart, the CMS manual's five worked examples, the AMA rule, and properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapter.rules.units import CodeMinutes, allocate, chart_units

RULE = "test@1.0.0"
T0 = datetime(2025, 1, 14, 9, tzinfo=UTC)


def units(method: str, *services: tuple[str, int]) -> dict[str, int]:
    result = allocate(method, [CodeMinutes(code, minutes, T0) for code, minutes in services], RULE)
    return {code: derivation.units for code, derivation in result.items()}


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [
        (0, 0),
        (7, 0),
        (8, 1),
        (22, 1),
        (23, 2),
        (37, 2),
        (38, 3),
        (52, 3),
        (53, 4),
        (67, 4),
        (68, 5),
        (82, 5),
        (83, 6),
        (97, 6),
        (98, 7),
        (112, 7),
        (113, 8),
        (127, 8),
        (128, 9),
    ],
)
def test_chart_rows(minutes: int, expected: int) -> None:
    assert chart_units(minutes) == expected


@pytest.mark.parametrize(
    ("services", "expected"),
    [
        ((("97112", 24), ("97110", 23)), {"97112": 2, "97110": 1}),  # example 1
        ((("97110", 33), ("97140", 7)), {"97110": 2, "97140": 1}),  # example 3
        (
            (("97110", 18), ("97140", 13), ("97116", 10), ("97035", 8)),
            {"97110": 1, "97140": 1, "97116": 1, "97035": 0},
        ),  # example 4
        ((("97530", 60),), {"97530": 4}),
    ],
)
def test_cms_manual_examples(services: tuple[tuple[str, int], ...], expected: dict[str, int]) -> None:
    assert units("cms-pooled", *services) == expected


def test_cms_example_2_splits_a_tie_never_three_on_one_code() -> None:
    result = units("cms-pooled", ("97112", 20), ("97110", 20))
    assert sorted(result.values()) == [1, 2]
    assert result == {"97110": 2, "97112": 1}  # equal minutes and start: the lower code wins


def test_cms_example_5_bills_one_unit_of_one_code() -> None:
    assert units("cms-pooled", ("97112", 7), ("97110", 7), ("97140", 7)) == {"97112": 0, "97110": 1, "97140": 0}


def test_ama_rule_rounds_each_code_alone() -> None:
    assert units("ama-per-code", ("97124", 24), ("97140", 23)) == {"97124": 2, "97140": 2}
    assert units("ama-per-code", ("97124", 7), ("97140", 7)) == {"97124": 0, "97140": 0}
    assert units("ama-per-code", ("97124", 8), ("97140", 8)) == {"97124": 1, "97140": 1}
    assert units("cms-pooled", ("97124", 8), ("97140", 8)) in ({"97124": 1, "97140": 0}, {"97124": 0, "97140": 1})


def test_tie_break_order_minutes_then_start_then_code() -> None:
    early, late = T0, T0 + timedelta(minutes=30)
    by_minutes = allocate("cms-pooled", [CodeMinutes("97124", 22, late), CodeMinutes("97140", 7, early)], RULE)
    assert (by_minutes["97124"].units, by_minutes["97140"].units) == (2, 0)  # 29 min: 22 has remainder 7 = 7
    assert by_minutes["97124"].tie_break == "more minutes"
    by_start = allocate("cms-pooled", [CodeMinutes("97110", 20, late), CodeMinutes("97140", 20, early)], RULE)
    assert (by_start["97140"].units, by_start["97110"].units) == (2, 1)
    assert by_start["97140"].tie_break == "earlier start"


def test_explanation_names_minutes_rule_and_remainder() -> None:
    derivation = allocate("cms-pooled", [CodeMinutes("97124", 24, T0), CodeMinutes("97140", 23, T0)], RULE)["97124"]
    assert derivation.text == (
        "24 of 47 pooled timed minutes; 1 full unit + 1 for the largest remainder = 2; cms-pooled rule test@1.0.0"
    )


def test_same_code_twice_must_be_merged_first() -> None:
    with pytest.raises(ValueError, match="merge"):
        allocate("cms-pooled", [CodeMinutes("97124", 10), CodeMinutes("97124", 10)], RULE)


CODES = ["97110", "97112", "97116", "97124", "97140", "97530", "97535", "97035"]
visits = st.lists(
    st.tuples(st.sampled_from(CODES), st.integers(0, 140), st.integers(0, 240)),
    min_size=1,
    max_size=8,
    unique_by=lambda t: t[0],
)


def _services(visit: list[tuple[str, int, int]]) -> list[CodeMinutes]:
    return [CodeMinutes(code, minutes, T0 + timedelta(minutes=offset)) for code, minutes, offset in visit]


@given(visits)
def test_pooled_total_never_exceeds_the_chart(visit: list[tuple[str, int, int]]) -> None:
    result = allocate("cms-pooled", _services(visit), RULE)
    assert sum(d.units for d in result.values()) == chart_units(sum(m for _, m, _ in visit))


@given(visits)
def test_no_code_gets_more_than_one_remainder_unit(visit: list[tuple[str, int, int]]) -> None:
    for derivation in allocate("cms-pooled", _services(visit), RULE).values():
        assert derivation.units - derivation.full_units in (0, 1)
        assert derivation.full_units == derivation.code_minutes // 15


@given(visits, st.sampled_from(["cms-pooled", "ama-per-code"]))
def test_fifteen_minutes_always_earn_a_unit(visit: list[tuple[str, int, int]], method: str) -> None:
    for derivation in allocate(method, _services(visit), RULE).values():
        if derivation.code_minutes >= 15:
            assert derivation.units >= derivation.code_minutes // 15 >= 1


@given(visits, st.randoms(use_true_random=False), st.sampled_from(["cms-pooled", "ama-per-code"]))
def test_allocation_ignores_input_order(visit: list[tuple[str, int, int]], rnd: object, method: str) -> None:
    services = _services(visit)
    shuffled = list(services)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert allocate(method, services, RULE) == allocate(method, shuffled, RULE)
