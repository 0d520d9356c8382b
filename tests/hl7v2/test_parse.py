"""er7.parse is hl7.parse with a reused parse plan: the same containers, the same failures.

Compared on the test messages, every third-party sample in ../shared/external/ and mutated
messages (bytes cut, separators injected), so an upgrade of python-hl7 that changes its
internals fails here rather than in the mapping.
"""

from __future__ import annotations

from typing import Any

import hl7
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapter.intake.hl7v2.er7 import PARSE_FAILURES, parse
from tests.hl7v2.messages import visit
from tests.hl7v2.test_samples import FILES, _messages


def _tree(node: Any) -> Any:
    """Every container's type, separators and escape character, down to the strings."""
    if isinstance(node, str):
        return node
    return type(node), node.separator, node.separators, node.esc, [_tree(child) for child in node]


def _outcome(function: Any, text: str) -> Any:
    try:
        message = function(text)
    except PARSE_FAILURES as exc:
        return type(exc)
    return _tree(message)


def _same(text: str) -> None:
    text = text.replace("\r\n", "\r").replace("\n", "\r").strip()
    assert _outcome(parse, text) == _outcome(hl7.parse, text)


def test_the_test_visit_parses_as_hl7_parse_does() -> None:
    _same(visit("PARSE-1").decode())


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_sample_parses_as_hl7_parse_does(path: Any) -> None:
    for raw in _messages(path):
        _same(raw.decode())


@settings(max_examples=200, deadline=None)
@given(
    cuts=st.lists(
        st.tuples(st.integers(0, 600), st.sampled_from(["|", "^", "~", "&", "\\", "\r", "x", ""])), max_size=6
    )
)
def test_mutated_messages_parse_as_hl7_parse_does(cuts: list[tuple[int, str]]) -> None:
    text = visit("PARSE-2").decode()
    for at, insert in cuts:
        text = text[:at] + insert + text[at + 1 :]
    if text.strip().startswith("MSH"):
        _same(text)
