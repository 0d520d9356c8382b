"""``theraclaim batch``: replay many Bundles through the rules, streaming, in input order.

Input is NDJSON (one Bundle per line) or a folder of ``*.json`` files; output is NDJSON with one
result Bundle per input record, in the same order, each naming its input line (or file) number in
``Bundle.identifier``.  A bad record, whatever it holds, gets its OperationOutcome Bundle and its
number on stderr: one bad line never loses the run.  Blank lines are counted, not converted.
Memory stays constant: at most ``WINDOW_PER_WORKER`` tasks per worker are in flight, whatever the
input size.  Workers are processes that read their own spans of an NDJSON file and write each
span's output to a file of a private spool folder, returning its tally (the parent only orders and
appends, in the kernel: with two workers on two cores, any work of the parent's is taken from a
worker); forked workers share the rule data the parent loaded.  An interrupt (SIGINT, SIGTERM)
terminates them and the caller reports what was done.
"""

from __future__ import annotations

import gc
import hashlib
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
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

CHUNK = 64  # given records per task: amortises inter-process overhead
SPAN_BYTES = 256 * 1024  # the same for the lines of an NDJSON file (about 50 one-visit Bundles)
WINDOW_PER_WORKER = 4  # tasks in flight per worker: bounds memory
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

    def add(self, result: Result) -> None:
        outcomes = result.outcomes
        self.records += 1
        self.invalid += result.invalid
        self.encounters += len(outcomes)
        for outcome in outcomes:
            self.claims += bool(outcome.status)
            self.held += outcome.status == "draft"
            self.without_claim += not outcome.status
            self.blocked += "procedures-blocked" in outcome.findings
            self.findings.update(outcome.findings)

    def merge(self, other: Tally) -> None:
        """Add the counts of ``other`` (a task's, from a worker)."""
        for counted in fields(self):
            setattr(self, counted.name, getattr(self, counted.name) + getattr(other, counted.name))

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


_worker_rules: Rules | None = None
_worker_job: Job | None = None


def _load(job: Job, rules: Rules | None = None) -> None:
    global _worker_rules, _worker_job
    _worker_rules, _worker_job = rules or load_rules(job.mappings_dir), job
    gc.freeze()  # the modules and rule data live as long as the run: the collector need not scan them again


def _init_worker(job: Job) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C reaches the workers too: the parent decides
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler: the pool's terminate() must end us
    if _worker_job is not job:  # (a forked worker has the parent's rules; a spawned one loads its own)
        _load(job)


@dataclass
class Converted:
    """A task's output, as a worker returns it: few objects to pickle, whatever the task's size."""

    lines: bytes  # the output records, compact JSON, each with its newline, in input order
    tally: Tally
    invalid: list[tuple[int, str]]  # (record number, its first problem) of each invalid record
    spooled: str | None = None  # the file a pool's worker wrote ``lines`` to instead (then empty)


def convert_records(records: list[tuple[int, bytes]]) -> Converted:
    """Convert records (line number, bytes) with the worker's rules."""
    assert _worker_rules is not None and _worker_job is not None
    tally, invalid, lines = Tally(), [], []
    for number, payload in records:
        result = _convert(payload, _worker_rules, _worker_job)
        tally.add(result)
        if result.invalid:
            invalid.append((number, _first_problem(result)))
        bundle = result.bundle
        numbered = {"resourceType": bundle["resourceType"], "id": bundle["id"]}
        numbered["identifier"] = {"system": RECORD_SYSTEM, "value": str(number)}
        lines.append(orjson.dumps(numbered | bundle, option=orjson.OPT_APPEND_NEWLINE))
    return Converted(b"".join(lines), tally, invalid)


def _convert(payload: bytes, rules: Rules, job: Job) -> Result:
    try:
        return run(
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
        return Result(render_invalid(failed, hashlib.sha256(payload).hexdigest(), job.now), (), invalid=True)


@dataclass(frozen=True)
class Span:
    """Whole lines of an NDJSON input that a worker reads itself: the parent sends where they are,
    not their bytes (which would cross a pipe and be pickled twice)."""

    path: Path
    offset: int
    size: int
    first_line: int

    def records(self) -> tuple[list[tuple[int, bytes]], int]:
        """(line number, bytes) of its non-blank lines, and how many lines were blank."""
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            lines = handle.read(self.size).split(b"\n")
        if lines[-1] == b"":  # (the newline ending the span's last line)
            lines.pop()
        records = [(number, line.rstrip(b"\r")) for number, line in enumerate(lines, self.first_line) if line.strip()]
        return records, len(lines) - len(records)


Task = Span | list[tuple[int, bytes]]  # what one worker call converts: lines of the input file, or given records


def convert_task(task: Task) -> Converted:
    """Convert a task's records with the worker's rules."""
    if isinstance(task, list):
        return convert_records(task)
    records, blank = task.records()
    converted = convert_records(records)
    converted.tally.blank = blank
    return converted


def convert_spooled(task: Task, folder: str) -> Converted:
    """convert_task in a pool's worker: the output goes to a file in ``folder``, not through the pool's
    pipe, which cost the parent a read, an unpickling and a write of every byte (with two workers on
    two cores, CPU taken from a worker)."""
    converted = convert_task(task)
    descriptor, path = tempfile.mkstemp(dir=folder)  # (readable by this user only)
    with os.fdopen(descriptor, "wb") as spool:
        spool.write(converted.lines)
    converted.lines, converted.spooled = b"", path
    return converted


def _append(out: IO[bytes], path: str) -> None:
    """A worker's spooled output at the end of ``out`` (copied by the kernel when ``out`` is a file), then deleted."""
    with open(path, "rb") as spooled:
        size, copied = os.fstat(spooled.fileno()).st_size, 0
        try:
            out.flush()
            while copied < size:
                step = os.copy_file_range(spooled.fileno(), out.fileno(), size - copied)
                if not step:
                    raise OSError(f"{path}: {size - copied} bytes short")
                copied += step
        except (AttributeError, OSError):  # not Linux, or ``out`` is a pipe or in memory (UnsupportedOperation)
            if copied:
                raise
            shutil.copyfileobj(spooled, out)
    os.unlink(path)


def _spans(source: Path) -> Iterator[Span]:
    """The NDJSON file in spans of whole lines of about SPAN_BYTES (one longer line is a span of its own)."""
    offset, line = 0, 1
    with source.open("rb") as handle:
        while lines := handle.readlines(SPAN_BYTES):
            size = sum(map(len, lines))
            yield Span(source, offset, size, line)
            offset, line = offset + size, line + len(lines)


def _files(folder: Path) -> Iterator[tuple[int, bytes]]:
    """(file number, bytes) of the folder's ``*.json`` files, in name order, lazily."""
    for number, path in enumerate(sorted(p for p in folder.iterdir() if p.suffix == ".json"), start=1):
        yield number, path.read_bytes()


def _chunks(records: Iterator[tuple[int, bytes]]) -> Iterator[list[tuple[int, bytes]]]:
    chunk: list[tuple[int, bytes]] = []
    for record in records:
        chunk.append(record)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _tasks(source: Path, records: Iterator[tuple[int, bytes]] | None) -> Iterator[tuple[Task, int]]:
    """Each task with the bytes of input it stands for (for the ETA)."""
    if records is None and source.is_file():
        yield from ((span, span.size) for span in _spans(source))
        return
    for chunk in _chunks(_files(source) if records is None else records):
        yield chunk, sum(len(payload) + 1 for _, payload in chunk)


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
    rules: Rules | None = None,
    spool: Path | None = None,
) -> Tally:
    """Convert every record of ``source`` (or the ``records`` given, e.g. the Bundles assembled
    from a Bulk Data export) into ``out`` in input order; returns the tally.  ``rules``: the job's,
    if already loaded.  ``spool``: where several workers' output waits for its turn, in a private
    folder removed at the end (default: the system's temporary folder; it holds PHI, so the CLI puts
    it beside OUT).

    Pass ``tally`` to keep the counts of what was written when an interrupt (KeyboardInterrupt, or
    the exception a SIGTERM handler raises) ends the run early: the workers are terminated first.
    """
    tally = tally if tally is not None else Tally()
    progress = Progress(source, errors)

    def emit(converted: Converted, size: int) -> None:
        if converted.spooled is None:
            out.write(converted.lines)
        else:
            _append(out, converted.spooled)
        tally.merge(converted.tally)
        for number, problem in converted.invalid:
            errors.write(f"record {number}: invalid ({problem}); its OperationOutcome is in the output\n")
        progress.advance(converted.tally.records, size)

    _load(job, rules)  # (forked workers inherit what the parent loaded)
    if workers <= 1:
        for task, size in _tasks(source, records):
            emit(convert_task(task), size)
    else:
        with tempfile.TemporaryDirectory(prefix="theraclaim-batch-", dir=spool) as folder:
            pool = multiprocessing.Pool(workers, initializer=_init_worker, initargs=(job,))
            try:
                pending: deque[tuple[Any, int]] = deque()
                for task, size in _tasks(source, records):
                    pending.append((pool.apply_async(convert_spooled, (task, folder)), size))
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
