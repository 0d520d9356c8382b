"""The day's pool across pushes: a later visit of the same patient, billing provider and date of
service gives a new version of the day's Claim (adapter/rules/day.py), never a second Claim.

Each visit of a day is kept (table ``day_visits``) as read (its facts, JSON) and with the Bundle
that brought it (table ``day_sources``, one copy per Bundle: a Bundle of 32 visits was stored 32
times; a copy no visit names any more is deleted).  When a push concerns a day that earlier pushes
already brought visits for, the rules decide again over the push's visits and the stored ones'
facts, so a push reads only its own Bundle however many visits the day has; a row read by another
adapter version is read again from its Bundle (restricted to its own Encounter and Procedures).
The push's own visits replace what was stored for them (a corrected or cancelled visit replaces its
earlier version).  A stored visit that no longer converts under the current rules is left out with
a held finding on the day's Claim, never silently.  It all happens inside the caller's transaction,
which serializes on the day (``day_lock_keys``, Store.serialize): visits of one day pushed at the
same time wait for each other.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, NamedTuple

import msgspec
import orjson
from sqlalchemy import delete, exists, func, or_, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from adapter.deadline import checkpoint
from adapter.digest import canonical_digest
from adapter.intake.fhir import business_identity
from adapter.model import EncounterFacts
from adapter.pipeline import Result
from adapter.service.store import day_sources, day_visits
from adapter.version import __version__

# The visit as read is stored per row as msgspec JSON; another adapter version's rows are read again
# from their Bundle.  msgspec reads each field back with its type, except Encounter.period's bounds: a
# date or a dateTime, two kinds of JSON string that no one msgspec type holds, so they are read as the
# strings msgspec wrote (a date, or RFC 3339 with its offset) and then by their form (_bound).
_BOUNDS = ("period_start", "period_end")
_STORED_FACTS = msgspec.defstruct(
    "EncounterFacts",
    [(f.name, str | None if f.name in _BOUNDS else f.type, f.default) for f in msgspec.structs.fields(EncounterFacts)],
    frozen=True,
    forbid_unknown_fields=True,
)
_FACTS_DECODER = msgspec.json.Decoder(_STORED_FACTS)
# (the version and the facts' schema: a row written before either changed is read again from its Bundle)
FACTS_FORMAT = (
    f"theraclaim {__version__} facts "
    f"{hashlib.sha256(orjson.dumps(msgspec.json.schema(_STORED_FACTS))).hexdigest()[:16]}"
)


def encode_facts(visit: EncounterFacts) -> str:
    return msgspec.json.encode(visit).decode()


def _bound(text: str | None) -> datetime | date | None:
    if text is None:
        return None
    return msgspec.convert(text, datetime if "T" in text else date)


def decode_facts(stored: str) -> EncounterFacts:
    """The visit ``encode_facts`` wrote (msgspec.DecodeError when ``stored`` is not that)."""
    facts = msgspec.structs.asdict(_FACTS_DECODER.decode(stored))
    return EncounterFacts(**facts | {name: _bound(facts[name]) for name in _BOUNDS})


class StoredVisit(NamedTuple):
    day_hash: str
    visit_hash: str
    visit_identity: str
    updated_at: datetime
    facts: str | None  # the visit as read (encode_facts)
    facts_format: str | None
    source_hash: str | None  # the day_sources row of the Bundle that brought it (None: in the row's content)

    @property
    def version(self) -> str:
        """What identifies this row's content (the pooled Result's digest is made of them)."""
        return self.facts if self.facts is not None else f"{self.visit_hash}@{self.updated_at.isoformat()}"


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _days(result: Result) -> dict[str, tuple[str, ...]]:
    return {o.day: o.visit_identities for o in result.outcomes if o.day}


def _encounter_keys(entry: dict[str, Any]) -> set[str]:
    resource = entry["resource"]
    keys = {f"Encounter/{resource['id']}"} if resource.get("id") else set()
    if isinstance(entry.get("fullUrl"), str):
        keys.add(entry["fullUrl"])
    return keys


def _points_to(reference: str, keys: set[str]) -> bool:
    return reference in keys or any(reference.endswith(f"/{k}") for k in keys if k.startswith("Encounter/"))


def only_visit(document: dict[str, Any], identity: str) -> list[dict[str, Any]]:
    """The entries of a stored document without its other Encounters and their Procedures."""
    entries = [e for e in document.get("entry", []) if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    others: set[str] = set()
    for entry in entries:
        resource = entry["resource"]
        if resource.get("resourceType") == "Encounter":
            own = business_identity(resource) or next(iter(sorted(_encounter_keys(entry))), None)
            if own != identity and identity not in _encounter_keys(entry):
                others |= _encounter_keys(entry)
    kept = []
    for entry in entries:
        resource = entry["resource"]
        if resource.get("resourceType") == "Encounter" and _encounter_keys(entry) & others:
            continue
        encounter = resource.get("encounter")
        reference = encounter.get("reference") if isinstance(encounter, dict) else None
        if resource.get("resourceType") == "Procedure" and isinstance(reference, str) and _points_to(reference, others):
            continue
        kept.append({k: v for k, v in entry.items() if k in ("fullUrl", "resource")})
    return kept


def _remember(
    connection: Connection, visits: list[tuple[str, str, str, str | None]], content: str, now: datetime
) -> str:
    """Store the push's visits (day hash, visit hash, identity, facts) with the Bundle that brought them,
    which is stored once; returns its hash.  An unchanged visit is not written again (retried pushes
    converge without contention); PostgreSQL does it all in one statement."""
    source = _hash(content)
    rows = [
        {
            "day_hash": day,
            "visit_hash": visit,
            "visit_identity": identity,
            "updated_at": now,
            "content": None,
            "source_hash": source,
            "facts": facts,
            "facts_format": FACTS_FORMAT if facts else None,
        }
        for day, visit, identity, facts in visits
    ]
    if connection.dialect.name == "postgresql":
        connection.execute(
            _POSTGRESQL_REMEMBER, {"source": source, "content": content, "rows": orjson.dumps(rows).decode()}
        )
    else:
        connection.execute(
            sqlite.insert(day_sources).on_conflict_do_nothing(), {"content_hash": source, "content": content}
        )
        connection.execute(_sqlite_upsert_visit(), rows)
    return source


# what a visit says; updated_at follows them (``content`` too: a row of before day_sources loses its copy)
_COMPARED = ("content", "source_hash", "facts", "facts_format")
_COLUMNS = ("day_hash", "visit_hash", "visit_identity", "updated_at", *_COMPARED)
_POSTGRESQL_REMEMBER = text(
    "WITH source AS (INSERT INTO day_sources (content_hash, content) VALUES (:source, :content) "
    "ON CONFLICT DO NOTHING) "
    f"INSERT INTO day_visits ({', '.join(_COLUMNS)}) "
    f"SELECT {', '.join(_COLUMNS)} FROM json_populate_recordset(NULL::day_visits, :rows) "
    "ON CONFLICT (day_hash, visit_hash) DO UPDATE SET "
    + ", ".join(f"{name} = EXCLUDED.{name}" for name in ("updated_at", *_COMPARED))
    + " WHERE "
    + " OR ".join(f"day_visits.{name} IS DISTINCT FROM EXCLUDED.{name}" for name in _COMPARED)
)


@functools.cache
def _sqlite_upsert_visit() -> Any:
    statement = sqlite.insert(day_visits)
    c, new = day_visits.c, statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[c.day_hash, c.visit_hash],
        set_={name: new[name] for name in ("updated_at", *_COMPARED)},
        where=or_(*(c[name].is_distinct_from(new[name]) for name in _COMPARED)),
    )


def _forget_sources(connection: Connection, replaced: set[str]) -> None:
    """Delete the stored Bundles of ``replaced`` that no visit names any more (a corrected visit's earlier one)."""
    if replaced:
        no_visit = ~exists().where(day_visits.c.source_hash == day_sources.c.content_hash)
        connection.execute(delete(day_sources).where(day_sources.c.content_hash.in_(sorted(replaced)), no_visit))


def day_lock_keys(result: Result) -> set[str]:
    """What a push of ``result`` writes, for Store.serialize: its days (any visit of the day may
    change the day's Claim) and the Claims it makes or withdraws."""
    return {f"day:{o.day}" for o in result.outcomes if o.day} | {
        f"Claim/{claim}" for o in result.outcomes for claim in (o.claim_id, o.cancels_claim) if claim
    }


def _problem_codes(result: Result) -> str:
    issues = [i for e in result.bundle.get("entry", []) for i in e["resource"].get("issue", [])]
    codes = [
        c["code"]
        for i in issues
        if i.get("severity") in ("error", "fatal")
        for c in i.get("details", {}).get("coding", [])
    ]
    return ", ".join(dict.fromkeys(codes)) or "invalid"


def _encounter_ref(document: dict[str, Any], identity: str) -> str:
    """How the Claim's finding names a stored visit: its Encounter's reference (never its identifiers)."""
    encounter = next(
        (e for e in only_visit(document, identity) if e["resource"].get("resourceType") == "Encounter"), None
    )
    if encounter is None:
        return "(its Encounter is no longer in the stored Bundle)"
    own_id = encounter["resource"].get("id")
    return f"Encounter/{own_id}" if own_id else str(encounter.get("fullUrl"))


def _read_stored(
    connection: Connection, row: StoredVisit, rerun: Callable[[dict[str, Any]], Result]
) -> EncounterFacts | str:
    """The stored visit's facts (from ``facts`` when this adapter version wrote them, else read again from
    its Bundle), or why it no longer converts."""
    if row.facts is not None and row.facts_format == FACTS_FORMAT:
        try:
            return decode_facts(row.facts)
        except msgspec.DecodeError:
            pass  # (written by this version, so not expected) read it from its Bundle instead
    where = (day_visits.c.day_hash == row.day_hash, day_visits.c.visit_hash == row.visit_hash)
    bundle = select(func.coalesce(day_visits.c.content, day_sources.c.content)).select_from(
        day_visits.outerjoin(day_sources, day_sources.c.content_hash == day_visits.c.source_hash)
    )
    document = orjson.loads(connection.execute(bundle.where(*where)).scalar_one())
    converted = rerun(
        {"resourceType": "Bundle", "type": "collection", "entry": only_visit(document, row.visit_identity)}
    )
    visit = next((v for v in converted.visits if v.identity == row.visit_identity), None)
    if converted.invalid or visit is None:
        return f"{_encounter_ref(document, row.visit_identity)} ({_problem_codes(converted)})"
    return visit


def pool_across_pushes(
    connection: Connection,
    result: Result,
    rerun: Callable[[dict[str, Any]], Result],
    now: datetime,
) -> Result:
    """The push's result, decided again with the day's stored visits when there are any; stores the push's
    visits.  ``rerun`` converts a stored Bundle (a row this adapter version did not read)."""
    document, decide = result.source, result.decider
    if document is None or decide is None or result.invalid:
        return result
    days = _days(result)
    if not days:
        return result
    stored: list[tuple[str, StoredVisit]] = []
    earlier_sources: set[str] = set()  # of the push's own visits, as stored before
    for day, identities in days.items():
        own = {_hash(i) for i in identities}
        rows = connection.execute(  # (not the Bundles: a row of this version is pooled from its facts)
            select(*(day_visits.c[name] for name in StoredVisit._fields)).where(day_visits.c.day_hash == _hash(day))
        ).all()
        stored += [(day, StoredVisit(*row)) for row in rows if row.visit_hash not in own]
        earlier_sources |= {row.source_hash for row in rows if row.visit_hash in own and row.source_hash}
    own_visits = {v.identity: v for v in result.visits}
    remembered = []
    for day, identities in days.items():
        for identity in identities:
            checkpoint()  # a request out of time stops between two visits (a visit's facts hold the patient's)
            visit = own_visits.get(identity)
            remembered.append((_hash(day), _hash(identity), identity, None if visit is None else encode_facts(visit)))
    source = _remember(connection, remembered, orjson.dumps(document).decode(), now)
    _forget_sources(connection, earlier_sources - {source})
    if not stored:
        return result
    digest = _hash(canonical_digest(document) + "".join(sorted(_hash(row.version) for _, row in stored)))
    visits: list[tuple[str, EncounterFacts]] = []
    lost: dict[str, tuple[str, ...]] = {}
    for day, row in stored:
        read = _read_stored(connection, row, rerun)
        if isinstance(read, str):
            lost[day] = (*lost.get(day, ()), read)
        else:
            visits.append((day, read))
    pooled = decide([*result.visits, *(v for _, v in visits)], digest, lost)
    if pooled.invalid:  # a stored visit the current rules refuse: find it, leave it out, say so
        kept = []
        for day, visit in visits:
            alone = decide([visit], digest)
            if alone.invalid:
                lost[day] = (*lost.get(day, ()), f"{visit.ref} ({_problem_codes(alone)})")
            else:
                kept.append(visit)
        pooled = decide([*result.visits, *kept], digest, lost)
    return result if pooled.invalid else pooled
