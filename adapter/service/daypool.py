"""The day's pool across pushes: a later visit of the same patient, billing provider and date of
service gives a new version of the day's Claim (adapter/rules/day.py), never a second Claim.

Each push's document is kept per visit of a day (table ``day_visits``).  When a push concerns a
day that earlier pushes already brought visits for, those visits (each restricted to its own
Encounter and Procedures) are added to the push and the pipeline runs again on the whole day; the
push's own visits replace what was stored for them (a corrected or cancelled visit replaces its
earlier version).  It all happens inside the caller's transaction, which serializes on the day
(``day_lock_keys``, Store.serialize): visits of one day pushed at the same time wait for each other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from adapter.intake.fhir import business_identity
from adapter.pipeline import Result
from adapter.service.store import WriteConflict, day_visits


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


def merged_document(current: dict[str, Any], stored: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The push plus the stored visits of its days, as one collection (the push's entries win)."""
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    sources = [current.get("entry", [])] + [only_visit(document, identity) for identity, document in stored]
    for source in sources:
        for entry in source:
            if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
                continue
            resource = entry["resource"]
            key = entry.get("fullUrl") or f"{resource.get('resourceType')}/{resource.get('id')}"
            if key in seen:
                continue
            seen.add(key)
            entries.append({k: v for k, v in entry.items() if k in ("fullUrl", "resource")})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def _remember(connection: Connection, day: str, visit: str, identity: str, content: str, now: datetime) -> None:
    """Store the visit's document for its day; an unchanged one is not written again (retried pushes
    converge without contention), a concurrent first write of the same visit is a WriteConflict (retry)."""
    where = (day_visits.c.day_hash == day, day_visits.c.visit_hash == visit)
    current = connection.execute(select(day_visits.c.content).where(*where)).scalar_one_or_none()
    if current == content:
        return
    try:
        if current is None:
            connection.execute(
                insert(day_visits).values(
                    day_hash=day, visit_hash=visit, visit_identity=identity, updated_at=now, content=content
                )
            )
        else:
            connection.execute(update(day_visits).where(*where).values(updated_at=now, content=content))
    except IntegrityError as raced:
        raise WriteConflict(f"day visit {visit[:12]}") from raced


def day_lock_keys(result: Result) -> set[str]:
    """What a push of ``result`` writes, for Store.serialize: its days (any visit of the day may
    change the day's Claim) and the Claims it makes or withdraws."""
    return {f"day:{o.day}" for o in result.outcomes if o.day} | {
        f"Claim/{claim}" for o in result.outcomes for claim in (o.claim_id, o.cancels_claim) if claim
    }


def pool_across_pushes(
    connection: Connection,
    result: Result,
    rerun: Callable[[dict[str, Any]], Result],
    now: datetime,
) -> Result:
    """The push's result, re-run over the day's stored visits when there are any; stores the push's visits."""
    document = result.source
    if document is None or result.invalid:
        return result
    days = _days(result)
    if not days:
        return result
    stored: list[tuple[str, dict[str, Any]]] = []
    for day, identities in days.items():
        own = {_hash(i) for i in identities}
        rows = connection.execute(
            select(day_visits.c.visit_hash, day_visits.c.visit_identity, day_visits.c.content).where(
                day_visits.c.day_hash == _hash(day)
            )
        ).all()
        stored += [(row.visit_identity, orjson.loads(row.content)) for row in rows if row.visit_hash not in own]
    content = orjson.dumps(document).decode()
    for day, identities in days.items():
        for identity in identities:
            _remember(connection, _hash(day), _hash(identity), identity, content, now)
    if not stored:
        return result
    pooled = rerun(merged_document(document, stored))
    return result if pooled.invalid else pooled
