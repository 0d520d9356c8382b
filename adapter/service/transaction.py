"""``POST /fhir`` with a transaction or batch Bundle: store the visit's resources and claim it.

Transaction: all or nothing.  Every entry must be a POST or PUT of a resource type the server
stores, valid on its own, or a GET; the whole visit must convert (an invalid visit fails the
transaction with 400 and stores nothing).  ifMatch and the GET entries are answered inside the
database transaction that writes, after the writes, so a stale version or a failing read rolls the
writes back.  Batch: each entry stands alone; entries that fail get their own 4xx response, the
rest are stored, and the Claims are made from what was stored.

POST entries get ids derived from their fullUrl (or content), so a retried Bundle updates the
same resources instead of creating copies; ``urn:uuid:`` references are rewritten to the ids given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, NoReturn

from sqlalchemy.engine import Connection

from adapter.digest import canonical_digest
from adapter.errors import Problem, problem_issue
from adapter.intake.slim import FHIR_ID
from adapter.intake.validation import validate_resource
from adapter.pipeline import Result
from adapter.service.auth.access import WriteAccess
from adapter.service.auth.policy import Principal
from adapter.service.capability import INPUT_TYPES
from adapter.service.claims import ClaimService
from adapter.service.conditional import IfNoneExist, MatchChanged, identity
from adapter.service.fhirhttp import FhirError
from adapter.service.inputs import derived_id, rewrite_references
from adapter.service.numbers import wire_int
from adapter.service.search import conditional_match
from adapter.service.store import Store, Stored
from adapter.service.transaction_reads import READABLE, Read, read_entry

ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3}
ENTRY_PATH = re.compile(r"^Bundle\.entry\[(\d+)\]")
STATUS_TEXT = {
    200: "200 OK",
    201: "201 Created",
    400: "400 Bad Request",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    412: "412 Precondition Failed",
    422: "422 Unprocessable Entity",
}


@dataclass
class _Entry:
    index: int
    full_url: str | None
    resource: dict[str, Any] | None
    problems: list[Problem]
    status: int = 0  # the HTTP status of a failed entry
    method: str = ""
    aliases: tuple[str, ...] = ()  # other references that name this entry (its original Type/id)
    matched: Stored | None = None  # ifNoneExist found this resource: nothing is written
    get_url: str | None = None  # a GET entry: what to read or search, after the writes
    if_match: int | None = None  # ifMatch: the version the write must replace (checked as it is written)
    condition: IfNoneExist | None = None  # ifNoneExist: matched again as the entries are written


def _aliases(resource_type: str, original_id: Any, full_url: str | None) -> tuple[str, ...]:
    """The relative references that named the entry before its id was assigned (R4 Bundle §3.1.3.4:
    ``Type/id`` resolves against the fullUrl's base)."""
    found = [f"{resource_type}/{original_id}"] if isinstance(original_id, str) else []
    parts = (full_url or "").rstrip("/").split("/")
    if not (full_url or "").startswith("urn:") and len(parts) >= 2 and parts[-2] == resource_type:
        found.append(f"{resource_type}/{parts[-1]}")
    return tuple(found)


def _assign_id(entry: dict[str, Any], resource: dict[str, Any], path: str, problems: list[Problem]) -> None:
    request = entry.get("request")
    request = request if isinstance(request, dict) else {}
    method = str(request.get("method", "")).upper()
    url = str(request.get("url", ""))
    rtype = resource.get("resourceType")
    if method == "PUT":
        parts = url.split("?")[0].strip("/").split("/")
        if len(parts) != 2 or parts[0] != rtype or not FHIR_ID.match(parts[1]):
            problems.append(
                Problem("invalid-request-url", f"PUT url must be {rtype}/[id], got {url!r}", f"{path}.request.url")
            )
            return
        if resource.get("id") not in (None, parts[1]):
            problems.append(
                Problem(
                    "id-mismatch", f"resource id {resource.get('id')!r} differs from the url", f"{path}.resource.id"
                )
            )
        resource["id"] = parts[1]
    elif method == "POST":
        seed = entry.get("fullUrl") or canonical_digest(resource)
        resource["id"] = derived_id(str(rtype), seed)
    else:
        problems.append(
            Problem(
                "unsupported-method",
                f"request.method {method or '(none)'!r} is not supported; use POST, PUT or GET (this server "
                "deletes nothing: every version is kept)",
                f"{path}.request.method",
                "not-supported",
            )
        )


class TransactionService:
    def __init__(self, store: Store, claims: ClaimService) -> None:
        self.store = store
        self.claims = claims

    def _entries(self, document: dict[str, Any], principal: Principal | None) -> list[_Entry]:
        raw = document.get("entry", [])
        if not isinstance(raw, list):
            raise FhirError(400, "fhir-invalid", "Bundle.entry must be an array", "structure", "Bundle.entry")
        limit = self.claims.settings.max_entries
        if len(raw) > limit:  # before any entry is validated or (in a batch) stored
            raise FhirError(
                400,
                "too-many-entries",
                f"the Bundle has {len(raw)} entries; the limit is {limit}",
                "too-long",
                "Bundle.entry",
            )
        entries = []
        seen: set[str] = set()
        for i, entry in enumerate(raw):
            path = f"Bundle.entry[{i}]"
            problems: list[Problem] = []
            resource = entry.get("resource") if isinstance(entry, dict) else None
            request = entry.get("request") if isinstance(entry, dict) else None
            request = request if isinstance(request, dict) else {}
            method = str(request.get("method", "")).upper()
            if method == "GET":
                entries.append(self._get_entry(i, request, path))
                continue
            if not isinstance(resource, dict):
                entries.append(
                    _Entry(i, None, None, [Problem("missing-resource", "the entry has no resource", path)], 400)
                )
                continue
            full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
            if full_url in seen:
                problems.append(
                    Problem("duplicate-fullurl", f"fullUrl {full_url!r} repeats", f"{path}.fullUrl", "duplicate")
                )
            seen.add(full_url or "")
            problems += validate_resource(resource, f"{path}.resource")
            if not problems and resource["resourceType"] not in INPUT_TYPES:
                problems.append(
                    Problem(
                        "unsupported-type",
                        f"{resource['resourceType']} is not stored here",
                        f"{path}.resource",
                        "not-supported",
                    )
                )
            original = resource.get("id")
            resource = dict(resource)
            _assign_id(entry, resource, path, problems)
            aliases = _aliases(resource["resourceType"], original, full_url)
            condition, matched = (
                (None, None) if problems else self._if_none_exist(request, resource, path, problems, principal)
            )
            if_match = _if_match(request, path, problems)
            status = 405 if any(p.code == "unsupported-method" for p in problems) else 0
            status = status or (412 if any(p.code.startswith("precondition") for p in problems) else 400)
            entries.append(
                _Entry(
                    i,
                    full_url,
                    resource,
                    problems,
                    status if problems else 0,
                    method,
                    aliases,
                    matched,
                    None,
                    if_match,
                    condition,
                )
            )
        return entries

    def _get_entry(self, index: int, request: dict[str, Any], path: str) -> _Entry:
        url = str(request.get("url", "")).lstrip("/")
        rtype = url.split("?")[0].split("/")[0]
        if rtype not in READABLE:
            problem = Problem("invalid-request-url", f"GET {url[:80]!r}: not a type stored here", f"{path}.request.url")
            return _Entry(index, None, None, [problem], 400, "GET")
        return _Entry(index, None, None, [], 0, "GET", get_url=url)

    def _if_none_exist(
        self,
        request: dict[str, Any],
        resource: dict[str, Any],
        path: str,
        problems: list[Problem],
        principal: Principal | None,
    ) -> tuple[IfNoneExist | None, Stored | None]:
        """ifNoneExist (POST): the condition and its match now, if any, which replaces the write."""
        criteria = request.get("ifNoneExist")
        if not isinstance(criteria, str) or not criteria:
            return None, None
        try:
            tenant = principal.tenant if principal else None
            found = conditional_match(self.store, criteria, resource["resourceType"], tenant)
        except FhirError as refused:
            code = "precondition-failed" if refused.status == 412 else refused.code
            problems.append(Problem(code, refused.message, f"{path}.request.ifNoneExist"))
            return None, None
        return IfNoneExist(resource["resourceType"], criteria, tenant, identity(found)), found

    def process(self, document: dict[str, Any], base: str = "", access: WriteAccess | None = None) -> dict[str, Any]:
        """Store a transaction (all or nothing) or batch; with ``access``, as that Principal:
        only visits billed by its organization, each write within its scopes, audited with it."""
        kind = document.get("type")
        if document.get("resourceType") != "Bundle" or kind not in ("transaction", "batch"):
            raise FhirError(
                400,
                "not-a-transaction",
                "POST /fhir takes a Bundle of type transaction or batch",
                "invalid",
                "Bundle.type",
            )
        principal = access.principal if access is not None else None
        entries = self._entries(document, principal)
        failed = [e for e in entries if e.problems]
        if kind == "transaction" and failed:
            _fail(failed)
        digest = canonical_digest(document)
        while True:
            try:
                return self._commit(kind, entries, digest, base, access)
            except _PreconditionFailed as refused:  # a batch drops the entry and stores the others
                refused.entry.problems, refused.entry.status = [refused.problem], 412
                if kind == "transaction":
                    _fail([refused.entry])
            except MatchChanged as changed:  # another writer changed what an ifNoneExist matches: redo
                for entry in entries:
                    if entry.condition in changed.found:
                        entry.matched = changed.found[entry.condition]
                        entry.condition = replace(entry.condition, matched=identity(entry.matched))

    def _commit(
        self, kind: str, entries: list[_Entry], digest: str, base: str, access: WriteAccess | None
    ) -> dict[str, Any]:
        """Store the good entries and make the Claims in one database transaction; the GET entries
        are answered in it, after the writes (R4 http §3.1.0.11.2: DELETE, POST, PUT/PATCH, then GET)."""
        principal = access.principal if access is not None else None
        good = [e for e in entries if not e.problems and e.method != "GET"]
        good.sort(key=lambda e: ORDER.get(e.method, 9))  # DELETE (none), POST, PUT
        resources: dict[int, dict[str, Any]] = {}
        targets: dict[str, str] = {}
        for entry in good:
            assert entry.resource is not None
            # ifNoneExist matched: the entry names the existing resource
            resources[entry.index] = entry.matched.resource if entry.matched is not None else entry.resource
            reference = f"{resources[entry.index]['resourceType']}/{resources[entry.index]['id']}"
            for name in (reference, entry.full_url, *entry.aliases):
                if name:
                    targets.setdefault(name, reference)
        resources = {i: rewrite_references(r, targets) for i, r in resources.items()}
        reads: dict[int, Read] = {}

        def answer_reads(connection: Connection | None) -> None:
            reads.clear()
            page_size = self.claims.settings.page_size
            for entry in entries:
                if entry.get_url is not None:
                    path = f"Bundle.entry[{entry.index}]"
                    reads[entry.index] = read_entry(
                        self.store, entry.get_url, base, page_size, principal, path, connection
                    )
            refused = [(i, r) for i, r in reads.items() if r.problem is not None]
            if kind == "transaction" and refused:  # raised inside the write transaction: it rolls back
                statuses = {r.status for _, r in refused}
                raise FhirError(
                    statuses.pop() if len(statuses) == 1 else 400,
                    "transaction-failed",
                    f"GET entries {[i for i, _ in refused]} failed; nothing was stored",
                    "invalid",
                    problems=[r.problem for _, r in refused if r.problem is not None],
                )

        if not good:  # only reads (or only failures in a batch): nothing to store or claim
            answer_reads(None)
            return _response(kind, entries, {}, reads, None, [])
        visit = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [
                {"fullUrl": f"https://theraclaim.org/fhir/{r['resourceType']}/{r['id']}", "resource": r}
                for r in (resources[e.index] for e in good)
            ],
        }
        result = self.claims.convert(visit, None)
        if kind == "transaction" and result.invalid:
            issues = result.bundle["entry"][0]["resource"]["issue"]
            first = issues[0]
            raise FhirError(
                400,
                first["details"]["coding"][0]["code"],
                f"the visit cannot be claimed ({len(issues)} problem(s)); nothing was stored",
                "invalid",
                (first.get("expression") or [None])[0],
            )
        writes = [e for e in good if e.matched is None]

        def within(connection: Connection, stored_inputs: list[Stored]) -> None:
            for entry, item in zip(writes, stored_inputs, strict=True):
                _check_if_match(entry, item)
            answer_reads(connection)

        if access is not None and not result.invalid:
            access.check_billing(o.billing_npi for o in result.outcomes if o.status or o.cancels_claim)
        stored_inputs, _ = self.claims.store_result(
            result,
            digest,
            inputs=tuple(resources[e.index] for e in writes),
            operation=f"{kind}",
            also=within,
            access=access,
            conditions=[e.condition for e in good if e.condition is not None],
        )
        stored = dict(zip((e.index for e in writes), stored_inputs, strict=True))
        stored |= {e.index: e.matched for e in good if e.matched is not None}
        return _response(kind, entries, stored, reads, result, good)


def _response(
    kind: str,
    entries: list[_Entry],
    stored: dict[int, Stored],
    reads: dict[int, Read],
    result: Result | None,
    good: list[_Entry],
) -> dict[str, Any]:
    """The transaction-response or batch-response: one entry per request entry, in request order."""
    claim_outcome = _claim_outcome(result, good) if result is not None else None
    response_entries = []
    for entry in entries:
        if entry.index in reads:
            response_entries.append(reads[entry.index].entry)
            continue
        if entry.problems:
            response = {
                "status": STATUS_TEXT[entry.status],
                "outcome": {"resourceType": "OperationOutcome", "issue": [problem_issue(p) for p in entry.problems]},
            }
            response_entries.append({"response": response})
            continue
        item = stored[entry.index]
        rtype, rid = item.resource["resourceType"], item.resource["id"]
        response = {
            "status": STATUS_TEXT[201 if item.changed and item.version_id == 1 and not entry.matched else 200],
            "location": f"{rtype}/{rid}/_history/{item.version_id}",
            "etag": item.etag,
            "lastModified": item.last_updated.isoformat(),
        }
        if rtype == "Encounter" and claim_outcome is not None:
            response["outcome"] = claim_outcome
        response_entries.append({"response": response})
    return {"resourceType": "Bundle", "type": f"{kind}-response", "entry": response_entries}


class _PreconditionFailed(Exception):
    """An entry's ifMatch names a version other than the one its write replaced (found in the write transaction)."""

    def __init__(self, entry: _Entry, problem: Problem) -> None:
        super().__init__(problem.message)
        self.entry = entry
        self.problem = problem


def _if_match(request: dict[str, Any], path: str, problems: list[Problem]) -> int | None:
    """ifMatch's version (``W/"3"``, ``"3"`` or ``3``); checked when the write happens, not before it."""
    value = request.get("ifMatch")
    if value is None:
        return None
    version = wire_int(value.strip().removeprefix("W/").strip('"')) if isinstance(value, str) else None
    if version is None or version < 1:
        problems.append(
            Problem("invalid-if-match", f"ifMatch {str(value)[:24]!r} is not an ETag", f"{path}.request.ifMatch")
        )
    return version


def _check_if_match(entry: _Entry, written: Stored) -> None:
    """In the write transaction: the version the write replaced (or kept, when nothing changed) is
    the one ifMatch names.  The store's update is conditional on the version it read, so a concurrent
    writer makes this transaction conflict and retry rather than slip in between check and write."""
    if entry.if_match is None:
        return
    replaced = written.version_id - 1 if written.changed else written.version_id
    if replaced != entry.if_match:
        found = replaced or "none"
        message = f'ifMatch W/"{entry.if_match}": the current version is {found}'
        raise _PreconditionFailed(
            entry, Problem("precondition-failed", message, f"Bundle.entry[{entry.index}].request.ifMatch", "conflict")
        )


def _fail(failed: list[_Entry]) -> NoReturn:
    problems = [p for e in failed for p in e.problems]
    raise FhirError(
        412 if all(e.status == 412 for e in failed) else 400,
        "transaction-failed",
        f"{len(problems)} problem(s) in entries {[e.index for e in failed]}; nothing was stored",
        "invalid",
        problems=problems,
    )


def _claim_outcome(result: Result, good: list[_Entry]) -> dict[str, Any]:
    """What happened to the Claims: the pipeline's OperationOutcome (issues of every Encounter).

    The pipeline saw only the stored entries; its ``Bundle.entry[i]`` paths are turned back into
    the positions of the request's entries (they differ in a batch with failed entries).
    """
    outcome: dict[str, Any] = result.bundle["entry"][-1]["resource"]
    positions = {i: entry.index for i, entry in enumerate(good)}

    def request_path(expression: str) -> str:
        return ENTRY_PATH.sub(lambda m: f"Bundle.entry[{positions.get(int(m[1]), int(m[1]))}]", expression)

    issues = [
        issue | {"expression": [request_path(e) for e in issue["expression"]]} if "expression" in issue else issue
        for issue in outcome.get("issue", [])
    ]
    return {k: v for k, v in outcome.items() if k != "id"} | {"resourceType": "OperationOutcome", "issue": issues}
