"""Paging of the searches outside the shared search (Task, AuditEvent): the shared search's snapshot
and keyset ``_cursor`` (adapter/service/search_parse.py), so rows written while a client pages
neither shift its pages nor appear in them; its page size read as every wire number is."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

from adapter.service.fhirhttp import FhirError
from adapter.service.numbers import wire_int
from adapter.service.search_parse import SearchProblem, decode_cursor
from adapter.service.search_query import Cursor

MAX_PAGE = 1000


def page_size(value: str | None, default: int) -> int:
    """``_count``: ASCII digits, capped at MAX_PAGE."""
    if value is None:
        return default
    number = wire_int(value)
    if number is None:
        raise FhirError(
            400, "invalid-search", "_count must be a non-negative integer of ASCII digits", "invalid", "_count"
        )
    return min(number, MAX_PAGE)


def request_cursor(value: str | None) -> Cursor:
    """The page's ``_cursor``; a first page starts a snapshot now."""
    if value is None:
        return Cursor(datetime.now(UTC))
    try:
        return decode_cursor(value)
    except SearchProblem as refused:
        raise FhirError(400, "invalid-search", refused.message, "invalid", "_cursor") from refused


def foreign_cursor() -> FhirError:
    """A cursor that decodes but whose position this search never handed out."""
    return FhirError(400, "invalid-search", "_cursor is not one this server handed out", "invalid", "_cursor")


def page_link(base: str, params: list[tuple[str, str]], cursor: str | None) -> str:
    every = [*params, *([("_cursor", cursor)] if cursor else [])]
    return f"{base}?{urlencode(every)}" if every else base
