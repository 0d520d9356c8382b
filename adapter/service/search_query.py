"""SQL for FHIR search: criteria on the search index, evaluated on the versions current at a
snapshot time, ordered and cut into pages by a keyset (sort value, id).

Every page of one search uses the snapshot of its first page, so a resource changed, created or
moved in between neither repeats nor goes missing: each page sees the database as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, func, literal, not_, or_, select, true
from sqlalchemy.engine import Connection

from adapter.service.search_params import DATE, REFERENCE, Param
from adapter.service.store import Stored, of_tenant, resource_history, search_index, stored_from_row

NEVER = datetime(1, 1, 1)


@dataclass(frozen=True, slots=True)
class TokenValue:
    system: str | None  # None: any system; "": no system
    code: str | None  # None: any code (``system|``)


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    rtype: str | None  # None: any type (a bare id) or a foreign absolute URL (rtype None, absolute)
    rid: str
    absolute: bool = False


@dataclass(frozen=True, slots=True)
class DateValue:
    prefix: str
    low: datetime
    high: datetime


@dataclass(frozen=True, slots=True)
class Criterion:
    param: Param
    modifier: str | None  # None, "not", "missing"
    values: tuple[Any, ...]  # OR-ed; criteria are AND-ed


@dataclass(frozen=True, slots=True)
class Sort:
    name: str  # "_id", "_lastUpdated" or a date parameter
    descending: bool = False


@dataclass(frozen=True, slots=True)
class Cursor:
    snapshot: datetime  # aware UTC
    after: tuple[str, str] | None = None  # the last (sort value, id) of the previous page


@dataclass
class Query:
    resource_type: str
    criteria: list[Criterion] = field(default_factory=list)
    sort: Sort = Sort("_id")
    tenant: str | None = None  # a tenant client's organization: only its resources can match


def _visible(rtype: str, snapshot: datetime) -> ColumnElement[bool]:
    """The version of each resource current at ``snapshot``."""
    history, later = resource_history, resource_history.alias("later")
    newer = exists().where(
        later.c.resource_type == history.c.resource_type,
        later.c.id == history.c.id,
        later.c.version_id > history.c.version_id,
        later.c.last_updated <= snapshot,
    )
    return and_(history.c.resource_type == rtype, history.c.last_updated <= snapshot, not_(newer))


def _rows_of(name: str) -> Any:
    index = search_index.alias()
    return index, and_(
        index.c.resource_type == resource_history.c.resource_type,
        index.c.id == resource_history.c.id,
        index.c.version_id == resource_history.c.version_id,
        index.c.name == name,
    )


def _token(index: Any, value: TokenValue) -> ColumnElement[bool]:
    parts: list[ColumnElement[bool]] = []
    if value.system == "":
        parts.append(index.c.system.is_(None))
    elif value.system is not None:
        parts.append(index.c.system == value.system)
    if value.code is not None:
        parts.append(index.c.code == value.code)
    return and_(true(), *parts)


def _reference(index: Any, value: ReferenceValue) -> ColumnElement[bool]:
    if value.absolute:
        return and_(index.c.system.is_(None), index.c.code == value.rid)
    if value.rtype is None:
        return and_(index.c.system.is_not(None), index.c.code == value.rid)
    return and_(index.c.system == value.rtype, index.c.code == value.rid)


def _date(index: Any, value: DateValue, now: datetime) -> ColumnElement[bool]:
    """R4 date search on ranges: the resource's [low, high) against the value's [low, high)."""
    low: ColumnElement[datetime] = index.c.low
    high: ColumnElement[datetime] = index.c.high
    contained = and_(low >= value.low, high <= value.high)
    if value.prefix == "eq":
        return contained
    if value.prefix == "ne":
        return not_(contained)
    if value.prefix == "gt":
        return high > value.high
    if value.prefix == "lt":
        return low < value.low
    if value.prefix == "ge":
        return or_(high > value.high, contained)
    if value.prefix == "le":
        return or_(low < value.low, contained)
    if value.prefix == "sa":
        return low >= value.high
    if value.prefix == "eb":
        return high <= value.low
    # ap: overlaps the value widened by 10 % of its distance from now (the spec's suggestion)
    distance = abs(now - value.low)
    margin = max(distance / 10, timedelta(0))
    return and_(low < _add(value.high, margin), high > _add(value.low, -margin))


def _add(when: datetime, delta: timedelta) -> datetime:
    try:
        return when + delta
    except OverflowError:
        return datetime.max if delta > timedelta(0) else datetime.min


def _criterion(criterion: Criterion, now: datetime) -> ColumnElement[bool]:
    param = criterion.param
    if param.name == "_id":
        ids = [v.code for v in criterion.values]
        matched = resource_history.c.id.in_(ids)
        return not_(matched) if criterion.modifier == "not" else matched
    index, joined = _rows_of(param.name)
    if criterion.modifier == "missing":
        present = exists().where(joined)
        return or_(*[not_(present) if v else present for v in criterion.values])
    if param.type == REFERENCE:
        alternatives = [_reference(index, v) for v in criterion.values]
    elif param.type == DATE:
        alternatives = [_date(index, v, now) for v in criterion.values]
    else:
        alternatives = [_token(index, v) for v in criterion.values]
    found = exists().where(joined, or_(false(), *alternatives))
    return not_(found) if criterion.modifier == "not" else found


def _sort_key(query: Query) -> Any:
    if query.sort.name == "_id":
        return resource_history.c.id
    if query.sort.name == "_lastUpdated":
        return resource_history.c.last_updated
    index, joined = _rows_of(query.sort.name)
    earliest = select(func.min(index.c.low)).where(joined).scalar_subquery()
    return func.coalesce(earliest, literal(NEVER))


def _where(query: Query, snapshot: datetime) -> ColumnElement[bool]:
    now = snapshot.astimezone(UTC).replace(tzinfo=None)
    tenancy = [of_tenant(resource_history, query.tenant)] if query.tenant is not None else []
    return and_(_visible(query.resource_type, snapshot), *tenancy, *[_criterion(c, now) for c in query.criteria])


def count(connection: Connection, query: Query, snapshot: datetime) -> int:
    statement = select(func.count()).select_from(resource_history).where(_where(query, snapshot))
    return int(connection.execute(statement).scalar_one())


def page(connection: Connection, query: Query, cursor: Cursor, size: int) -> list[tuple[Stored, str]]:
    """One page of matches with the sort value of each (for the next page's cursor)."""
    key = _sort_key(query).label("sort_key")
    where = _where(query, cursor.snapshot)
    if cursor.after is not None:
        value, last_id = cursor.after
        bound = _key_value(query, value)
        rid = resource_history.c.id
        if query.sort.descending:
            where = and_(where, or_(_sort_key(query) < bound, and_(_sort_key(query) == bound, rid < last_id)))
        else:
            where = and_(where, or_(_sort_key(query) > bound, and_(_sort_key(query) == bound, rid > last_id)))
    order = [key.desc(), resource_history.c.id.desc()] if query.sort.descending else [key, resource_history.c.id]
    statement = (
        select(resource_history.c.content, resource_history.c.version_id, resource_history.c.last_updated, key)
        .where(where)
        .order_by(*order)
        .limit(size)
    )
    return [(stored_from_row(row), _key_text(row.sort_key)) for row in connection.execute(statement)]


def _key_text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] in " T":
        return datetime.fromisoformat(value).isoformat()  # SQLite returns a coalesced date as text
    return str(value)


def _key_value(query: Query, text: str) -> Any:
    if query.sort.name == "_id":
        return text
    when = datetime.fromisoformat(text)
    if query.sort.name == "_lastUpdated":
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    return when.replace(tzinfo=None)


def referenced(connection: Connection, stored: list[Stored], name: str) -> list[tuple[str, str]]:
    """The (type, id) targets of reference parameter ``name`` in the given stored versions."""
    if not stored:
        return []
    keys = [(s.resource["resourceType"], s.resource["id"], s.version_id) for s in stored]
    statement = select(search_index.c.system, search_index.c.code).where(
        search_index.c.name == name,
        search_index.c.system.is_not(None),
        or_(
            *[
                and_(search_index.c.resource_type == t, search_index.c.id == i, search_index.c.version_id == v)
                for t, i, v in keys
            ]
        ),
    )
    return list(dict.fromkeys((row.system, row.code) for row in connection.execute(statement)))


def referring(
    connection: Connection,
    source_type: str,
    name: str,
    targets: list[tuple[str, str]],
    snapshot: datetime,
    tenant: str | None = None,
) -> list[Stored]:
    """Versions of ``source_type`` current at ``snapshot`` whose parameter ``name`` points at a target
    (with ``tenant``, only that organization's)."""
    if not targets:
        return []
    index, joined = _rows_of(name)
    points = or_(*[and_(index.c.system == t, index.c.code == i) for t, i in targets])
    tenancy = [of_tenant(resource_history, tenant)] if tenant is not None else []
    statement = (
        select(resource_history.c.content, resource_history.c.version_id, resource_history.c.last_updated)
        .where(_visible(source_type, snapshot), *tenancy, exists().where(joined, points))
        .order_by(resource_history.c.id)
    )
    return [stored_from_row(row) for row in connection.execute(statement)]
