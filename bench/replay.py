"""Benchmark section 4: ``theraclaim batch`` of many bundles with 1 and 2 workers, and peak RSS."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from bench import bundles
from bench.procs import ROOT, RssSampler


def _write_input(path: Path, count: int) -> None:
    templates = [orjson.dumps(bundles.visit(1 + n % 8, n)) for n in range(64)]
    with path.open("wb") as out:
        for number in range(count):
            out.write(templates[number % len(templates)] + b"\n")


def _batch(source: Path, out: Path, workers: int, count: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "adapter.cli", "batch", str(source), "--out", str(out)]
    command += ["--workers", str(workers), "--now", "2025-01-15T12:00:00Z"]
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)
    with RssSampler(process.pid) as sampler:
        process.wait()
    wall = time.perf_counter() - started
    return {
        "seconds": wall,
        "bundles_per_s": count / wall,
        "exit": process.returncode,
        "peak_rss_process_mb": sampler.peak_process_kib / 1024,
        "peak_rss_tree_mb": sampler.peak_tree_kib / 1024,
    }


def _validation_loop(source: Path, lines: int) -> dict[str, Any]:
    """The baseline: fhir.resources ``Bundle.model_validate_json`` of the file's first ``lines`` lines."""
    from fhir.resources.R4B.bundle import Bundle

    with source.open("rb") as handle:
        payloads = [line for _, line in zip(range(lines), handle, strict=False)]
    started = time.perf_counter()
    for payload in payloads:
        Bundle.model_validate_json(payload)
    wall = time.perf_counter() - started
    return {"bundles": len(payloads), "seconds": wall, "bundles_per_s": len(payloads) / wall}


def batch_section(count: int) -> dict[str, Any]:
    small = max(count // 10, 100)
    print(f"\n4. theraclaim batch of {count:,} bundles (and {small:,} for the RSS), one visit of 1-8 procedures each")
    results: dict[str, Any] = {"bundles": count, "small_bundles": small}
    with tempfile.TemporaryDirectory() as folder:
        source, first = Path(folder) / "in.ndjson", Path(folder) / "small.ndjson"
        _write_input(source, count)
        _write_input(first, small)
        results["input_mb"] = source.stat().st_size / 1e6
        loop = results["validation_loop"] = _validation_loop(source, min(count, 5_000))
        print(
            f"baseline: fhir.resources Bundle.model_validate_json of the first {loop['bundles']:,} lines: "
            f"{loop['bundles_per_s']:8.0f} bundles/s"
        )
        runs = ((1, source, count), (2, source, count), (1, first, small))
        for workers, path, records in runs:
            r = _batch(path, Path(folder) / "o", workers, records)
            results["small_run" if path == first else f"workers_{workers}"] = r
            print(
                f"{workers} worker(s), {records:>7,} bundles: {r['bundles_per_s']:8.0f} bundles/s "
                f"({r['seconds']:.1f} s), peak RSS {r['peak_rss_process_mb']:.0f} MB per process, "
                f"{r['peak_rss_tree_mb']:.0f} MB all processes"
            )
    one = results["workers_1"]
    results["speedup_2_over_1"] = results["workers_2"]["bundles_per_s"] / one["bundles_per_s"]
    results["over_validation_loop"] = loop["bundles_per_s"] / one["bundles_per_s"]
    results["small_peak_rss_mb"] = results["small_run"]["peak_rss_process_mb"]
    results["rss_growth_small_to_full"] = one["peak_rss_process_mb"] / results["small_peak_rss_mb"]
    print(
        f"2 workers / 1 worker: {results['speedup_2_over_1']:.2f}x (input {results['input_mb']:.0f} MB); 1 worker "
        f"per bundle / fhir.resources per bundle: {results['over_validation_loop']:.3f}x; peak RSS "
        f"{count:,} / {small:,} bundles: {results['rss_growth_small_to_full']:.2f}x"
    )
    return results
