"""er7 reads a message as python-hl7 does: every value is ``extract_field`` of ``hl7.parse``, stripped
(and ``components`` / ``subcomponents`` are those values several at a time).

Compared on the test messages, every third-party sample in ../shared/external/ and mutated
messages (bytes cut, separators and escape sequences injected), for every segment and every
field, component, repetition and subcomponent (one past the last of each too), so a change of
python-hl7's reading fails here rather than in the mapping.  A message python-hl7 cannot parse
is unreadable (AR) here too.
"""

from __future__ import annotations

from typing import Any

import hl7
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapter.intake.hl7v2 import packaged_mapping
from adapter.intake.hl7v2.er7 import PARSE_FAILURES, V2Error, read_header
from tests.hl7v2.messages import visit
from tests.hl7v2.test_samples import FILES, _messages


def _reference(segment: Any, field: int, component: int, repetition: int, subcomponent: int) -> str:
    try:
        return str(segment.extract_field(1, field, repetition, component, subcomponent)).strip()
    except (IndexError, ValueError):
        return ""


def _counts(node: Any) -> int:
    """How many children a python-hl7 node has (a plain string is one leaf)."""
    return 1 if isinstance(node, str) else len(node)


def _same(text: str) -> None:
    text = text.lstrip("\ufeff").replace("\r\n", "\r").replace("\n", "\r").strip()
    try:
        parsed = read_header(text.encode(), packaged_mapping())
    except V2Error as error:
        # unreadable: python-hl7 cannot parse it either (a short MSH or bad encoding characters: before any parse)
        if error.problems[0].code == "hl7v2-segment-sequence" and len(text) >= 8:
            with pytest.raises(PARSE_FAILURES):
                hl7.parse(text)
        return
    reference = [s for s in hl7.parse(text) if s and str(s[0])]
    assert [s.id for s in parsed.segments] == [str(s[0]) for s in reference]
    for seg, segment in zip(parsed.segments, reference, strict=True):
        for field in range(1, len(segment) + 2):
            node = segment[field] if field < len(segment) else ""
            assert seg.field_text(field) == (str(node) if field < len(segment) else "")
            for repetition in range(1, _counts(node) + 2):
                rep = node[repetition - 1] if not isinstance(node, str) and repetition <= len(node) else ""
                components = range(1, _counts(rep) + 2)
                assert seg.components(field, repetition, count=len(components)) == [
                    seg.value(field, c, repetition) for c in components
                ]
                for component in components:
                    comp = rep[component - 1] if not isinstance(rep, str) and component <= len(rep) else ""
                    subcomponents = range(1, _counts(comp) + 2)
                    assert seg.subcomponents(field, component, repetition, count=len(subcomponents)) == [
                        seg.value(field, component, repetition, s) for s in subcomponents
                    ]
                    for subcomponent in subcomponents:
                        expected = _reference(segment, field, component, repetition, subcomponent)
                        assert seg.value(field, component, repetition, subcomponent) == expected, (
                            seg.id,
                            field,
                            component,
                            repetition,
                            subcomponent,
                        )
            if field < len(segment) and not isinstance(node, str):
                filled = [
                    r for r in range(1, len(node) + 1) if any(_reference(segment, field, c, r, 1) for c in (1, 2))
                ]
                assert seg.repetitions(field) == filled


def test_the_test_visit_reads_as_hl7_parse_does() -> None:
    _same(visit("PARSE-1").decode())


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_sample_reads_as_hl7_parse_does(path: Any) -> None:
    for raw in _messages(path):
        _same(raw.decode())


@settings(max_examples=300, deadline=None)
@given(
    cuts=st.lists(
        st.tuples(
            st.integers(0, 600),
            st.sampled_from(["|", "^", "~", "&", "\\", "\r", "x", "", " ", "\\S\\", "\\X41\\", "\\.sp2\\", "\\.spx\\"]),
        ),
        max_size=6,
    )
)
def test_mutated_messages_read_as_hl7_parse_does(cuts: list[tuple[int, str]]) -> None:
    text = visit("PARSE-2").decode()
    for at, insert in cuts:
        text = text[:at] + insert + text[at + 1 :]
    if text.strip().startswith("MSH"):
        _same(text)


@pytest.mark.parametrize(
    "header", ["MSH|^~\\&", "MSH|^~\\#", "MSH|&~\\^", "MSH|^~\\&|", "MSHX^~\\&|a|b", "MSH|^~\\&\rMSH"]
)
def test_short_and_odd_headers_read_as_hl7_parse_does(header: str) -> None:
    _same(header)


def test_other_encoding_characters_read_as_hl7_parse_does() -> None:
    _same(visit("PARSE-3").decode().translate(str.maketrans("|^~\\&", "#!*%@")))
