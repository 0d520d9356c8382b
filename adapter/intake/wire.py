"""Bytes -> JSON document, with the limits a public endpoint needs.

orjson refuses documents nested deeper than 1024 levels on its own; the explicit depth limit
below is lower, because no FHIR resource this adapter reads is anywhere near that deep, and a
deep document is far more likely an attack or a bug than a claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import orjson

from adapter.errors import InputError, Problem
from adapter.intake.survey import Survey, survey

LARGE = 1 << 20  # bytes: above this, the decode that needs no working copy (_decode)
_DECODER = msgspec.json.Decoder()
_ORJSON_INTS = range(-(1 << 63), 1 << 64)  # orjson reads an integer outside these as a float


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int = 20 * 1024 * 1024
    max_depth: int = 64
    max_entries: int = 20_000


def _first_too_deep(document: dict[str, Any], max_depth: int) -> str | None:
    """The path of the first element nested deeper than ``max_depth`` (a document known to have one),
    rooted at its resourceType; None when the document names no resourceType to root it at."""
    root = document.get("resourceType")
    if not isinstance(root, str) or not root.isidentifier():
        return None
    stack: list[tuple[str, Any, int]] = [(root, document, 0)]
    while stack:
        path, node, depth = stack.pop()
        if depth == max_depth:
            return path
        children = (
            [(f"{path}.{key}", value) for key, value in node.items()]
            if type(node) is dict
            else [(f"{path}[{i}]", value) for i, value in enumerate(node)]
        )
        stack += [(p, child, depth + 1) for p, child in reversed(children) if type(child) in (dict, list)]
    return None


def _wide_int(document: Any) -> bool:
    """Whether an integer of the document lies outside the range orjson reads as an integer."""
    stack: list[Any] = [document]
    while stack:
        node = stack.pop()
        for value in node.values() if type(node) is dict else node:
            if type(value) is dict or type(value) is list:
                stack.append(value)
            elif type(value) is int and value not in _ORJSON_INTS:
                return True
    return False


def _decode(raw: bytes) -> Any:
    """orjson's reading of the bytes.  While it parses, orjson holds a working copy of several times
    the input (12x peak for a 9 MB Bundle), so a document over LARGE is decoded by msgspec, which
    builds the same values directly; a document msgspec refuses, or whose integers orjson would
    read as floats, is decoded by orjson, so the values and the error messages stay orjson's."""
    if len(raw) > LARGE:
        try:
            document = _DECODER.decode(raw)
        except (msgspec.DecodeError, RecursionError):
            pass
        else:
            if not _wide_int(document):
                return document
    return orjson.loads(raw)


def parse_document(payload: bytes | str, limits: Limits) -> dict[str, Any]:
    """Decode a JSON object, enforcing the size and depth limits. Raises InputError."""
    return parse_surveyed(payload, limits)[0]


def check_document(document: Any, limits: Limits) -> dict[str, Any]:
    """Checks for an already decoded document: a JSON object within the depth limit."""
    return check_surveyed(document, limits)[0]


def parse_surveyed(payload: bytes | str, limits: Limits) -> tuple[dict[str, Any], Survey]:
    """parse_document, with the survey of the document (intake/survey.py) its depth check made."""
    raw = payload.encode("utf-8") if isinstance(payload, str) else payload
    if len(raw) > limits.max_bytes:
        raise InputError(
            [Problem("too-large", f"document is {len(raw)} bytes; the limit is {limits.max_bytes}", None, "too-long")]
        )
    try:
        document = _decode(raw)
    except orjson.JSONDecodeError as exc:
        message = str(exc)
        # orjson says "depth limit exceeded" (older releases: "recursion limit reached")
        code = "too-deep" if "recursion" in message.lower() or "depth limit" in message.lower() else "not-json"
        raise InputError([Problem(code, f"not valid JSON: {message}", None, "structure")]) from exc
    return check_surveyed(document, limits)


def check_surveyed(document: Any, limits: Limits) -> tuple[dict[str, Any], Survey]:
    """check_document, with the survey of the document its depth check made."""
    if not isinstance(document, dict):
        raise InputError(
            [Problem("not-a-resource", "the document is not a JSON object (a FHIR resource)", None, "structure")]
        )
    found = survey(document, limits.max_depth)
    if found.too_deep:
        message = f"the document is nested deeper than {limits.max_depth} levels"
        raise InputError([Problem("too-deep", message, _first_too_deep(document, limits.max_depth), "too-long")])
    return document, found
