"""``theraclaim batch``: replay many Bundles through the rules, streaming, in input order.

Input is NDJSON (one Bundle per line) or a folder of ``*.json`` files; output is NDJSON with one
result Bundle per input record, in the same order, each naming its input line (or file) number in
``Bundle.identifier``.  A bad record, whatever it holds, gets its OperationOutcome Bundle and its
number on stderr: one bad line never loses the run.  Blank lines are counted, not converted.
Memory stays constant: at most ``WINDOW_PER_WORKER`` chunks per worker are in flight, whatever the
input size.  Workers are processes, each loading the rule data once; an interrupt (SIGINT,
SIGTERM) terminates them and the caller reports what was done.
"""

from __future__ import annotations

import gc
import hashlib
import multiprocessing
import os
import signal
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from adapter.errors import InputError, Problem
from adapter.intake.wire import Limits
from adapter.output.fhir import render_invalid
from adapter.pipeline import Result, run
from adapter.rules.catalog import Rules, load_rules
from adapter.rules.claim import ClaimOptions

CHUNK = 64  # records per task: amortises inter-process overhead
WINDOW_PER_WORKER = 4  # chunks in flight per worker: bounds memory
RECORD_SYSTEM = "https://theraclaim.org/fhir/NamingSystem/batch-input-record"  # Bundle.identifier of each output


@dataclass(frozen=True)
class Job:
    """What every record is converted with (picklable, sent once per worker)."""

    now: datetime
    payer: str | None
    options: ClaimOptions
    limits: Limits
    validation: str
    mappings_dir: Path | None


@dataclass
class Tally:
    records: int = 0
    blank: int = 0
    invalid: int = 0
    encounters: int = 0
    claims: int = 0
    held: int = 0
    without_claim: int = 0
    blocked: int = 0
    findings: Counter[str] = field(default_factory=Counter)

    def add(self, summary: tuple[Any, ...]) -> None:
        invalid, encounters, claims, held, without, blocked, codes, _ = summary
        self.records += 1
        self.invalid += invalid
        self.encounters += encounters
        self.claims += claims
        self.held += held
        self.without_claim += without
        self.blocked += blocked
        self.findings.update(codes)

    def report(self) -> str:
        blank = f" ({self.blank} blank lines skipped)" if self.blank else ""
        lines = [
            f"{self.records} bundles{blank}: {self.claims} claims ({self.held} held for review), {self.invalid} "
            f"invalid, {self.without_claim} encounters without a claim, {self.blocked} with blocked lines",
        ]
        if self.findings:
            lines.append("findings: " + ", ".join(f"{code} {n}" for code, n in self.findings.most_common()))
        return "\n".join(lines)

    @property
    def exit_code(self) -> int:
        return 2 if self.invalid else 1 if self.without_claim else 0


def _first_problem(result: Result) -> str:
    """The first issue of an invalid result, as ``code at path`` (codes and paths only: no PHI)."""
    issue = result.bundle["entry"][0]["resource"]["issue"][0]
    where = f" at {issue['expression'][0]}" if issue.get("expression") else ""
    return f"{issue['details']['coding'][0]['code']}{where}"


def _summary(result: Result) -> tuple[Any, ...]:
    outcomes = result.outcomes
    return (
        int(result.invalid),
        len(outcomes),
        sum(1 for o in outcomes if o.status),
        sum(1 for o in outcomes if o.status == "draft"),
        sum(1 for o in outcomes if not o.status),
        sum(1 for o in outcomes if "procedures-blocked" in o.findings),
        tuple(code for o in outcomes for code in o.findings),
        _first_problem(result) if result.invalid else "",
    )


_worker_rules: Rules | None = None
_worker_job: Job | None = None


def _load(job: Job) -> None:
    global _worker_rules, _worker_job
    _worker_rules, _worker_job = load_rules(job.mappings_dir), job
    gc.freeze()  # the modules and rule data live as long as the run: the collector need not scan them again


def _init_worker(job: Job) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C reaches the workers too: the parent decides
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler: the pool's terminate() must end us
    _load(job)


def convert_records(records: list[tuple[int, bytes]]) -> list[tuple[int, bytes, tuple[Any, ...]]]:
    """Convert records (line number, bytes) with the worker's rules; returns compact output lines
    (each with its newline)."""
    assert _worker_rules is not None and _worker_job is not None
    return [_convert(number, payload, _worker_rules, _worker_job) for number, payload in records]


def _convert(number: int, payload: bytes, rules: Rules, job: Job) -> tuple[int, bytes, tuple[Any, ...]]:
    try:
        result = run(
            payload,
            rules=rules,
            now=job.now,
            payer=job.payer,
            options=job.options,
            limits=job.limits,
            validation=job.validation,
        )
    except Exception as error:  # a record, whatever it holds, must not end the run; the type says enough
        failed = InputError(
            [
                Problem(
                    "processing-failed",
                    f"the record could not be processed ({type(error).__name__})",
                    None,
                    "exception",
                )
            ]
        )
        result = Result(render_invalid(failed, hashlib.sha256(payload).hexdigest(), job.now), (), invalid=True)
    bundle = result.bundle
    numbered = {"resourceType": bundle["resourceType"], "id": bundle["id"]}
    numbered["identifier"] = {"system": RECORD_SYSTEM, "value": str(number)}
    return number, orjson.dumps(numbered | bundle, option=orjson.OPT_APPEND_NEWLINE), _summary(result)


def read_records(source: Path, tally: Tally) -> Iterator[tuple[int, bytes]]:
    """(line number or file number, bytes) of every input record, lazily; blank lines are counted."""
    if source.is_dir():
        for number, path in enumerate(sorted(p for p in source.iterdir() if p.suffix == ".json"), start=1):
            yield number, path.read_bytes()
        return
    with source.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line.rstrip(b"\r\n")
            else:
                tally.blank += 1


def _chunks(records: Iterator[tuple[int, bytes]]) -> Iterator[list[tuple[int, bytes]]]:
    chunk: list[tuple[int, bytes]] = []
    for record in records:
        chunk.append(record)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _size(chunk: list[tuple[int, bytes]]) -> int:
    """Bytes of input a chunk stands for (its records plus their newlines), for the ETA."""
    return sum(len(payload) + 1 for _, payload in chunk)


class Progress:
    """Rate and ETA on a terminal (by bytes of input read); silent when stderr is not a TTY."""

    def __init__(self, source: Path, stream: IO[str]) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.total = source.stat().st_size if source.is_file() else 0
        self.started = time.monotonic()
        self.done = 0
        self.done_bytes = 0

    def advance(self, records: int, size: int) -> None:
        self.done += records
        self.done_bytes += size
        if not self.enabled:
            return
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        eta = ""
        if self.total and self.done_bytes:
            remaining = elapsed * (self.total - self.done_bytes) / self.done_bytes
            eta = f"  ETA {int(remaining // 60)}:{int(remaining % 60):02d}"
        self.stream.write(f"\r{self.done} bundles  {rate:,.0f}/s{eta}   ")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\n")


def run_batch(
    source: Path,
    out: IO[bytes],
    job: Job,
    workers: int,
    errors: IO[str],
    tally: Tally | None = None,
    records: Iterator[tuple[int, bytes]] | None = None,
) -> Tally:
    """Convert every record of ``source`` (or the ``records`` given, e.g. the Bundles assembled
    from a Bulk Data export) into ``out`` in input order; returns the tally.

    Pass ``tally`` to keep the counts of what was written when an interrupt (KeyboardInterrupt, or
    the exception a SIGTERM handler raises) ends the run early: the workers are terminated first.
    """
    tally = tally if tally is not None else Tally()
    progress = Progress(source, errors)

    def emit(results: list[tuple[int, bytes, tuple[Any, ...]]], size: int) -> None:
        for number, line, summary in results:
            out.write(line)
            tally.add(summary)
            if summary[0]:
                errors.write(f"record {number}: invalid ({summary[-1]}); its OperationOutcome is in the output\n")
        progress.advance(len(results), size)

    records = read_records(source, tally) if records is None else records
    if workers <= 1:
        _load(job)
        for chunk in _chunks(records):
            emit(convert_records(chunk), _size(chunk))
    else:
        pool = multiprocessing.Pool(workers, initializer=_init_worker, initargs=(job,))
        try:
            pending: deque[tuple[Any, int]] = deque()
            for chunk in _chunks(records):
                pending.append((pool.apply_async(convert_records, (chunk,)), _size(chunk)))
                if len(pending) >= workers * WINDOW_PER_WORKER:
                    result, size = pending.popleft()
                    emit(result.get(), size)
            while pending:
                result, size = pending.popleft()
                emit(result.get(), size)
            pool.close()
        finally:
            pool.terminate()  # at the end a no-op; on an interrupt it stops the workers at once
            pool.join()
    progress.finish()
    return tally


def looks_like_one_document(source: Path, max_bytes: int) -> bool:
    """True when an NDJSON input is rather one JSON object spread over lines (pretty-printed)."""
    if source.is_dir() or source.stat().st_size > max_bytes:
        return False
    with source.open("rb") as handle:
        first = next((line for line in handle if line.strip()), b"")
    try:
        orjson.loads(first)
        return False
    except orjson.JSONDecodeError:
        pass
    try:
        return isinstance(orjson.loads(source.read_bytes()), dict)
    except orjson.JSONDecodeError:
        return False


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
