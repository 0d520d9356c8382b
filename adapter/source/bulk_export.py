"""FHIR Bulk Data export from the source (Bulk Data Access IG 2.0, "$export").

Kick-off ``GET [base]/$export`` (or ``Group/<id>/$export``) with ``Prefer: respond-async``: the
source answers 202 and a status URL in ``Content-Location``.  The status URL answers 202 while
the export runs (``X-Progress``, ``Retry-After``) and 200 with the manifest when done; each output
file is then downloaded (NDJSON, with the token when ``requiresAccessToken``), and the job is
deleted (``DELETE`` on the status URL) so the source can free it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from adapter.source.client import SourceClient, SourceError, retry_after

EXPORT_TYPES = (
    "Patient Encounter Procedure Condition MedicationRequest MedicationStatement Medication Observation Coverage "
    "Practitioner PractitionerRole Organization Location ServiceRequest CarePlan Device"
).split()
RESOURCE_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}\Z")
NDJSON = "application/fhir+ndjson"


@dataclass
class ExportResult:
    files: list[Path] = field(default_factory=list)
    resources: int = 0
    errors: int = 0  # error files of the manifest (OperationOutcomes), downloaded too
    deleted: bool = False


def kick_off(client: SourceClient, since: str | None, group: str | None, types: tuple[str, ...]) -> str:
    """Start the export; the status URL."""
    path = f"Group/{group}/$export" if group else "$export"
    params = [("_type", ",".join(types))] + ([("_since", since)] if since else [])
    response = client.request(
        "GET",
        f"{client.config.root}/{path}",
        params=params,
        headers={"Prefer": "respond-async", "Accept": "application/fhir+json"},
    )
    location = response.headers.get("content-location")
    if response.status_code != 202 or not location:
        raise SourceError(f"source answered {response.status_code} without a status URL to the $export kick-off")
    if not client.on_source(location):
        raise SourceError("source's export status URL points outside the source")
    return str(location)


def wait_for_manifest(
    client: SourceClient,
    status_url: str,
    *,
    progress: IO[str],
    sleep: Callable[[float], None] = time.sleep,
    timeout: float = 6 * 3600,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll the status URL until the manifest comes (honouring Retry-After; 10 s when absent)."""
    deadline = clock() + timeout
    wait = 1.0
    while True:
        response = client.request("GET", status_url)
        if response.status_code == 200:
            manifest = orjson.loads(response.content)
            if not isinstance(manifest, dict) or not isinstance(manifest.get("output"), list):
                raise SourceError("source's export manifest has no output list")
            return manifest
        told = retry_after(response.headers.get("retry-after"), time.time())
        wait = told if told is not None else min(wait * 2, 60.0)
        shown = response.headers.get("x-progress", "in progress")
        progress.write(f"export: {shown[:40]}\n")
        if clock() + wait > deadline:
            raise SourceError(f"the export did not finish within {timeout:.0f} s")
        sleep(wait)


def download(client: SourceClient, manifest: dict[str, Any], out: Path, progress: IO[str]) -> ExportResult:
    """Every output (and error) file of the manifest into ``out`` as ``<Type>.<n>.ndjson``."""
    result = ExportResult()
    token = bool(manifest.get("requiresAccessToken"))
    counters: dict[str, int] = {}
    listed = [(item, False) for item in manifest.get("output") or []] + [
        (item, True) for item in manifest.get("error") or []
    ]
    for item, is_error in listed:
        rtype, url = (item.get("type"), item.get("url")) if isinstance(item, dict) else (None, None)
        if not isinstance(rtype, str) or not RESOURCE_TYPE.match(rtype) or not isinstance(url, str):
            raise SourceError("source's export manifest lists a file without a resource type or URL")
        if token and not client.on_source(url):
            raise SourceError("the export's files need the token but are on another origin; not sent")
        number = counters.get(rtype, 0)
        counters[rtype] = number + 1
        name = f"{'error-' if is_error else ''}{rtype}.{number:03}.ndjson"
        path = out / name
        size, lines = client.download(url, path, authenticate=token, headers={"Accept": NDJSON})
        if is_error:
            result.errors += 1
        else:
            result.resources += lines
            result.files.append(path)
        progress.write(f"downloaded {name}: {lines} line(s), {size / 1e6:.1f} MB\n")
    (out / "manifest.json").write_bytes(orjson.dumps(_safe_manifest(manifest), option=orjson.OPT_INDENT_2))
    return result


def _safe_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest as kept beside the files: the transaction time and the file list."""
    return {
        k: manifest[k]
        for k in ("transactionTime", "request", "requiresAccessToken", "output", "error")
        if k in manifest
    }


def export(
    client: SourceClient,
    out: Path,
    *,
    since: str | None = None,
    group: str | None = None,
    types: tuple[str, ...] = tuple(EXPORT_TYPES),
    progress: IO[str],
    sleep: Callable[[float], None] = time.sleep,
) -> ExportResult:
    """Kick off, wait, download, delete: a billing backfill's first command."""
    out.mkdir(parents=True, exist_ok=True)
    status_url = kick_off(client, since, group, types)
    progress.write("export started at the source\n")
    manifest = wait_for_manifest(client, status_url, progress=progress, sleep=sleep)
    result = download(client, manifest, out, progress)
    try:
        client.request("DELETE", status_url)
        result.deleted = True
    except SourceError as error:  # the files are here; the source will expire the job itself
        progress.write(f"the export job could not be deleted at the source: {error.reason}\n")
    return result
