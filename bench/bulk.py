"""Benchmark section 5: ``theraclaim batch --bulk`` of the Synthea Bulk Data sample at 1x and 10x,
and peak RSS (the baseline is the 1x run: bounded memory means the 10x peak stays near it)."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.procs import ROOT, RssSampler

SAMPLE = ROOT.parent / "shared" / "external" / "synthea-bulk-ndjson-10-patients"
UUID = re.compile(rb"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


def _scaled(target: Path, factor: int) -> int:
    """The sample ``factor`` times over, each copy with its own ids (every UUID gets a suffix)."""
    target.mkdir()
    size = 0
    for path in sorted(SAMPLE.glob("*.ndjson")):
        data = path.read_bytes()
        with (target / path.name).open("wb") as out:
            for copy in range(factor):
                chunk = data if copy == 0 else UUID.sub(rb"\1-" + str(copy).encode(), data)
                out.write(chunk if chunk.endswith(b"\n") else chunk + b"\n")
                size += len(chunk)
    return size


def bulk_section(quick: bool) -> dict[str, Any]:
    factors = (1, 2) if quick else (1, 10)
    print(f"\n5. theraclaim batch --bulk of the Synthea Bulk Data sample at {factors[0]}x and {factors[1]}x")
    if not SAMPLE.is_dir():
        print(f"skipped: {SAMPLE} is not here")
        return {"skipped": str(SAMPLE)}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        for factor in factors:
            source = Path(folder) / f"x{factor}"
            size = _scaled(source, factor)
            out = str(Path(folder) / f"out{factor}.ndjson")
            command = [sys.executable, "-m", "adapter.cli", "batch", "--bulk", str(source), "--out", out]
            command += ["--workers", "1", "--now", "2025-01-15T12:00:00Z"]
            started = time.perf_counter()
            process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)
            with RssSampler(process.pid) as sampler:
                process.wait()
            wall = time.perf_counter() - started
            encounters = sum(1 for _ in (Path(folder) / f"out{factor}.ndjson").open("rb"))
            results[f"x{factor}"] = {
                "input_mb": size / 1e6,
                "encounters": encounters,
                "seconds": wall,
                "encounters_per_s": encounters / wall,
                "exit": process.returncode,
                "peak_rss_mb": sampler.peak_process_kib / 1024,
            }
            r = results[f"x{factor}"]
            print(
                f"{factor:>2}x: {r['input_mb']:6.1f} MB, {encounters:6} encounters, {r['encounters_per_s']:6.0f}/s, "
                f"peak RSS {r['peak_rss_mb']:.0f} MB"
            )
    low, high = (results[f"x{f}"]["peak_rss_mb"] for f in factors)
    results["peak_rss_ratio"] = high / low
    print(f"peak RSS {factors[1]}x / {factors[0]}x: {results['peak_rss_ratio']:.2f} (input {factors[1]}x larger)")
    return results
