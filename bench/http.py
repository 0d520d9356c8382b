"""Benchmark section 3: HTTP $from-encounter on loopback (PostgreSQL, authentication and audit on)
vs a trivial FastAPI echo of the same bodies, both on 2 uvicorn workers, at 1 and 16 connections.

The load generator is wrk (a compiled client: ``apt-get install wrk``) with one thread, so the
client needs little of the machine's two cores; its own CPU time is reported next to the figures.
Without wrk the section falls back to Python client threads, which compete with the servers for
the cores (the figures are then marked so and are not comparable with wrk's).
Every request pushes another patient's visit, so each makes a new Claim.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench import bundles
from bench.auth import _client_and_registry, _token
from bench.procs import free_port, reset_database, start_uvicorn, wait_ready

WORKERS = 2
CONCURRENCY = (1, 16)
HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}

# wrk's Lua hooks (one thread): the bodies (one per line of args[1]) are sent in turn.
WRK_SCRIPT = """
function init(args)
  bodies, i = {}, 0
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/fhir+json"
  wrk.headers["Accept"] = "application/fhir+json"
  if args[2] ~= "" then wrk.headers["Authorization"] = "Bearer " .. args[2] end
end
function request()
  local body = bodies[(i % #bodies) + 1]
  i = i + 1
  return wrk.format(nil, nil, nil, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nRESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "non_2xx": %d, "socket_errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
"""


def _wrk(url: str, bodies: Path, token: str, connections: int, seconds: float) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "30s"]
    command += ["-s", script.name, url, "--", str(bodies), token]
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out = process.stdout.read() if process.stdout else ""
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        os.unlink(script.name)
    if status != 0 or "RESULT " not in out:
        raise RuntimeError(f"wrk failed: {out[-500:]}")
    r = orjson.loads(out.split("RESULT ", 1)[1].splitlines()[0])
    wall = r["duration_us"] / 1e6
    client_cpu = usage.ru_utime + usage.ru_stime
    return {
        "requests": r["requests"],
        "rps": r["requests"] / wall,
        "p50_ms": r["p50_us"] / 1e3,
        "p99_ms": r["p99_us"] / 1e3,
        "non_2xx": r["non_2xx"],
        "socket_errors": r["socket_errors"],
        "client_cpu_s": client_cpu,
        "client_cores": client_cpu / wall,
        "client": "wrk",
    }


def _threads(url: str, payloads: list[bytes], token: str, connections: int, seconds: float) -> dict[str, Any]:
    """The fallback: ``connections`` Python threads, each sending payloads one after another."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    cursor = iter(range(10**9))
    deadline = time.monotonic() + seconds
    headers = {**HEADERS, **({"Authorization": f"Bearer {token}"} if token else {})}

    def client() -> None:
        with httpx.Client(timeout=30, headers=headers) as http:
            while time.monotonic() < deadline:
                with lock:
                    index = next(cursor)
                started = time.perf_counter()
                status = http.post(url, content=payloads[index % len(payloads)]).status_code
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    failures[0] += status >= 300

    cpu = time.process_time()
    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    client_cpu = time.process_time() - cpu
    ordered = sorted(latencies)
    return {
        "requests": len(ordered),
        "rps": len(ordered) / wall,
        "p50_ms": statistics.median(ordered) * 1e3,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3,
        "non_2xx": failures[0],
        "socket_errors": 0,
        "client_cpu_s": client_cpu,
        "client_cores": client_cpu / wall,
        "client": "python threads (shares the cores with the servers)",
    }


def _load(url: str, token: str, file: Path, payloads: list[bytes], connections: int, seconds: float) -> dict[str, Any]:
    if shutil.which("wrk"):
        return _wrk(url, file, token, connections, seconds)
    return _threads(url, payloads, token, connections, seconds)


def http_section(database_url: str, quick: bool) -> dict[str, Any]:
    seconds = 5.0 if quick else 20.0
    per_run = 600 if quick else 6000  # more than a run can send: every push is a new visit
    wrk = shutil.which("wrk")
    client = "wrk, 1 thread" if wrk else "Python threads (wrk is not installed: apt-get install wrk)"
    print(
        f"\n3. HTTP on loopback: {WORKERS} uvicorn workers, PostgreSQL, auth and audit on; {seconds:.0f} s at "
        f"c={' and c='.join(map(str, CONCURRENCY))}; client: {client}"
    )
    results: dict[str, Any] = {"client": "wrk" if wrk else "python-threads"}
    with tempfile.TemporaryDirectory() as folder:
        key, registry = _client_and_registry(Path(folder))
        runs = {
            c: [orjson.dumps(bundles.visit(3, 1 + i * per_run + n)) for n in range(per_run)]
            for i, c in enumerate((0, *CONCURRENCY))
        }  # 0: the warm-up
        files = {}
        for c, payloads in runs.items():
            files[c] = Path(folder) / f"bodies-{c}.ndjson"
            files[c].write_bytes(b"\n".join(payloads) + b"\n")
        reset_database(database_url)
        for name, target, factory, path, env in (
            ("echo", "bench.echo:app", False, "/echo", {}),
            (
                "from-encounter",
                "adapter.service.api:main_app",
                True,
                "/fhir/Claim/$from-encounter",
                {"THERACLAIM_DATABASE_URL": database_url, "THERACLAIM_CLIENTS": str(registry)},
            ),
        ):
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            server = start_uvicorn(target, port, WORKERS, env, factory)
            try:
                wait_ready(f"{base}{'/readyz' if factory else '/docs'}")
                token = _token(base, key) if factory else ""
                url = f"{base}{path}"

                _load(url, token, files[0], runs[0], 4, 3.0)  # warm-up: connections, caches, the database pool
                results[name] = {f"c{c}": _load(url, token, files[c], runs[c], c, seconds) for c in CONCURRENCY}
            finally:
                server.terminate()
                server.wait(30)
            for c in CONCURRENCY:
                r = results[name][f"c{c}"]
                print(
                    f"{name:<16}c={c:<3}{r['rps']:>8.0f} req/s   p50 {r['p50_ms']:6.1f} ms   p99 {r['p99_ms']:6.1f} ms"
                    f"   non-2xx {r['non_2xx']}   client CPU {r['client_cores']:.2f} cores"
                )
    push, echo = results["from-encounter"], results["echo"]
    results["c1_p50_over_echo"] = push["c1"]["p50_ms"] / echo["c1"]["p50_ms"]
    results["c1_p99_over_p50"] = push["c1"]["p99_ms"] / push["c1"]["p50_ms"]
    results["c16_rps_over_echo"] = push["c16"]["rps"] / echo["c16"]["rps"]
    results["c16_p99_over_p50"] = push["c16"]["p99_ms"] / push["c16"]["p50_ms"]
    return results
