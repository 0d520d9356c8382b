"""A large document is decoded without orjson's working copy, to exactly what orjson reads.

intake/wire.py decodes a document over ``LARGE`` bytes with msgspec (peak memory, issue 10); the
values and every refusal must stay orjson's: a malformed large document is refused with orjson's
message, and integers orjson reads as floats (beyond 64 bits) are read as floats.
"""

from __future__ import annotations

import tracemalloc

import orjson
import pytest

from adapter.errors import InputError
from adapter.intake.wire import LARGE, Limits, parse_document
from bench.worst import overlapping

PADDING = "x" * 200


def large(body: bytes) -> bytes:
    """``body`` (a JSON object's members) in an object padded past LARGE."""
    filler = b",".join(b'"p%d": "%s"' % (i, PADDING.encode()) for i in range(LARGE // 200 + 10))
    return b"{" + body + b"," + filler + b"}"


@pytest.mark.parametrize(
    "members",
    [
        b'"a": [1, -0, 0.1, 1e-400, 1.7976931348623157e308, 18446744073709551615, -9223372036854775808]',
        b'"big": 18446744073709551616, "small": -9223372036854775809, "huge": 1' + b"0" * 40,
        b'"text": "\\ud83d\\ude00 \\u0000 \\n", "dup": 1, "dup": 2, "nested": {"x": [[{"y": null}]]}',
    ],
)
def test_a_large_document_reads_as_orjson_reads_it(members: bytes) -> None:
    raw = large(members)
    assert len(raw) > LARGE
    document = parse_document(raw, Limits())
    expected = orjson.loads(raw)
    assert document == expected
    assert [type(v) for v in document.values()] == [type(v) for v in expected.values()]


@pytest.mark.parametrize(
    "members",
    [b'"a": NaN', b'"a": 1e400', b'"a": "\\udc00"', b'"a": 01', b'"a": "\xff"', b'"a": 1 /* */'],
)
def test_a_malformed_large_document_gets_orjsons_refusal(members: bytes) -> None:
    raw = large(members)
    with pytest.raises(InputError) as refused:
        parse_document(raw, Limits())
    with pytest.raises(orjson.JSONDecodeError) as orjsons:
        orjson.loads(raw)
    assert [(p.code, p.message) for p in refused.value.problems] == [("not-json", f"not valid JSON: {orjsons.value}")]


def test_a_deep_large_document_is_too_deep() -> None:
    raw = large(b'"a": ' + b"[" * 2000 + b"]" * 2000)
    with pytest.raises(InputError) as refused:
        parse_document(raw, Limits())
    assert [p.code for p in refused.value.problems] == ["too-deep"]


def test_decoding_a_9_mb_bundle_needs_little_more_than_its_values() -> None:
    """orjson alone peaks at ~3x the values it builds (tracemalloc sees its working copy); the
    large-document decode stays near 1x."""
    raw = orjson.dumps(overlapping(19_990))
    peaks = {}
    for name, decode in (("orjson", orjson.loads), ("wire", lambda r: parse_document(r, Limits()))):
        tracemalloc.start()
        try:
            document = decode(raw)
            current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        peaks[name] = peak / current
        del document
    assert peaks["orjson"] > 2 and peaks["wire"] < 1.3, peaks
