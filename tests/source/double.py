"""A FHIR server double on loopback HTTP, with faults on demand.

A real HTTP server (``http.server`` on 127.0.0.1, an ephemeral port, one thread per request)
holding resources in memory: read, search (the parameters the pull uses, ``_include`` /
``_revinclude``, paging through ``next`` links), a CapabilityStatement, SMART Backend Services
discovery and a token endpoint that checks the signed client assertion.  ``fault`` makes
requests whose path contains a text fail: a status (with ``Retry-After``), a dropped connection
or a slow answer.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import Key

REFERENCE_PARAMS = {
    "patient": ("subject", "beneficiary", "patient"),
    "subject": ("subject",),
    "beneficiary": ("beneficiary",),
    "encounter": ("encounter",),
}


@dataclass
class Fault:
    path_part: str
    status: int | None = None  # answer this status
    retry_after: str | None = None
    drop: bool = False  # close the connection without answering
    delay: float = 0.0  # answer late
    times: int = 1_000_000  # how many requests it affects


@dataclass
class Double:
    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    page_size: int = 1000
    offer_includes: bool = True
    client_public_key: Key | None = None  # when set, requests need a token from /token
    client_id: str = "theraclaim-test"
    reject_token: bool = False
    token_lifetime: int = 300
    tokens: set[str] = field(default_factory=set)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path?query)
    lock: threading.Lock = field(default_factory=threading.Lock)
    base: str = ""
    export_polls: int = 2  # status answers "in progress" this many times before the manifest
    exports: dict[str, dict[str, Any]] = field(default_factory=dict)

    def put(self, resource: dict[str, Any], version: int = 1, last_updated: str = "2025-01-01T00:00:00Z") -> None:
        stored = dict(resource)
        stored["meta"] = {**resource.get("meta", {}), "versionId": str(version), "lastUpdated": last_updated}
        self.resources[(resource["resourceType"], resource["id"])] = stored

    def seed_transaction(self, bundle: dict[str, Any]) -> None:
        """Store a transaction Bundle's resources as a server would: urn:uuid references become Type/id."""
        names = {e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}
        text = json.dumps([e["resource"] for e in bundle["entry"]])
        text = re.sub(
            r'"urn:uuid:[0-9a-fA-F-]+"', lambda m: json.dumps(names.get(m.group(0)[1:-1], m.group(0)[1:-1])), text
        )
        for resource in json.loads(text):
            self.put(resource)

    def fault(self, path_part: str, **kwargs: Any) -> Fault:
        made = Fault(path_part, **kwargs)
        self.faults.append(made)
        return made

    def count(self, path_part: str) -> int:
        return sum(1 for _, path in self.requests if path_part in path)

    # -- behaviour ---------------------------------------------------------------------------------

    def capability(self) -> dict[str, Any]:
        resources = []
        for rtype in sorted({t for t, _ in self.resources} | {"Encounter", "MedicationRequest", "MedicationStatement"}):
            entry: dict[str, Any] = {"type": rtype, "interaction": [{"code": "read"}, {"code": "search-type"}]}
            if self.offer_includes:
                if rtype == "Encounter":
                    entry["searchRevInclude"] = ["Procedure:encounter"]
                if rtype in ("MedicationRequest", "MedicationStatement"):
                    entry["searchInclude"] = [f"{rtype}:medication"]
            resources.append(entry)
        return {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "kind": "instance",
            "fhirVersion": "4.0.1",
            "format": ["json"],
            "rest": [{"mode": "server", "resource": resources}],
        }

    def search(self, rtype: str, query: list[tuple[str, str]]) -> dict[str, Any]:
        params = [(k, v) for k, v in query if k not in ("_offset", "_count", "_include", "_revinclude")]
        matches = [
            r
            for (t, _), r in sorted(self.resources.items())
            if t == rtype and all(_matches(r, k, v) for k, v in params)
        ]
        offset = int(dict(query).get("_offset", "0"))
        page = matches[offset : offset + self.page_size]
        entries = [
            {"fullUrl": f"{self.base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
            for r in page
        ]
        includes = []
        for key, value in query:
            if key == "_revinclude" and value == "Procedure:encounter" and self.offer_includes:
                for encounter in page:
                    includes += [
                        r
                        for (t, _), r in sorted(self.resources.items())
                        if t == "Procedure"
                        and (r.get("encounter") or {}).get("reference") == f"Encounter/{encounter['id']}"
                    ]
            if key == "_include" and value.endswith(":medication") and self.offer_includes:
                for order in page:
                    ref = (order.get("medicationReference") or {}).get("reference", "")
                    if ref.startswith("Medication/") and ("Medication", ref[11:]) in self.resources:
                        includes.append(self.resources[("Medication", ref[11:])])
        entries += [
            {"fullUrl": f"{self.base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "include"}}
            for r in includes
        ]
        bundle: dict[str, Any] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(matches),
            "entry": entries,
            "link": [{"relation": "self", "url": f"{self.base}/{rtype}?{urlencode(query)}"}],
        }
        if offset + self.page_size < len(matches):
            rest = [(k, v) for k, v in query if k != "_offset"] + [("_offset", str(offset + self.page_size))]
            bundle["link"].append({"relation": "next", "url": f"{self.base}/{rtype}?{urlencode(rest)}"})
        return bundle

    def export_files(self, job: dict[str, Any]) -> dict[str, bytes]:
        files: dict[str, list[str]] = {}
        for (rtype, _), resource in sorted(self.resources.items()):
            if rtype in job["types"] and (not job["since"] or resource["meta"]["lastUpdated"] > job["since"]):
                files.setdefault(rtype, []).append(json.dumps(resource))
        return {t: ("\n".join(lines) + "\n").encode() for t, lines in files.items()}

    def manifest(self, job_id: str) -> dict[str, Any]:
        job = self.exports[job_id]
        output = [{"type": t, "url": f"{self.base}/bulkfiles/{job_id}/{t}.ndjson"} for t in self.export_files(job)]
        return {
            "transactionTime": "2025-06-01T00:00:00Z",
            "request": f"{self.base}/$export",
            "requiresAccessToken": self.client_public_key is not None,
            "output": output,
            "error": [],
        }

    def issue_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if self.reject_token or self.client_public_key is None:
            return 401, {"error": "invalid_client"}
        try:
            token = jwt.decode(form["client_assertion"], self.client_public_key, algorithms=["RS384", "ES384"])
        except Exception:  # any bad assertion is an invalid client
            return 401, {"error": "invalid_client"}
        claims = token.claims
        if (
            form.get("grant_type") != "client_credentials"
            or claims.get("iss") != self.client_id
            or claims.get("sub") != self.client_id
            or claims.get("aud") != f"{self.base}/token"
            or not claims.get("jti")
            or int(claims.get("exp", 0)) - int(claims.get("iat", 0)) > 300
            or int(claims.get("exp", 0)) < time.time()
        ):
            return 401, {"error": "invalid_client"}
        value = uuid.uuid4().hex
        with self.lock:
            self.tokens.add(value)
        return 200, {
            "access_token": value,
            "token_type": "bearer",
            "expires_in": self.token_lifetime,
            "scope": form.get("scope", ""),
        }


def _reference_values(resource: dict[str, Any], elements: tuple[str, ...]) -> list[str]:
    found = []
    for element in elements:
        value = resource.get(element)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and isinstance(item.get("reference"), str):
                found.append(item["reference"])
    return found


def _matches(resource: dict[str, Any], key: str, value: str) -> bool:
    if key in REFERENCE_PARAMS:
        return value in _reference_values(resource, REFERENCE_PARAMS[key])
    if key == "_id":
        return resource.get("id") == value
    if key == "status":
        return resource.get("status") in value.split(",")
    if key == "code":
        wanted = set(value.split(","))
        codings = (resource.get("code") or {}).get("coding") or []
        return any(f"{c.get('system')}|{c.get('code')}" in wanted for c in codings)
    if key == "date":
        when = resource.get("effectiveDateTime") or (resource.get("effectivePeriod") or {}).get("start") or ""
        return value.startswith("le") and when[:10] <= value[2:12]
    if key == "identifier":
        return any(f"{i.get('system')}|{i.get('value')}" == value for i in resource.get("identifier") or [])
    if key == "_lastUpdated":
        return value.startswith("gt") and resource["meta"]["lastUpdated"] > value[2:]
    return True  # parameters the double does not know are ignored, as many servers do


def _handler(double: Double) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: Any) -> None:  # quiet
            pass

        def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _fault(self) -> bool:
            with double.lock:
                double.requests.append((self.command, self.path))
                fault = next((f for f in double.faults if f.path_part in self.path and f.times > 0), None)
                if fault is not None:
                    fault.times -= 1
            if fault is None:
                return False
            if fault.delay:
                time.sleep(fault.delay)
            if fault.drop:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return True
            if fault.status is not None:
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                self._answer(
                    fault.status,
                    {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "transient"}]},
                    headers,
                )
                return True
            return False

        def _authorized(self) -> bool:
            if double.client_public_key is None:
                return True
            header = self.headers.get("Authorization", "")
            return header.startswith("Bearer ") and header[7:] in double.tokens

        def do_GET(self) -> None:
            if self._fault():
                return
            url = urlsplit(self.path)
            path = url.path.removeprefix("/fhir").strip("/")
            if path == ".well-known/smart-configuration":
                return self._answer(
                    200,
                    {
                        "token_endpoint": f"{double.base}/token",
                        "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
                        "grant_types_supported": ["client_credentials"],
                    },
                )
            if path == "metadata":
                return self._answer(200, double.capability())
            if not self._authorized():
                return self._answer(
                    401, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "login"}]}
                )
            parts = path.split("/")
            if parts[-1] == "$export":
                if self.headers.get("Prefer") != "respond-async":
                    return self._answer(
                        400, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "required"}]}
                    )
                query = dict(parse_qsl(url.query))
                job = uuid.uuid4().hex
                double.exports[job] = {
                    "types": query.get("_type", "").split(","),
                    "since": query.get("_since"),
                    "polls": double.export_polls,
                    "deleted": False,
                }
                return self._answer(202, None, {"Content-Location": f"{double.base}/bulkstatus/{job}"})
            if parts[0] == "bulkstatus" and parts[1] in double.exports:
                job = double.exports[parts[1]]
                if job["polls"] > 0:
                    job["polls"] -= 1
                    return self._answer(
                        202, None, {"X-Progress": f"{50 * (2 - job['polls'])}% done", "Retry-After": "3"}
                    )
                return self._answer(200, double.manifest(parts[1]))
            if parts[0] == "bulkfiles" and parts[1] in double.exports:
                data = double.export_files(double.exports[parts[1]]).get(parts[2].removesuffix(".ndjson"), b"")
                self.send_response(200)
                self.send_header("Content-Type", "application/fhir+ndjson")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return None
            if len(parts) == 1:
                return self._answer(200, double.search(parts[0], parse_qsl(url.query)))
            resource = double.resources.get((parts[0], parts[1])) if len(parts) == 2 else None
            if resource is None:
                return self._answer(
                    404, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found"}]}
                )
            return self._answer(200, resource)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self._fault():
                return
            path = urlsplit(self.path).path.removeprefix("/fhir").strip("/")
            if path == "token":
                status, answer = double.issue_token(dict(parse_qsl(body.decode())))
                return self._answer(status, answer)
            if path == "Subscription" and self._authorized():
                resource = {**json.loads(body), "id": uuid.uuid4().hex[:16]}
                double.put(resource)
                stored = double.resources[("Subscription", resource["id"])]
                location = f"{double.base}/Subscription/{resource['id']}/_history/1"
                return self._answer(201, stored, {"Location": location})
            self._answer(
                404, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found"}]}
            )

        def do_DELETE(self) -> None:
            if self._fault():
                return
            parts = urlsplit(self.path).path.removeprefix("/fhir").strip("/").split("/")
            if len(parts) == 2 and parts[0] == "bulkstatus" and parts[1] in double.exports:
                double.exports[parts[1]]["deleted"] = True
                return self._answer(202, None)
            return self._answer(404, None)

    return Handler


@contextmanager
def serve(double: Double) -> Iterator[Double]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(double))
    server.daemon_threads = True
    double.base = f"http://127.0.0.1:{server.server_address[1]}/fhir"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield double
    finally:
        server.shutdown()
        server.server_close()
