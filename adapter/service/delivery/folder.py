"""Folder destinations: 837P interchanges dropped into a directory, one file per export.

Every ``interval_seconds`` a worker runs the export of ``theraclaim export-837`` (one interchange
with every Claim version not exported yet; x12store.py records which went out in the same
transaction). The file is written under a temporary name in the folder, flushed to disk, and
renamed to ``<destination>-<ISA13>.x12`` before that transaction commits, so a pickup job never
sees half a file. If the commit then fails, the control numbers roll back with it and the next
export writes the same name again: ISA13, the interchange control number, is the idempotency key
(clearinghouses refuse a repeated ISA13), so sending at least once has the effect of once.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from adapter.output.x12 import ClearinghouseProfile, load_profile
from adapter.output.x12.text import ELEMENT, SEGMENT
from adapter.rules.catalog import Rules
from adapter.service.delivery.config import FolderDestination
from adapter.service.settings import Settings
from adapter.service.store import Store
from adapter.service.x12store import Export, X12Store

log = logging.getLogger("theraclaim.delivery")


def interchange_number(content: bytes) -> str:
    """ISA13 of an interchange."""
    return content.decode().split(SEGMENT, 1)[0].split(ELEMENT)[13].strip()


def drop(folder: Path, name: str, content: bytes) -> Path:
    """Write ``content`` to ``folder/name`` atomically: a temporary name, fsync, rename, fsync the folder."""
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        target = folder / name
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return target


class FolderExporter:
    def __init__(self, store: Store, rules: Rules, destination: FolderDestination, settings: Settings) -> None:
        self.destination = destination
        self.profile: ClearinghouseProfile = load_profile(destination.profile, settings.mappings_dir)
        self.exports = X12Store(store, rules)
        self.next_due = 0.0  # time.monotonic() of the next export

    def _stage(self, content: bytes) -> None:
        name = f"{self.destination.id}-{interchange_number(content)}.x12"
        drop(self.destination.path, name, content)

    def export(self, now: datetime | None = None) -> Export:
        """One export now: the interchange written (or nothing new)."""
        export = self.exports.export(self.profile, now or datetime.now(UTC).replace(microsecond=0), None, self._stage)
        if export.control_number is not None:
            log.info(
                "delivery to %s: interchange %s with %d claim(s)",
                self.destination.id,
                export.control_number,
                len(export.sent),
            )
        return export

    def export_if_due(self) -> None:
        if time.monotonic() >= self.next_due:
            self.next_due = time.monotonic() + self.destination.interval_seconds
            self.export()
