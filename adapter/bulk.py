"""``theraclaim batch --bulk DIR``: a FHIR Bulk Data export in, one Bundle per Encounter out.

A Bulk Data export is NDJSON files of resources (one resource type per file as the spec writes
them, ``Encounter.000.ndjson``; mixed files are read too).  The resources are indexed in a SQLite
file in the temporary folder (type, id, patient, encounter, the line), never held in memory all
at once; then each Encounter's Bundle is assembled from the index as a complete push would have
sent it: the Encounter, its Procedures, the patient and the patient's Conditions, medications,
Coverages and screening Observations, and the resources those reference (performers,
Organizations, plans of care, Medications, Devices).  Memory holds one patient at a time.
"""

from __future__ import annotations

import os
import re
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

PATIENT_LEVEL = ("Condition", "MedicationStatement", "MedicationRequest", "Coverage", "Observation")
FOLLOWED = frozenset(
    "Practitioner PractitionerRole Organization Location ServiceRequest CarePlan Device Medication Condition".split()
)
REFERENCE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})\Z")
PATIENT_ELEMENTS = ("subject", "patient", "beneficiary")
BATCH = 500  # rows per insert


@dataclass
class LoadTally:
    resources: int = 0
    duplicates: int = 0
    skipped: int = 0

    def report(self) -> str:
        return f"{self.resources} resources indexed ({self.duplicates} repeated, {self.skipped} lines skipped)"


def _target(value: Any) -> tuple[str, str] | None:
    reference = value.get("reference") if isinstance(value, dict) else None
    match = REFERENCE.match(reference) if isinstance(reference, str) else None
    return (match.group(1), match.group(2)) if match else None


def _patient_of(resource: dict[str, Any]) -> str | None:
    if resource.get("resourceType") == "Patient":
        return str(resource.get("id"))
    for element in PATIENT_ELEMENTS:
        target = _target(resource.get(element))
        if target is not None and target[0] == "Patient":
            return target[1]
    return None


def _encounter_of(resource: dict[str, Any]) -> str | None:
    if resource.get("resourceType") == "Encounter":
        return str(resource.get("id"))
    target = _target(resource.get("encounter"))
    return target[1] if target is not None and target[0] == "Encounter" else None


def _codes(resource: dict[str, Any]) -> set[str]:
    code = resource.get("code")
    codings = code.get("coding") if isinstance(code, dict) else None
    return {f"{c.get('system')}|{c.get('code')}" for c in codings or [] if isinstance(c, dict)}


def _references(node: Any) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                match = REFERENCE.match(value)
                if match:
                    yield match.group(1), match.group(2)
            else:
                yield from _references(value)
    elif isinstance(node, list):
        for item in node:
            yield from _references(item)


class BulkIndex:
    """The export's resources in a SQLite file; closed (and deleted) by ``close``."""

    def __init__(self, folder: Path | None = None) -> None:
        descriptor, name = tempfile.mkstemp(prefix="theraclaim-bulk-", suffix=".sqlite3", dir=folder)
        os.close(descriptor)
        self.path = Path(name)
        self.db = sqlite3.connect(self.path)
        self.db.executescript(
            """
            PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -8000;
            CREATE TABLE r (type TEXT NOT NULL, id TEXT NOT NULL, patient TEXT, encounter TEXT, body BLOB NOT NULL,
                            PRIMARY KEY (type, id));
            """
        )

    def __enter__(self) -> BulkIndex:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()
        self.path.unlink(missing_ok=True)

    def load(self, folder: Path, errors: IO[str]) -> LoadTally:
        """Index every ``*.ndjson`` file of the folder; a line that is not a resource is reported by
        file and line number (never its content) and skipped."""
        tally = LoadTally()
        rows: list[tuple[str, str, str | None, str | None, bytes]] = []
        for path in sorted(folder.glob("*.ndjson")):
            with path.open("rb") as handle:
                for number, line in enumerate(handle, start=1):
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        resource = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        resource = None
                    rtype = resource.get("resourceType") if isinstance(resource, dict) else None
                    rid = resource.get("id") if isinstance(resource, dict) else None
                    if not isinstance(rtype, str) or not isinstance(rid, str):
                        tally.skipped += 1
                        errors.write(f"{path.name} line {number}: not a FHIR resource with an id; skipped\n")
                        continue
                    assert isinstance(resource, dict)
                    rows.append((rtype, rid, _patient_of(resource), _encounter_of(resource), line))
                    if len(rows) >= BATCH:
                        self._insert(rows, tally)
        self._insert(rows, tally)
        self.db.executescript(
            "CREATE INDEX r_patient ON r (patient, type); CREATE INDEX r_encounter ON r (encounter, type);"
        )
        return tally

    def _insert(self, rows: list[tuple[str, str, str | None, str | None, bytes]], tally: LoadTally) -> None:
        before = self.db.total_changes
        self.db.executemany("INSERT OR IGNORE INTO r VALUES (?, ?, ?, ?, ?)", rows)
        added = self.db.total_changes - before
        tally.resources += added
        tally.duplicates += len(rows) - added
        rows.clear()

    def _get(self, rtype: str, rid: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT body FROM r WHERE type = ? AND id = ?", (rtype, rid)).fetchone()
        return orjson.loads(row[0]) if row else None

    def _all(self, query: str, *args: str) -> list[dict[str, Any]]:
        return [orjson.loads(body) for (body,) in self.db.execute(query, args)]

    def encounter_bundles(self, observation_codes: tuple[str, ...]) -> Iterator[tuple[int, bytes]]:
        """(number, Bundle JSON) per Encounter, patient by patient."""
        wanted = set(observation_codes)
        current: str | None = None
        patient_level: list[dict[str, Any]] = []
        encounters = self.db.execute("SELECT id, patient FROM r WHERE type = 'Encounter' ORDER BY patient, id")
        for number, (encounter_id, patient_id) in enumerate(list_cursor(encounters), start=1):
            if patient_id != current:
                current = patient_id
                patient_level = self._patient_level(patient_id, wanted) if patient_id else []
            encounter = self._get("Encounter", encounter_id)
            assert encounter is not None
            procedures = self._all("SELECT body FROM r WHERE encounter = ? AND type = 'Procedure'", encounter_id)
            resources = [encounter, *procedures, *patient_level]
            yield number, orjson.dumps(self._bundle(resources))

    def _patient_level(self, patient_id: str, wanted: set[str]) -> list[dict[str, Any]]:
        found = self._all("SELECT body FROM r WHERE type = 'Patient' AND id = ?", patient_id)
        marks = ",".join("?" for _ in PATIENT_LEVEL)
        query = f"SELECT body FROM r WHERE patient = ? AND type IN ({marks}) ORDER BY type, id"
        for resource in self._all(query, patient_id, *PATIENT_LEVEL):
            if resource["resourceType"] != "Observation" or _codes(resource) & wanted:
                found.append(resource)
        return found

    def _bundle(self, resources: list[dict[str, Any]]) -> dict[str, Any]:
        """The resources plus those they reference (two levels: a PractitionerRole's Practitioner)."""
        held = {(r["resourceType"], r["id"]) for r in resources}
        frontier = resources
        for _ in range(2):
            added = []
            for rtype, rid in {t for r in frontier for t in _references(r)}:
                if rtype in FOLLOWED and (rtype, rid) not in held:
                    resource = self._get(rtype, rid)
                    if resource is not None:
                        held.add((rtype, rid))
                        added.append(resource)
            resources = resources + added
            frontier = added
        entries = [{"resource": r} for r in resources]  # no base URL in an export: references are Type/id
        return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def list_cursor(cursor: sqlite3.Cursor) -> Iterator[tuple[str, str | None]]:
    """The cursor's rows, fetched in pages so other queries can run while it is read."""
    while True:
        page = cursor.fetchmany(1000)
        if not page:
            return
        yield from page
