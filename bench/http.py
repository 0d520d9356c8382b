"""Benchmark section 3: HTTP $from-encounter on loopback with PostgreSQL vs an echo endpoint."""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import httpx
import orjson

from bench import bundles
from bench.procs import free_port, reset_database, start_uvicorn, wait_ready

CLIENTS = 16
WORKERS = 2
HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


def _load(url: str, payloads: list[bytes], seconds: float) -> dict[str, Any]:
    """16 clients send the payloads (each once) until done or ``seconds`` pass."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    cursor = iter(range(len(payloads)))
    deadline = time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(timeout=30) as http:
            while time.monotonic() < deadline:
                with lock:
                    index = next(cursor, None)
                if index is None:
                    return
                started = time.perf_counter()
                status = http.post(url, content=payloads[index], headers=HEADERS).status_code
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "rps": len(ordered) / wall,
        "p50_ms": statistics.median(ordered) * 1e3,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3,
        "statuses": statuses,
    }


def http_section(database_url: str, quick: bool) -> dict[str, Any]:
    count, seconds = (400, 10.0) if quick else (3000, 30.0)
    payloads = [orjson.dumps(bundles.visit(3, number)) for number in range(count)]
    print(f"\n3. HTTP on loopback: {WORKERS} uvicorn workers, {CLIENTS} clients, {count} requests or {seconds:.0f} s")
    reset_database(database_url)
    results = {}
    for name, target, factory, path, env in (
        ("echo", "bench.echo:app", False, "/echo", {}),
        (
            "from-encounter",
            "adapter.service.api:main_app",
            True,
            "/fhir/Claim/$from-encounter",
            {"THERACLAIM_DATABASE_URL": database_url},
        ),
    ):
        port = free_port()
        server = start_uvicorn(target, port, WORKERS, env, factory)
        try:
            wait_ready(f"http://127.0.0.1:{port}{'/readyz' if factory else '/docs'}")
            _load(f"http://127.0.0.1:{port}{path}", payloads[:50], seconds)  # warm-up (connections, caches)
            results[name] = _load(f"http://127.0.0.1:{port}{path}", payloads[50:], seconds)
        finally:
            server.terminate()
            server.wait(30)
        r = results[name]
        print(
            f"{name:<16}{r['rps']:>9.0f} req/s   p50 {r['p50_ms']:6.1f} ms   p99 {r['p99_ms']:6.1f} ms   "
            f"statuses {r['statuses']}"
        )
    ratio = results["from-encounter"]["rps"] / results["echo"]["rps"]
    print(f"$from-encounter / echo requests per second: {ratio:.3f}")
    return {**results, "rps_ratio": ratio}
