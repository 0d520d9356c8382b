"""Benchmark section 3: HTTP $from-encounter on loopback (PostgreSQL, authentication and audit on)
vs a trivial FastAPI echo of the same bodies, both on 2 uvicorn workers, at 1 and 16 connections.

The load generator is wrk (a compiled client: ``apt-get install wrk``) with one thread, so the
client needs little of the machine's two cores; its own CPU time is reported next to the figures.
Without wrk the section is skipped (and says so): Python client threads would compete with the
servers for the cores, and their figures would not be comparable.
Every request pushes another patient's visit, so each makes a new Claim.

Next to the figures, the CPU each request cost (the server's workers, the local PostgreSQL's
processes, wrk), and the CPU per request a target leaves on this machine's cores: on two cores,
0.4x the echo's c=16 throughput leaves 0.5-1 ms of CPU per request for all three together.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import orjson

from bench import bundles
from bench.auth import _client_and_registry, _token
from bench.procs import free_port, postgres_pid, reset_database, start_uvicorn, tree_cpu_seconds, wait_ready

WORKERS = 2
CONCURRENCY = (1, 16)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")

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


def _measured(
    url: str, bodies: Path, token: str, connections: int, seconds: float, server: int, database: int | None
) -> dict[str, Any]:
    """One wrk run, with the CPU milliseconds per request the server's process tree and the
    database's (None when it is not on this machine) used meanwhile."""
    server_before = tree_cpu_seconds(server)
    database_before = tree_cpu_seconds(database) if database is not None else 0.0
    r = _wrk(url, bodies, token, connections, seconds)
    per_request = 1e3 / max(r["requests"], 1)
    r["server_cpu_ms"] = (tree_cpu_seconds(server) - server_before) * per_request
    r["database_cpu_ms"] = (
        (tree_cpu_seconds(database) - database_before) * per_request if database is not None else None
    )
    r["client_cpu_ms"] = r["client_cpu_s"] * per_request
    return r


def _local_postgres(database_url: str) -> int | None:
    """The postmaster to count, when the benchmark's database is a PostgreSQL on this machine."""
    local = database_url.startswith("postgresql") and any(f"@{host}" in database_url for host in LOCAL_HOSTS)
    return postgres_pid() if local else None


def http_section(database_url: str, quick: bool) -> dict[str, Any] | None:
    seconds = 5.0 if quick else 20.0
    per_run = 600 if quick else 6000  # more than a run can send: every push is a new visit
    print(
        f"\n3. HTTP on loopback: {WORKERS} uvicorn workers, PostgreSQL, auth and audit on; {seconds:.0f} s at "
        f"c={' and c='.join(map(str, CONCURRENCY))}; client: wrk, 1 thread"
    )
    if shutil.which("wrk") is None:
        print("skipped: wrk is not installed (apt-get install wrk)")
        return None
    results: dict[str, Any] = {"client": "wrk"}
    with tempfile.TemporaryDirectory() as folder:
        key, registry = _client_and_registry(Path(folder))
        files = {c: Path(folder) / f"bodies-{c}.ndjson" for c in (0, *CONCURRENCY)}  # 0: the warm-up
        for i, file in enumerate(files.values()):
            file.write_bytes(
                b"".join(orjson.dumps(bundles.visit(3, 1 + i * per_run + n)) + b"\n" for n in range(per_run))
            )
        reset_database(database_url)
        database = _local_postgres(database_url)
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
                _wrk(url, files[0], token, 4, 3.0)  # warm-up: connections, caches, the database pool
                results[name] = {
                    f"c{c}": _measured(url, files[c], token, c, seconds, server.pid, database) for c in CONCURRENCY
                }
            finally:
                server.terminate()
                server.wait(30)
            for c in CONCURRENCY:
                r = results[name][f"c{c}"]
                print(
                    f"{name:<16}c={c:<3}{r['rps']:>8.0f} req/s   p50 {r['p50_ms']:6.1f} ms   p99 {r['p99_ms']:6.1f} ms"
                    f"   non-2xx {r['non_2xx']}   client CPU {r['client_cores']:.2f} cores"
                    f"\n{'':<20}CPU per request: server {r['server_cpu_ms']:.2f} ms, "
                    f"PostgreSQL {_ms(r['database_cpu_ms'])}, wrk {r['client_cpu_ms']:.2f} ms"
                )
    push, echo = results["from-encounter"], results["echo"]
    results["c1_p50_over_echo"] = push["c1"]["p50_ms"] / echo["c1"]["p50_ms"]
    results["c1_p99_over_p50"] = push["c1"]["p99_ms"] / push["c1"]["p50_ms"]
    results["c16_rps_over_echo"] = push["c16"]["rps"] / echo["c16"]["rps"]
    results["c16_p99_over_p50"] = push["c16"]["p99_ms"] / push["c16"]["p50_ms"]
    # What the targets leave: at 0.4x the echo's c=16 throughput, the machine's cores give each
    # request this much CPU (server, database and client together); at c=1, a p50 of 3x the echo's
    # is the time one request has for its worker's and its database's CPU, which it needs in turn.
    cores = os.cpu_count() or 1
    results["c16_cpu_budget_ms"] = cores * 1e3 / (0.4 * echo["c16"]["rps"])
    results["c16_cpu_ms"] = _total_cpu_ms(push["c16"], client=True)
    results["c1_p50_budget_ms"] = 3 * echo["c1"]["p50_ms"]
    results["c1_cpu_ms"] = _total_cpu_ms(push["c1"], client=False)
    print(
        f"the targets leave: c=16 {results['c16_cpu_budget_ms']:.2f} ms of CPU per request on {cores} cores "
        f"(this run: {results['c16_cpu_ms']:.2f} ms); c=1 p50 {results['c1_p50_budget_ms']:.2f} ms "
        f"(this run's server and database CPU per request: {results['c1_cpu_ms']:.2f} ms)"
    )
    return results


def _ms(value: float | None) -> str:
    return "not counted (not on this machine)" if value is None else f"{value:.2f} ms"


def _total_cpu_ms(run: dict[str, Any], client: bool) -> float:
    return run["server_cpu_ms"] + (run["database_cpu_ms"] or 0.0) + (run["client_cpu_ms"] if client else 0.0)
