"""GET entries of a batch or transaction (read, vread, search), answered after the writes."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from adapter.errors import Problem, problem_issue
from adapter.intake.slim import FHIR_ID
from adapter.service.auth.policy import Principal
from adapter.service.capability import INPUT_TYPES, OUTPUT_TYPES
from adapter.service.fhirhttp import FhirError
from adapter.service.numbers import wire_int
from adapter.service.search import run_search
from adapter.service.store import Store

READABLE = frozenset(OUTPUT_TYPES + INPUT_TYPES)


def _failed(status: str, code: str, message: str) -> dict[str, Any]:
    issue_type = {"404": "not-found", "403": "forbidden"}.get(status[:3], "invalid")
    outcome = {"resourceType": "OperationOutcome", "issue": [problem_issue(Problem(code, message, None, issue_type))]}
    return {"response": {"status": status, "outcome": outcome}}


def read_entry(store: Store, url: str, base: str, page_size: int, principal: Principal | None) -> dict[str, Any]:
    """The response entry of ``GET url`` (``Type/id``, ``Type/id/_history/v``, ``Type?criteria``),
    as the REST API would answer ``principal``: its scopes, and another tenant's resource not found."""
    path, _, query = url.partition("?")
    parts = path.strip("/").split("/")
    rtype = parts[0]
    if len(parts) == 1:
        try:
            if principal is not None:
                principal.require(rtype, "s")
            bundle = run_search(
                store,
                rtype,
                parse_qsl(query, keep_blank_values=True),
                base=base,
                lenient=False,
                page_size=page_size,
                tenant=principal.tenant if principal else None,
            )
        except FhirError as refused:
            if refused.status == 403:
                return _failed("403 Forbidden", refused.code, refused.message)
            return _failed("400 Bad Request", refused.code, refused.message)
        return {"resource": bundle, "response": {"status": "200 OK"}}
    version = wire_int(parts[3]) if len(parts) == 4 and parts[2] == "_history" else None
    if len(parts) not in (2, 4) or not FHIR_ID.match(parts[1]) or (len(parts) == 4 and version is None):
        return _failed("400 Bad Request", "invalid-request-url", f"GET {url[:80]!r} is not a read, vread or search")
    if principal is not None and not principal.scopes.allows(rtype, "r"):
        return _failed("403 Forbidden", "insufficient-scope", f"reading {rtype} needs the scope system/{rtype}.r")
    stored = store.read(rtype, parts[1], version)
    current = stored if version is None else store.read(rtype, parts[1])
    if stored is None or (principal is not None and current is not None and not principal.sees(current.tenant)):
        return _failed("404 Not Found", "not-found", f"{path[:80]} is not known")
    response = {"status": "200 OK", "etag": stored.etag, "lastModified": stored.last_updated.isoformat()}
    return {"fullUrl": f"{base}/{rtype}/{parts[1]}", "resource": stored.resource, "response": response}
