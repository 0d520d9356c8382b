"""Benchmark section 6: the HL7 v2 door.

a. in process: one DFT^P03 message through ``convert_message`` (parse, map, rules, ACK) vs the
   same visit as the FHIR Bundle it maps to, through ``run`` (target: at most 1.3x); and the same
   at the service level on PostgreSQL: ``Hl7v2Door.handle`` (convert, store the inputs, the Claim
   and the ledger row, commit, ACK) vs ``ClaimService.from_encounter`` of the Bundle (store the Claim);
b. MLLP on loopback: one uvicorn worker (one core) with the listener, PostgreSQL, 8 connections
   each sending distinct messages and waiting for each ACK (messages/s, ACK latency p50 / p99),
   vs an MLLP echo that answers a fixed ACK at once (the transport's own cost), served the same way.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from adapter.intake.hl7v2 import convert_message, packaged_mapping
from adapter.intake.hl7v2.message import read
from adapter.pipeline import run
from adapter.rules.catalog import load_rules
from bench.procs import ROOT, free_port, reset_database, start_uvicorn, wait_ready
from tests.hl7v2.messages import visit

NOW = datetime(2025, 1, 15, 12, tzinfo=UTC)
CONNECTIONS = 8
START, END = b"\x0b", b"\x1c\x0d"


def message(number: int) -> bytes:
    """The test suite's visit (97124 with PR1 minutes, 97140 over an FT1-4 range), numbered, each
    another patient's (one patient's visits of a day make the day's one Claim)."""
    raw = visit(f"B{number:07d}", visit_number=f"V-B{number:07d}")
    return raw.replace(b"|MRN123^", f"|MRN{number:07d}^".encode())


def in_process(median: Any, quick: bool) -> dict[str, Any]:
    rules, mapping = load_rules(), packaged_mapping()
    raw = message(0)
    _, converted = read(raw, mapping, UTC)
    bundle = orjson.dumps(converted.bundle)
    budget = 0.3 if quick else 1.0
    v2 = median(lambda: convert_message(raw, rules=rules, mapping=mapping, now=NOW, tz=UTC), budget)
    fhir = median(lambda: run(bundle, rules=rules, now=NOW), budget)
    ratio = v2 / fhir
    print(
        f"\n6a. one visit in process: v2 message {v2 * 1e6:.0f} us ({len(raw)} B) vs the same visit as a FHIR Bundle "
        f"{fhir * 1e6:.0f} us ({len(bundle)} B): {ratio:.2f}x (target <= 1.3x)"
    )
    return {"v2_s": v2, "fhir_s": fhir, "ratio": ratio, "v2_bytes": len(raw), "fhir_bytes": len(bundle)}


def service_level(database_url: str, quick: bool) -> dict[str, Any]:
    from adapter.service.claims import ClaimService
    from adapter.service.hl7v2.door import Hl7v2Door
    from adapter.service.migrate import upgrade
    from adapter.service.settings import Settings
    from adapter.service.store import Store
    from adapter.service.transaction import TransactionService

    reset_database(database_url)
    settings = Settings(database_url=database_url)
    store = Store(database_url)
    upgrade(store)
    claims = ClaimService(store, load_rules(), settings)
    door = Hl7v2Door(claims)
    transactions = TransactionService(store, claims)
    count = 100 if quick else 400
    raws = [message(n) for n in range(10_000, 10_000 + 3 * count)]
    bundles = [read(raw, door.mapping, UTC)[1].bundle for raw in raws]
    times: dict[str, list[float]] = {"v2": [], "from-encounter": [], "transaction": []}
    for n in range(count):  # interleaved, so all three see the same database state; each visit is new
        actions: list[tuple[str, Callable[[], object]]] = [
            ("v2", lambda n=n: door.handle(raws[3 * n])),
            ("from-encounter", lambda n=n: claims.from_encounter(orjson.dumps(bundles[3 * n + 1]), None)),
            ("transaction", lambda n=n: transactions.process(_transaction(bundles[3 * n + 2]))),
        ]
        for name, action in actions:
            started = time.perf_counter()
            action()
            times[name].append(time.perf_counter() - started)
    store.engine.dispose()
    median = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"    service level on {store.dialect}, median per visit: door.handle {median['v2'] * 1e3:.1f} ms, "
        f"$from-encounter {median['from-encounter'] * 1e3:.1f} ms (stores the Claim), transaction "
        f"{median['transaction'] * 1e3:.1f} ms (stores the inputs and the Claim, as the door does): "
        f"{median['v2'] / median['transaction']:.2f}x the transaction"
    )
    return {"median_s": median, "ratio_to_transaction": median["v2"] / median["transaction"], "visits": count}


def _transaction(bundle: dict[str, Any]) -> dict[str, Any]:
    """The same visit as a FHIR transaction (a PUT of every resource), as an EHR pushing its inputs sends it."""
    entries = [
        {
            "fullUrl": e["fullUrl"],
            "resource": e["resource"],
            "request": {"method": "PUT", "url": f"{e['resource']['resourceType']}/{e['resource']['id']}"},
        }
        for e in bundle["entry"]
    ]
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def _client(port: int, payloads: list[bytes], latencies: list[float], lock: threading.Lock) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        pending = b""
        for payload in payloads:
            started = time.perf_counter()
            sock.sendall(START + payload + END)
            while END not in pending:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("the listener closed the connection")
                pending += chunk
            ack, _, pending = pending.partition(END)
            if b"MSA|AA|" not in ack and b"MSA|CA|" not in ack:
                raise AssertionError(ack[:300])
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)


def _load(port: int, payloads: list[bytes]) -> dict[str, Any]:
    latencies: list[float] = []
    lock = threading.Lock()
    shares = [payloads[i::CONNECTIONS] for i in range(CONNECTIONS)]
    threads = [threading.Thread(target=_client, args=(port, share, latencies, lock)) for share in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "messages": len(ordered),
        "per_second": len(ordered) / wall,
        "p50_ms": statistics.median(ordered) * 1e3,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3,
    }


def _wait_port(port: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port}")


def mllp(database_url: str, quick: bool) -> dict[str, Any]:
    count = 400 if quick else 3000
    payloads = [message(n) for n in range(1, count + 1)]
    print(f"\n6b. MLLP on loopback: 1 uvicorn worker, {CONNECTIONS} connections, {count} messages")
    reset_database(database_url)
    results = {}
    echo_port = free_port()
    echo = subprocess.Popen([sys.executable, "-m", "bench.hl7v2", str(echo_port)], cwd=ROOT)
    try:
        _wait_port(echo_port)
        results["echo"] = _load(echo_port, payloads)
    finally:
        echo.terminate()
        echo.wait(30)
    http, port = free_port(), free_port()
    env = {
        "THERACLAIM_DATABASE_URL": database_url,
        "THERACLAIM_MLLP_PORT": str(port),
        "THERACLAIM_MLLP_HOST": "127.0.0.1",
    }
    server = start_uvicorn("adapter.service.api:main_app", http, 1, env, True)
    try:
        wait_ready(f"http://127.0.0.1:{http}/readyz")
        _wait_port(port)
        _load(port, [message(n) for n in range(count + 1, count + 51)])  # warm-up
        results["door"] = _load(port, payloads)
    finally:
        server.terminate()
        server.wait(30)
    for name, r in results.items():
        print(
            f"{name:<8}{r['per_second']:>9.0f} messages/s   ACK p50 {r['p50_ms']:6.1f} ms   p99 {r['p99_ms']:6.1f} ms"
        )
    ratio = results["door"]["per_second"] / results["echo"]["per_second"]
    print(f"door / echo messages per second: {ratio:.3f} (one worker = one core)")
    return {**results, "ratio": ratio}


def hl7v2_section(database_url: str, quick: bool, median: Any) -> dict[str, Any]:
    return {
        "in_process": in_process(median, quick),
        "service_level": service_level(database_url, quick),
        "mllp": mllp(database_url, quick),
    }


async def _echo(port: int) -> None:
    """An MLLP peer that answers every frame with a fixed AA at once: the transport's baseline."""
    ack = START + b"MSH|^~\\&|ECHO||||20250101000000||ACK^P03^ACK|1|P|2.5.1\rMSA|AA|1\r" + END

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = b""
        while data := await reader.read(65536):
            buffer += data
            while END in buffer:
                _, _, buffer = buffer.partition(END)
                writer.write(ack)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(_echo(int(sys.argv[1])))
