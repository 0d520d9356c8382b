"""Whatever bytes arrive in a frame, the door answers an ACK (AA / AE / AR) and never raises:
mutations of a valid DFT (bytes cut, repeated, replaced, separators injected) and arbitrary bytes."""

from __future__ import annotations

from datetime import UTC

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapter.intake.hl7v2 import convert_message, packaged_mapping
from adapter.rules.catalog import load_rules
from tests.conftest import NOW
from tests.hl7v2.messages import visit

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
