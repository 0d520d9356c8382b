"""Benchmark section: what token checking and auditing cost per request.

One uvicorn worker per server on the benchmark's database, one client sending requests one after
another (c=1, so the figures are per-request costs, not queueing), the two servers taking turns:

- ``protected``: no client registry (authentication off, as ``make run``); every request is still
  audited (the guard records an AuditEvent for every request to a data path),
- ``authenticated``: a client registry, a bearer token on every request: token check + audit.

The audit write itself is timed in process (``AuditRecorder.record_after`` on the same database),
so the report gives both ratios: authenticated / protected (the token check) and
authenticated / (protected - audit) (token check and audit against a path with neither).  A
push's AuditEvent is a row of the push's own insert (PutBatch.add), cheaper than that separate
write: for pushes the second ratio is an upper bound.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

from bench import bundles
from bench.procs import free_port, reset_database, start_uvicorn, wait_ready

HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
SCOPE = "system/*.cruds"


def _client_and_registry(folder: Path) -> tuple[Any, Path]:
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-384", parameters={"kid": "bench-key"})
    entry = {"client_id": "bench", "jwks": {"keys": [key.as_dict(private=False)]}, "scope": SCOPE}
    registry = folder / "clients.yaml"
    registry.write_text(yaml.safe_dump({"clients": [entry]}))
    return key, registry


def _token(base: str, key: Any) -> str:
    import uuid

    from joserfc import jwt

    url = f"{base}/auth/token"
    claims = {"iss": "bench", "sub": "bench", "aud": url, "exp": int(time.time()) + 240, "jti": str(uuid.uuid4())}
    assertion = jwt.encode({"alg": "ES384", "kid": "bench-key"}, claims, key, algorithms=["ES384"])
    form = {
        "grant_type": "client_credentials",
        "scope": SCOPE,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
    }
    return str(httpx.post(url, data=form).json()["access_token"])


def _interleaved(servers: dict[str, tuple[str, dict[str, str]]], payloads: dict[str, list[bytes]]) -> dict[str, Any]:
    """Median ms of a push of a new visit and of a read of the Claim it made, one request at a time,
    the servers taking turns: both see the same machine and database state (one server after the
    other measured the drift between them, 0.93x to 1.18x from one run to the next)."""
    times: dict[str, dict[str, list[float]]] = {name: {"push_ms": [], "read_ms": []} for name in servers}
    clients = {
        name: httpx.Client(base_url=base, timeout=30, headers=headers) for name, (base, headers) in servers.items()
    }
    try:
        for n in range(len(next(iter(payloads.values())))):
            for name, http in clients.items():
                started = time.perf_counter()
                answer = http.post("/fhir/Claim/$from-encounter", content=payloads[name][n])
                times[name]["push_ms"].append(time.perf_counter() - started)
                location = answer.headers.get("location", "")
                if "/Claim/" in location:
                    started = time.perf_counter()
                    http.get("/fhir/Claim/" + location.split("/Claim/")[1].split("/")[0])
                    times[name]["read_ms"].append(time.perf_counter() - started)
    finally:
        for http in clients.values():
            http.close()
    return {name: {k: statistics.median(v) * 1e3 for k, v in kinds.items()} for name, kinds in times.items()}


def _audit_write_ms(database_url: str, rounds: int) -> float:
    from adapter.service.auth.audit import AuditContext, AuditRecorder
    from adapter.service.store import Store

    store = Store(database_url)
    recorder = AuditRecorder(store)
    times = []
    for _ in range(rounds):
        context = AuditContext(client_id="bench", address="127.0.0.1", interaction="read", entities=["Claim/x"])
        started = time.perf_counter()
        recorder.record_after(context, 200)
        times.append(time.perf_counter() - started)
    store.engine.dispose()
    return statistics.median(times) * 1e3


def auth_section(database_url: str, quick: bool) -> dict[str, Any]:
    count = 60 if quick else 400
    print(f"\n7. Token checking and auditing per request: 1 worker, 1 client, {count} pushes and reads per server")
    with tempfile.TemporaryDirectory() as folder:
        key, registry = _client_and_registry(Path(folder))
        reset_database(database_url)
        running: list[Any] = []
        servers: dict[str, tuple[str, dict[str, str]]] = {}
        try:
            # one after the other, so the first has migrated the shared database before the second starts
            for name, extra in (("protected", {}), ("authenticated", {"THERACLAIM_CLIENTS": str(registry)})):
                port = free_port()
                base = f"http://127.0.0.1:{port}"
                env = {"THERACLAIM_DATABASE_URL": database_url, **extra}
                running.append(start_uvicorn("adapter.service.api:main_app", port, 1, env, True))
                wait_ready(f"{base}/readyz")
                headers = dict(HEADERS)
                if extra:
                    headers["Authorization"] = f"Bearer {_token(base, key)}"
                servers[name] = (base, headers)
            payloads = {
                name: [orjson.dumps(bundles.visit(3, tag + n)) for n in range(count + 20)]
                for name, tag in (("protected", 0), ("authenticated", 100_000))
            }
            _interleaved(servers, {name: p[:20] for name, p in payloads.items()})  # warm-up
            results = _interleaved(servers, {name: p[20:] for name, p in payloads.items()})
        finally:
            for server in running:
                server.terminate()
                server.wait(30)
    audit_ms = _audit_write_ms(database_url, 50 if quick else 200)
    figures: dict[str, Any] = {**results, "audit_write_ms": audit_ms}
    for kind in ("push_ms", "read_ms"):
        protected, authenticated = results["protected"][kind], results["authenticated"][kind]
        token_ratio = authenticated / protected
        total_ratio = authenticated / max(protected - audit_ms, 1e-6)
        figures[f"{kind[:-3]}_token_ratio"] = token_ratio
        figures[f"{kind[:-3]}_auth_and_audit_ratio"] = total_ratio
        print(
            f"{kind[:-3]:<6} protected {protected:6.2f} ms  authenticated {authenticated:6.2f} ms  "
            f"token check {token_ratio:.3f}x  token check + audit {total_ratio:.3f}x (target <= 1.15x)"
        )
    print(f"one AuditEvent write: {audit_ms:.2f} ms (median, in process)")
    return figures
