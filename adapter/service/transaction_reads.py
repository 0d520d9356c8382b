"""GET entries of a batch or transaction (read, vread, search), answered after the writes."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from adapter.errors import Problem, problem_issue
from adapter.intake.slim import FHIR_ID
from adapter.service.capability import INPUT_TYPES, OUTPUT_TYPES
from adapter.service.fhirhttp import FhirError
from adapter.service.numbers import wire_int
from adapter.service.search import run_search
from adapter.service.store import Store

READABLE = frozenset(OUTPUT_TYPES + INPUT_TYPES)


def _failed(status: str, code: str, message: str) -> dict[str, Any]:
    issue_type = "not-found" if status.startswith("404") else "invalid"
    outcome = {"resourceType": "OperationOutcome", "issue": [problem_issue(Problem(code, message, None, issue_type))]}
    return {"response": {"status": status, "outcome": outcome}}


def read_entry(store: Store, url: str, base: str, page_size: int) -> dict[str, Any]:
    """The response entry of ``GET url`` (``Type/id``, ``Type/id/_history/v``, ``Type?criteria``)."""
    path, _, query = url.partition("?")
    parts = path.strip("/").split("/")
    rtype = parts[0]
    if len(parts) == 1:
        try:
            bundle = run_search(
                store, rtype, parse_qsl(query, keep_blank_values=True), base=base, lenient=False, page_size=page_size
            )
        except FhirError as refused:
            return _failed("400 Bad Request", refused.code, refused.message)
        return {"resource": bundle, "response": {"status": "200 OK"}}
    version = wire_int(parts[3]) if len(parts) == 4 and parts[2] == "_history" else None
    if len(parts) not in (2, 4) or not FHIR_ID.match(parts[1]) or (len(parts) == 4 and version is None):
        return _failed("400 Bad Request", "invalid-request-url", f"GET {url[:80]!r} is not a read, vread or search")
    stored = store.read(rtype, parts[1], version)
    if stored is None:
        return _failed("404 Not Found", "not-found", f"{path[:80]} is not known")
    response = {"status": "200 OK", "etag": stored.etag, "lastModified": stored.last_updated.isoformat()}
    return {"fullUrl": f"{base}/{rtype}/{parts[1]}", "resource": stored.resource, "response": response}
