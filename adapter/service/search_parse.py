"""Read a FHIR search request (R4 search §3.1.1) into a query, strictly or leniently.

Strict (the default, as HAPI): an unknown parameter, modifier or value is a 400 naming it.
``Prefer: handling=lenient``: it is ignored, reported in the Bundle's outcome entry and left out
of the ``self`` link.  Comma separates alternatives (OR), a repeated parameter adds a criterion
(AND); ``\\,``, ``\\|`` and ``\\$`` escape those characters in a value.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from adapter.service.fhirhttp import FhirError
from adapter.service.numbers import wire_int
from adapter.service.search_params import DATE, REFERENCE, SEARCH_PARAMS, Param, date_range, params_of, split_reference
from adapter.service.search_query import Criterion, Cursor, DateValue, Query, ReferenceValue, Sort, TokenValue
from adapter.service.subsetting import element_names

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
SUMMARIES = ("true", "false", "count", "data")
TOTALS = ("none", "estimate", "accurate")
MAX_COUNT = 1000


class SearchProblem(Exception):
    """One thing of the request this server does not support (the parameter it concerns, and why)."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True, slots=True)
class Include:
    source: str  # the type holding the reference
    param: str
    target: str | None


@dataclass
class SearchRequest:
    query: Query
    count: int
    cursor: Cursor | None = None
    includes: list[Include] = field(default_factory=list)
    revincludes: list[Include] = field(default_factory=list)
    summary: str | None = None
    elements: list[str] | None = None
    total: str = "accurate"
    applied: list[tuple[str, str]] = field(default_factory=list)  # for the self and next links
    ignored: list[SearchProblem] = field(default_factory=list)


def split_values(value: str, separator: str = ",") -> list[str]:
    """Split on unescaped separators, then unescape (R4 search §3.1.1.4.x, escaping)."""
    parts, current, escaped = [], [], False
    for char in value:
        if escaped:
            if char not in ",|$\\":
                current.append("\\")
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


def _token(raw: str) -> TokenValue:
    pieces = split_values(raw, "|")
    if len(pieces) == 1:
        return TokenValue(None, pieces[0])
    if len(pieces) != 2:
        raise ValueError("a token is code, system|code, |code or system|")
    system, code = pieces
    if not system and not code:
        raise ValueError("a token needs a system or a code")
    return TokenValue(system, code or None)


def _reference(raw: str, param: Param, modifier: str | None, base: str) -> ReferenceValue:
    if modifier is not None:  # patient:Patient=123
        if "/" in raw:
            raise ValueError(f"with the :{modifier} modifier the value is an id")
        return ReferenceValue(modifier, raw)
    if raw.startswith(("http://", "https://")):
        rtype, rid = split_reference(raw, base)
        return ReferenceValue(rtype, rid) if rtype else ReferenceValue(None, raw, absolute=True)
    if "/" in raw:
        rtype, rid = split_reference(raw)
        if rtype is None:
            raise ValueError("a reference is an id, Type/id or an absolute URL")
        return ReferenceValue(rtype, rid)
    return ReferenceValue(None, raw)


def _date(raw: str) -> DateValue:
    prefix = raw[:2] if raw[:2] in PREFIXES else "eq"
    body = raw[2:] if raw[:2] in PREFIXES else raw
    bounds = date_range(body)
    if bounds is None:
        raise ValueError("not a FHIR date, dateTime or instant (YYYY, YYYY-MM, YYYY-MM-DD, or with a time)")
    return DateValue(prefix, *bounds)


def _criterion(name: str, modifier: str | None, raw: str, param: Param, base: str) -> Criterion:
    if modifier == "missing":
        if raw not in ("true", "false"):
            raise SearchProblem(name, f"{name}:missing takes true or false, got {raw!r}")
        return Criterion(param, "missing", (raw == "true",))
    if (modifier == "not" and param.type == REFERENCE) or (modifier == "not" and param.type == DATE):
        raise SearchProblem(name, f"the :not modifier is not supported on {param.type} parameter {param.name}")
    if modifier not in (None, "not") and not (param.type == REFERENCE and modifier in param.targets):
        raise SearchProblem(f"{name}:{modifier}", f"unsupported modifier :{modifier} on {name}")
    values: list[TokenValue | ReferenceValue | DateValue] = []
    for piece in split_values(raw):
        try:
            if param.type == REFERENCE:
                values.append(_reference(piece, param, modifier, base))
            elif param.type == DATE:
                values.append(_date(piece))
            else:
                values.append(_token(piece))
        except ValueError as error:
            raise SearchProblem(name, f"{name}: {piece!r} is not valid ({error})") from error
    return Criterion(param, modifier if modifier == "not" else None, tuple(values))


def _include(value: str, resource_type: str, reverse: bool) -> Include:
    parts = value.split(":")
    label = "_revinclude" if reverse else "_include"
    if len(parts) not in (2, 3):
        raise SearchProblem(label, f"{label}={value!r}: use Type:parameter or Type:parameter:targetType")
    source, name = parts[0], parts[1]
    target = parts[2] if len(parts) == 3 else None
    param = params_of(source).get(name) if source in SEARCH_PARAMS else None
    if param is None or param.type != REFERENCE:
        raise SearchProblem(label, f"{label}={value!r}: {source} has no reference search parameter {name!r}")
    if target is not None and target not in param.targets:
        raise SearchProblem(label, f"{label}={value!r}: {source}.{name} does not point to {target}")
    if not reverse and source != resource_type:
        raise SearchProblem(label, f"_include={value!r} names {source}, but the search is on {resource_type}")
    if (reverse and resource_type not in param.targets) or (reverse and target not in (None, resource_type)):
        raise SearchProblem(label, f"_revinclude={value!r}: {source}.{name} does not point to {resource_type}")
    return Include(source, name, target)


def _sort(value: str, resource_type: str) -> Sort:
    keys = value.split(",")
    if len(keys) != 1:
        raise SearchProblem("_sort", "only one _sort key is supported")
    descending = value.startswith("-")
    name = value.lstrip("-")
    param = params_of(resource_type).get(name)
    if param is None or not (param.type == DATE or name == "_id"):
        raise SearchProblem("_sort", f"cannot sort {resource_type} by {name!r}; sort by _id, _lastUpdated or a date")
    return Sort(name, descending)


def encode_cursor(cursor: Cursor) -> str:
    raw = orjson.dumps([cursor.snapshot.isoformat(), *(cursor.after or ())])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: str) -> Cursor:
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        snapshot = datetime.fromisoformat(decoded[0]).astimezone(UTC)
        after = (str(decoded[1]), str(decoded[2])) if len(decoded) == 3 else None
        if len(decoded) not in (1, 3):
            raise ValueError(value)
    except (ValueError, TypeError, IndexError, binascii.Error, orjson.JSONDecodeError) as error:
        raise SearchProblem(
            "_cursor", "_cursor is not one this server handed out; follow the Bundle's links"
        ) from error
    return Cursor(snapshot, after)


def _count(value: str) -> int:
    number = wire_int(value)
    if number is None:
        raise SearchProblem("_count", f"_count must be a non-negative integer of ASCII digits, got {value[:24]!r}")
    return min(number, MAX_COUNT)


def _result_parameter(request: SearchRequest, name: str, value: str, resource_type: str) -> None:
    if name == "_count":
        request.count = _count(value)
    elif name == "_sort":
        request.query.sort = _sort(value, resource_type)
    elif name == "_include":
        request.includes.append(_include(value, resource_type, reverse=False))
    elif name == "_revinclude":
        request.revincludes.append(_include(value, resource_type, reverse=True))
    elif name == "_summary":
        if value not in SUMMARIES:
            raise SearchProblem("_summary", f"_summary={value!r} is not supported; use one of {list(SUMMARIES)}")
        request.summary = value
    elif name == "_elements":
        names = [n.strip() for n in value.split(",") if n.strip()]
        unknown = sorted(set(names) - element_names(resource_type))
        if unknown:
            raise SearchProblem("_elements", f"{resource_type} has no element(s) {unknown}")
        request.elements = names
    elif name == "_total":
        if value not in TOTALS:
            raise SearchProblem("_total", f"_total={value!r}: use one of {list(TOTALS)}")
        request.total = value
    elif name == "_cursor":
        request.cursor = decode_cursor(value)


RESULT_PARAMETERS = ("_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total", "_cursor")


def parse_search(
    resource_type: str, params: list[tuple[str, str]], *, lenient: bool, base: str, page_size: int
) -> SearchRequest:
    request = SearchRequest(Query(resource_type), page_size)
    known = params_of(resource_type)
    for key, value in params:
        if "\x00" in key or "\x00" in value:  # no FHIR string holds a NUL, and PostgreSQL refuses one
            raise FhirError(400, "invalid-search", "a search parameter holds a NUL character", "invalid")
        name, _, modifier = key.partition(":")
        try:
            if key == "_format":
                request.applied.append((key, value))
                continue
            if name in RESULT_PARAMETERS:
                if modifier:
                    raise SearchProblem(key, f"{name} takes no modifier")
                _result_parameter(request, name, value, resource_type)
            elif "." in name:
                raise SearchProblem(key, f"chained parameter {key!r} is not supported")
            elif name not in known:
                raise SearchProblem(key, f"unknown search parameter {key!r} for {resource_type}")
            elif value == "":  # an empty parameter is ignored (R4 search §3.1.1.5)
                continue
            else:
                request.query.criteria.append(_criterion(name, modifier or None, value, known[name], base))
        except SearchProblem as problem:
            if problem.parameter not in problem.message:
                problem.message = f"{problem.parameter}: {problem.message}"
            if not lenient:
                raise FhirError(400, "invalid-search", problem.message, "not-supported", problem.parameter) from problem
            request.ignored.append(problem)
            continue
        if name != "_cursor":
            request.applied.append((key, value))
    return request
