"""The third-party HL7 v2 samples in ../shared/external/ (Microsoft FHIR-Converter, Mirth Connect,
node-hl7-complete): every message is either taken (AA, or AE naming the field) or refused with a
clear AR; none is a crash.  DFT^P03 / P11 are understood; ADT, SIU, BAR, ORM are AR 200 / 201."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import hl7
import pytest

from adapter.intake.hl7v2 import convert_message, packaged_mapping
from adapter.intake.hl7v2.ack import accept_code
from adapter.rules.catalog import Rules
from tests.conftest import NOW, SHARED

FOLDERS = ("hl7v2-microsoft-fhir-converter", "hl7v2-mirth-connect", "hl7v2-node-hl7-complete")
FILES = sorted(
    p
    for folder in FOLDERS
    if (SHARED / "external" / folder).is_dir()
    for p in (SHARED / "external" / folder).iterdir()
    if p.is_file() and p.suffix in (".hl7", ".txt")
)


def _messages(path: Path) -> list[bytes]:
    """The file's messages, split with python-hl7 (a sender frames each one on its own)."""
    text = path.read_bytes().decode("utf-8-sig").replace("\r\n", "\r").replace("\n", "\r")
    return [m.encode() for m in hl7.split_file(text)]


def test_the_samples_are_here() -> None:
    if not FILES:
        pytest.skip(f"{SHARED / 'external'} is not here: the shared reference material is not beside the project")
    assert len(FILES) >= 25


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_sample_message_is_taken_or_clearly_refused(path: Path, rules: Rules) -> None:
    whole = convert_message(path.read_bytes(), rules=rules, mapping=packaged_mapping(), now=NOW, tz=UTC)
    assert whole.code in ("AA", "AE", "AR")  # the file as one frame: never a crash
    assert all(ack.startswith("MSH") for ack in whole.acks(NOW))
    for raw in _messages(path):
        outcome = convert_message(raw, rules=rules, mapping=packaged_mapping(), now=NOW, tz=UTC)
        kind = raw.split(b"|")[8].split(b"^")[0]
        ack = "".join(outcome.acks(NOW))
        enhanced = outcome.header is not None and outcome.header.enhanced
        assert f"MSA|{accept_code(outcome.code, outcome.issues) if enhanced else outcome.code}|" in ack
        if kind == b"DFT":
            assert outcome.code in ("AA", "AE"), outcome.text
            if outcome.code == "AE":
                assert all(issue.location for issue in outcome.issues), outcome.issues
        else:
            assert outcome.code == "AR" and outcome.issues[0].hl7_code in ("200", "201", "202", "203"), outcome.text
            assert "not supported" in outcome.text or "not accepted" in outcome.text
