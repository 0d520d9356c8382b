"""Benchmark section 5: delivery downstream through the outbox on PostgreSQL, to a loopback FHIR server.

- deliveries per second of one worker (a backlog drained), next to the baseline of the same PUTs
  sent straight to the same receiver by one plain httpx client (no outbox);
- the delay from the commit of a Claim change to its arrival at the destination (p50 / p99), with
  one worker running while Claims are written one per transaction, next to the worker's poll interval.
"""

from __future__ import annotations

import statistics
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import httpx
import orjson
import yaml
from sqlalchemy import func, select

from adapter.service.delivery.config import Destinations, load_destinations
from adapter.service.delivery.outbox import enqueue
from adapter.service.delivery.worker import Worker
from adapter.service.migrate import upgrade
from adapter.service.settings import Settings
from adapter.service.store import Store, deliveries
from bench.procs import reset_database as _reset
from bench.receiver import Receiver


def _claim(number: int, version: int) -> dict[str, Any]:
    return {"resourceType": "Claim", "id": f"bench-{number}", "status": "active", "total": {"value": version}}


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def _drain(store: Store, worker: Worker, total: int) -> float:
    started = time.perf_counter()
    while worker.run_once():
        pass
    wall = time.perf_counter() - started
    with store.engine.connect() as connection:
        done = connection.execute(
            select(func.count()).select_from(deliveries).where(deliveries.c.state == "completed")
        ).scalar_one()
    assert done == total, f"{done} of {total} delivered"
    return wall


def _direct(receiver: Receiver, count: int) -> float:
    """The baseline: the same PUTs from one keep-alive client, no database."""
    bodies = [orjson.dumps(_claim(n, 1) | {"meta": {"versionId": "1"}}) for n in range(count)]
    headers = {"Content-Type": "application/fhir+json"}
    with httpx.Client() as client:
        started = time.perf_counter()
        for n, body in enumerate(bodies):
            client.put(f"{receiver.base}/Claim/bench-{n}", content=body, headers=headers | {"X-Request-Id": f"d{n}"})
        return time.perf_counter() - started


def _throughput(store: Store, destinations: Destinations, settings: Settings, count: int) -> dict[str, Any]:
    with Receiver() as receiver:
        direct = _direct(receiver, count)
    with Receiver() as receiver:
        routed = destinations.model_copy(
            update={"destinations": (destinations.destinations[0].model_copy(update={"base": receiver.base}),)}
        )
        now = datetime.now(UTC)
        with store.transaction() as connection:
            for n in range(count):
                enqueue(connection, routed, store.put(connection, _claim(n, 1), now), None, now)
        worker = Worker(store, routed, settings)
        try:
            wall = _drain(store, worker, count)
        finally:
            worker.close()
    rate, baseline = count / wall, count / direct
    print(
        f"one worker: {rate:7.0f} deliveries/s   direct PUTs, no outbox: {baseline:7.0f} /s   "
        f"ratio {rate / baseline:.3f}"
    )
    return {"deliveries": count, "per_worker_per_s": rate, "direct_per_s": baseline, "ratio": rate / baseline}


def _delay(store: Store, destinations: Destinations, settings: Settings, count: int, rate: float) -> dict[str, Any]:
    committed: dict[str, float] = {}
    with Receiver() as receiver:
        routed = destinations.model_copy(
            update={"destinations": (destinations.destinations[0].model_copy(update={"base": receiver.base}),)}
        )
        worker = Worker(store, routed, settings)
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,))
        thread.start()
        try:
            for n in range(count):
                now = datetime.now(UTC)
                with store.transaction() as connection:
                    enqueue(connection, routed, store.put(connection, _claim(n, 2), now), None, now)
                committed[f"bench-{n}"] = time.time()
                time.sleep(1 / rate)
            deadline = time.monotonic() + 60
            while len(receiver.effects) < count and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop.set()
            thread.join(30)
        delays = [request.at - committed[request.claim_id] for request in receiver.requests]
    p50, p99 = statistics.median(delays), _percentile(delays, 0.99)
    poll = settings.delivery_poll_seconds
    print(
        f"commit -> delivery ({count} Claims at {rate:.0f}/s, one worker): p50 {p50 * 1e3:6.1f} ms   "
        f"p99 {p99 * 1e3:6.1f} ms   (poll interval {poll * 1e3:.0f} ms; p50/poll {p50 / poll:.2f})"
    )
    return {"changes": count, "p50_ms": p50 * 1e3, "p99_ms": p99 * 1e3, "poll_ms": poll * 1e3}


def delivery_section(database_url: str, quick: bool) -> dict[str, Any]:
    count = 300 if quick else 3000
    print(f"\n8. delivery through the outbox (PostgreSQL, loopback FHIR destination, {count} deliveries)")
    with TemporaryDirectory() as folder:
        path = Path(folder) / "destinations.yaml"
        entry = {"id": "bench", "kind": "fhir", "base": "http://127.0.0.1:9/fhir"}
        path.write_text(yaml.safe_dump({"destinations": [entry]}), encoding="utf-8")
        settings = Settings(database_url=database_url, destinations=path)
        destinations = load_destinations(path)
    assert destinations is not None
    store = Store(database_url)
    try:
        _reset(database_url)  # the benchmark database starts empty
        upgrade(store)
        figures = {"throughput": _throughput(store, destinations, settings, count)}
        figures["delay"] = _delay(store, destinations, settings, count // 10, 50.0)
    finally:
        store.engine.dispose()
    return figures
