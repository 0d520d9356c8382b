"""GET entries of a batch or transaction (read, vread, search), answered after the writes and, when
there are writes, inside their database transaction: a transaction's failing read rolls them back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy.engine import Connection

from adapter.errors import Problem, problem_issue
from adapter.intake.slim import FHIR_ID
from adapter.service.auth.policy import Principal
from adapter.service.capability import INPUT_TYPES, OUTPUT_TYPES
from adapter.service.fhirhttp import FhirError
from adapter.service.numbers import wire_int
from adapter.service.search import run_search
from adapter.service.store import Store

READABLE = frozenset(OUTPUT_TYPES + INPUT_TYPES)
STATUS_TEXT = {400: "400 Bad Request", 403: "403 Forbidden", 404: "404 Not Found"}


@dataclass(frozen=True)
class Read:
    """The response entry of one GET entry; ``problem`` when it failed (at ``Bundle.entry[i].request.url``)."""

    entry: dict[str, Any]
    status: int = 200
    problem: Problem | None = None


def _failed(status: int, code: str, message: str, path: str) -> Read:
    issue_type = {404: "not-found", 403: "forbidden"}.get(status, "invalid")
    problem = Problem(code, message, f"{path}.request.url", issue_type)
    outcome = {"resourceType": "OperationOutcome", "issue": [problem_issue(problem)]}
    return Read({"response": {"status": STATUS_TEXT[status], "outcome": outcome}}, status, problem)


def read_entry(
    store: Store,
    url: str,
    base: str,
    page_size: int,
    principal: Principal | None,
    path: str,
    connection: Connection | None = None,
) -> Read:
    """``GET url`` (``Type/id``, ``Type/id/_history/v``, ``Type?criteria``) answered as the REST API
    would answer ``principal`` (its scopes; another tenant's resource not found), on ``connection``
    when given (a transaction's reads see its own writes)."""
    target, _, query = url.partition("?")
    parts = target.strip("/").split("/")
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
                connection=connection,
            )
        except FhirError as refused:
            return _failed(403 if refused.status == 403 else 400, refused.code, refused.message, path)
        return Read({"resource": bundle, "response": {"status": "200 OK"}})
    version = wire_int(parts[3]) if len(parts) == 4 and parts[2] == "_history" else None
    if len(parts) not in (2, 4) or not FHIR_ID.match(parts[1]) or (len(parts) == 4 and version is None):
        return _failed(400, "invalid-request-url", f"GET {url[:80]!r} is not a read, vread or search", path)
    if principal is not None and not principal.scopes.allows(rtype, "r"):
        return _failed(403, "insufficient-scope", f"reading {rtype} needs the scope system/{rtype}.r", path)
    stored = store.read(rtype, parts[1], version, connection=connection)
    current = stored if version is None else store.read(rtype, parts[1], connection=connection)
    if stored is None or (principal is not None and current is not None and not principal.sees(current.tenant)):
        return _failed(404, "not-found", f"{target[:80]} is not known", path)
    response = {"status": "200 OK", "etag": stored.etag, "lastModified": stored.last_updated.isoformat()}
    return Read({"fullUrl": f"{base}/{rtype}/{parts[1]}", "resource": stored.resource, "response": response})
