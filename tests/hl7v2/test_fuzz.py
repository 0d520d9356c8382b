"""Whatever bytes arrive in a frame, the door answers an ACK (AA / AE / AR) and never raises:
mutations of a valid DFT (bytes cut, repeated, replaced, separators injected) and arbitrary bytes."""

from __future__ import annotations

from datetime import UTC

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.intake.hl7v2 import convert_message, packaged_mapping
from adapter.rules.catalog import load_rules
from tests.conftest import NOW
from tests.hl7v2.messages import dg1, ft1, in1, message, msh, pid, pr1, pv1, visit

VALID = visit("FUZZ-1")
NOISE = st.sampled_from(
    [b"|", b"^", b"~", b"\\", b"&", b"\r", b"\n", b"\x00", b"\xff", b"\xc3", b"MSH|", b"FT1|", b"9"]
)
RULES = load_rules()  # not the fixture: Hypothesis prints a failing example's arguments


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["cut", "insert", "replace"]))
        if action == "cut":
            del data[at : at + draw(st.integers(1, 40))]
        elif action == "insert":
            data[at:at] = draw(NOISE)
        elif at < len(data):
            data[at] = draw(st.integers(0, 255))
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.one_of(mutated(), st.binary(max_size=300)))
def test_any_frame_gets_an_ack(raw: bytes) -> None:
    outcome = convert_message(raw, rules=RULES, mapping=packaged_mapping(), now=NOW, tz=UTC)
    assert outcome.code in ("AA", "AE", "AR")
    for ack in outcome.acks(NOW):
        assert ack.startswith("MSH") and f"\rMSA{ack[3]}" in ack  # in the message's own separators
    if outcome.code != "AA":
        assert outcome.issues, outcome.text


def test_a_diagnosis_pointer_with_text_and_no_code_is_an_error_at_its_component() -> None:
    """Found by this fuzz test under a random seed: FT1-19 "^Low back pain" crashed the mapping."""
    raw = message(
        msh("DX-TEXT-ONLY"),
        pid(),
        pv1("V-1"),
        ft1(1, "97124", "20250114090000-0500", dx="^Low back pain"),
        pr1(1, "97124", "20250114090000-0500", "24"),
        dg1(1, "M54.50", "Low back pain, unspecified"),
        in1(),
    )
    outcome = convert_message(raw, rules=RULES, mapping=packaged_mapping(), now=NOW, tz=UTC)
    assert outcome.code == "AE", outcome.text
    assert [(i.finding, i.location) for i in outcome.issues] == [("hl7v2-missing-diagnosis-code", "FT1[1]-19.1")]
