"""``theraclaim batch`` is a faithful replay (issue 10): a bad record, whatever it holds, gets its
OperationOutcome Bundle and the run goes on; every output names its input line; blank lines are
counted; SIGINT / SIGTERM stop the workers, print the summary and exit 130 / 143, and the output
is renamed from OUT.partial to OUT only when complete."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from adapter import batch
from adapter.batch import RECORD_SYSTEM, run_batch
from tests.mutations import SEEDS, replaced
from tests.test_batch import job, visit_line

THERACLAIM = Path(sys.executable).parent / "theraclaim"


def numbers(out: bytes) -> list[str]:
    found = []
    for line in out.splitlines():
        identifier = json.loads(line)["identifier"]
        assert identifier["system"] == RECORD_SYSTEM
        found.append(identifier["value"])
    return found


@pytest.mark.parametrize("workers", [1, 2])
def test_hostile_records_get_their_outcome_and_the_run_goes_on(tmp_path: Path, workers: int) -> None:
    hostile = [
        replaced("rich", ("type",), []),
        replaced("rich", ("entry", 0, "resource"), {}),
        b'{"resourceType": "Bundle", "type": "collection", "entry": [' + b"[" * 5000 + b"]" * 5000 + b"]}",
        b"\xff\xfe not even UTF-8",
    ]
    lines = [visit_line(0).encode(), *hostile, visit_line(1).encode(), b"", b"   ", visit_line(2).encode()]
    source = tmp_path / "in.ndjson"
    source.write_bytes(b"\n".join(lines) + b"\n")
    out, errors = io.BytesIO(), io.StringIO()
    tally = run_batch(source, out, job(), workers, errors)
    assert numbers(out.getvalue()) == ["1", "2", "3", "4", "5", "6", "9"]  # lines 7 and 8 are blank
    assert (tally.records, tally.invalid, tally.claims, tally.blank) == (7, 4, 3, 2)
    assert "(2 blank lines skipped)" in tally.report()
    for number in (2, 3, 4, 5):
        assert f"record {number}: invalid" in errors.getvalue()


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("span_bytes", [1, 3_000, 1 << 20])
def test_line_numbers_and_blank_lines_survive_any_split_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int, span_bytes: int
) -> None:
    """Workers read their own spans of the file: a span ends on a line boundary wherever the
    cut falls (a line longer than a span, CRLF endings, blank lines, no newline at the end)."""
    monkeypatch.setattr(batch, "SPAN_BYTES", span_bytes)
    visits = [visit_line(i).encode() for i in range(6)]
    content = b"\n".join([visits[0], b"", visits[1] + b"\r", b"  \r", visits[2], visits[3], b"", b"", visits[4]])
    source = tmp_path / "in.ndjson"
    source.write_bytes(content + b"\n" + visits[5])  # the last line has no newline
    out, errors = io.BytesIO(), io.StringIO()
    tally = run_batch(source, out, job(), workers, errors)
    assert numbers(out.getvalue()) == ["1", "3", "5", "6", "9", "10"]
    assert (tally.records, tally.invalid, tally.claims, tally.blank) == (6, 0, 6, 4)
    assert errors.getvalue() == ""


def test_workers_spooled_output_is_the_one_workers_output_byte_for_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers write each task's output to a private file, appended to OUT in input order (by
    copy_file_range into a file, by a copy into anything else); the folder is gone afterwards."""
    monkeypatch.setattr(batch, "SPAN_BYTES", 20_000)  # many tasks
    source = tmp_path / "in.ndjson"
    source.write_text("\n".join(visit_line(i) for i in range(120)) + "\n")
    alone = io.BytesIO()
    run_batch(source, alone, job(), 1, io.StringIO())
    into_memory = io.BytesIO()
    run_batch(source, into_memory, job(), 2, io.StringIO(), spool=tmp_path)
    with (tmp_path / "out.ndjson").open("wb") as into_file:
        tally = run_batch(source, into_file, job(), 2, io.StringIO(), spool=tmp_path)
    assert tally.records == 120
    assert into_memory.getvalue() == alone.getvalue() == (tmp_path / "out.ndjson").read_bytes()
    assert not list(tmp_path.glob("theraclaim-batch-*"))


@pytest.mark.skipif(multiprocessing.get_start_method() != "fork", reason="only forked workers share the parent's rules")
def test_forked_workers_convert_with_the_rules_the_parent_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = tmp_path / "loads"
    real = batch.load_rules

    def counted(mappings_dir: Path | None = None) -> Any:
        with loads.open("a") as record:  # (a file: the workers are other processes)
            record.write(f"{os.getpid()}\n")
        return real(mappings_dir)

    monkeypatch.setattr(batch, "load_rules", counted)
    source = tmp_path / "in.ndjson"
    source.write_text("\n".join(visit_line(i) for i in range(200)) + "\n")
    tally = run_batch(source, io.BytesIO(), job(), 2, io.StringIO())
    assert (tally.records, tally.claims) == (200, 200)
    assert loads.read_text().split() == [str(os.getpid())]  # once, in this process


def test_a_record_that_breaks_the_pipeline_is_reported_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = batch.run

    def fragile(payload: bytes, **kwargs: Any) -> Any:
        if b"enc-boom" in payload:
            raise RecursionError("maximum recursion depth exceeded")
        return real(payload, **kwargs)

    monkeypatch.setattr(batch, "run", fragile)
    source = tmp_path / "in.ndjson"
    boom = json.dumps(SEEDS["rich"]).replace("enc-1", "enc-boom")
    source.write_text("\n".join([visit_line(0), boom, visit_line(1)]) + "\n")
    out, errors = io.BytesIO(), io.StringIO()
    tally = run_batch(source, out, job(), 1, errors)
    results = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(results) == 3 and (tally.records, tally.invalid, tally.claims) == (3, 1, 2)
    [issue] = results[1]["entry"][0]["resource"]["issue"]
    assert issue["details"]["coding"][0]["code"] == "processing-failed"
    assert "RecursionError" in issue["details"]["text"]
    assert "record 2: invalid (processing-failed)" in errors.getvalue()


def test_a_pretty_printed_document_is_pointed_to_convert(tmp_path: Path) -> None:
    source = tmp_path / "visit.json"
    source.write_text(json.dumps(SEEDS["rich"], indent=2))
    out = tmp_path / "out.ndjson"
    completed = subprocess.run(
        [str(THERACLAIM), "batch", str(source), "--out", str(out)], capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 2
    assert "pretty-printed" in completed.stderr and f"theraclaim convert {source}" in completed.stderr
    assert completed.stderr.count("\n") == 1, "one message, not one error per line"
    assert not out.exists()


def test_a_complete_run_renames_the_partial_output(tmp_path: Path) -> None:
    source = tmp_path / "in.ndjson"
    source.write_text("\n".join(visit_line(i) for i in range(5)) + "\n")
    out = tmp_path / "out.ndjson"
    completed = subprocess.run(
        [str(THERACLAIM), "batch", str(source), "--out", str(out), "--now", "2025-01-15T12:00:00Z"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert len(out.read_bytes().splitlines()) == 5
    assert not (tmp_path / "out.ndjson.partial").exists()
    assert not list(tmp_path.glob("theraclaim-batch-*")), "the workers' spool folder is removed"


def processes_mentioning(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="the worker check reads /proc")
@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupt_stops_the_workers_prints_the_summary_and_keeps_the_partial_output(
    tmp_path: Path, signum: int, status: int
) -> None:
    source = tmp_path / "in.ndjson"
    source.write_text("\n".join(visit_line(i) for i in range(20_000)) + "\n")
    out = tmp_path / f"out-{signum}.ndjson"
    partial = out.with_name(out.name + ".partial")
    process = subprocess.Popen(
        [str(THERACLAIM), "batch", str(source), "--out", str(out), "--workers", "2", "--now", "2025-01-15T12:00:00Z"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal: a test runner started in the background inherits SIGINT ignored, and an
        # ignored SIGINT is respected (the convention that keeps background jobs alive on Ctrl-C)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while not (partial.exists() and partial.stat().st_size > 0) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    os.kill(process.pid, signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == status, stderr
    assert "Traceback" not in stderr
    assert "interrupted, workers stopped" in stderr and "bundles" in stderr and "claims" in stderr
    assert partial.exists() and not out.exists()
    written = len(partial.read_bytes().splitlines())
    assert 0 < written < 20_000
    deadline = time.monotonic() + 10
    while processes_mentioning(str(out)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_mentioning(str(out)) == [], "worker processes outlived the interrupted batch"
    assert not list(tmp_path.glob("theraclaim-batch-*")), "the workers' spool folder outlived the batch"
