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


def batch_section(count: int) -> dict[str, Any]:
    print(f"\n4. theraclaim batch of {count:,} bundles")
    results: dict[str, Any] = {"bundles": count}
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "in.ndjson"
        _write_input(source, count)
        results["input_mb"] = source.stat().st_size / 1e6
        for workers in (1, 2):
            command = [
                sys.executable,
                "-m",
                "adapter.cli",
                "batch",
                str(source),
                "--out",
                str(Path(folder) / "o"),
                "--workers",
                str(workers),
                "--now",
                "2025-01-15T12:00:00Z",
            ]
            started = time.perf_counter()
            process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)
            with RssSampler(process.pid) as sampler:
                process.wait()
            wall = time.perf_counter() - started
            results[f"workers_{workers}"] = {
                "seconds": wall,
                "bundles_per_s": count / wall,
                "exit": process.returncode,
                "peak_rss_process_mb": sampler.peak_process_kib / 1024,
                "peak_rss_tree_mb": sampler.peak_tree_kib / 1024,
            }
            r = results[f"workers_{workers}"]
            print(
                f"{workers} worker(s): {r['bundles_per_s']:8.0f} bundles/s ({wall:.1f} s), peak RSS "
                f"{r['peak_rss_process_mb']:.0f} MB per process, {r['peak_rss_tree_mb']:.0f} MB all processes"
            )
    results["speedup_2_over_1"] = results["workers_2"]["bundles_per_s"] / results["workers_1"]["bundles_per_s"]
    print(f"2 workers / 1 worker: {results['speedup_2_over_1']:.2f}x (input {results['input_mb']:.0f} MB)")
    return results
