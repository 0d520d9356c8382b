"""The worst-case inputs of issue 10, next to an ordinary visit: output bytes per input byte, time
per KB (and its ratio to the ordinary visit's) and the peak memory of the largest one.

Shapes: many overlapping timed procedures in one Encounter (every pair overlaps), 19,990
overlapping procedures in one Bundle (~9 MB, just inside the entry limit), and N Encounters of one
patient with N Conditions.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from adapter.pipeline import run
from adapter.rules.catalog import load_rules

NOW = datetime(2025, 1, 15, 12, tzinfo=UTC)
START = datetime.fromisoformat("2025-01-14T09:00:00-05:00")
LARGEST = 19_990  # procedures: with the visit's other resources, just inside the 20,000-entry limit


def overlapping(procedures: int, *, minutes: int = 30, step_seconds: int = 1) -> dict[str, Any]:
    """One visit whose timed procedures all start within ``procedures`` seconds: every pair overlaps."""
    from tests import bundle_builder as bb

    items = [
        bb.procedure(
            ("97124", "97140")[i % 2],
            minutes,
            start=(START + timedelta(seconds=i * step_seconds)).isoformat(),
            proc_id=f"p{i}",
        )
        for i in range(procedures)
    ]
    return bb.visit(*items)


def many_encounters(encounters: int) -> dict[str, Any]:
    """``encounters`` visits of one patient, each with its own Condition and Procedure."""
    from tests import bundle_builder as bb

    resources: list[dict[str, Any]] = list(bb.base_resources())
    for n in range(encounters):
        day = (START + timedelta(days=n % 300)).isoformat()
        resources.append(bb.encounter(f"e{n}", diagnoses=(f"Condition/c{n}",)))
        resources.append(bb.condition(f"c{n}", "M54.50", "Low back pain, unspecified"))
        resources.append(bb.procedure("97124", 30, start=day, proc_id=f"p{n}", encounter=f"Encounter/e{n}"))
    resources.append(bb.plan_of_care())
    return bb.bundle(*resources)


def shapes(quick: bool) -> list[tuple[str, bytes]]:
    from bench.bundles import visit

    scale = 4 if quick else 1
    return [
        ("ordinary visit (3 procedures)", orjson.dumps(visit(3))),
        (f"{800 // scale} overlapping procedures", orjson.dumps(overlapping(800 // scale))),
        (f"{2000 // scale} encounters x conditions", orjson.dumps(many_encounters(2000 // scale))),
        (f"{LARGEST // scale} procedures", orjson.dumps(overlapping(LARGEST // scale))),
    ]


def _timed(payload: bytes, rules: Any) -> tuple[float, int]:
    """Best of 3 after a first run (which warms the caches an ordinary visit would find warm)."""
    best = float("inf")
    out = 0
    run(payload, rules=rules, now=NOW)
    for _ in range(3):
        started = time.perf_counter()
        result = run(payload, rules=rules, now=NOW)
        best = min(best, time.perf_counter() - started)
        out = len(orjson.dumps(result.bundle))
    return best, out


def peak_rss_kb(procedures: int) -> tuple[int, int, int]:
    """(input bytes, peak RSS converting it, resident size just before) of a fresh process that reads
    the Bundle from a file; the peak includes parsing, the rules, the output.  Linux's VmHWM, not
    getrusage's ru_maxrss: that one keeps the peak of the process the child was forked from."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "worst.json"
        path.write_bytes(orjson.dumps(overlapping(procedures)))
        code = (
            "import sys\n"
            "from bench.worst import NOW\n"
            "from adapter.pipeline import run\n"
            "from adapter.rules.catalog import load_rules\n"
            "def status(field):\n"
            "    line = next(x for x in open('/proc/self/status') if x.startswith(field))\n"
            "    return int(line.split()[1])\n"
            "rules = load_rules()\n"
            "payload = open(sys.argv[1], 'rb').read()\n"
            "before = status('VmRSS:')\n"
            "run(payload, rules=rules, now=NOW)\n"
            "print(len(payload), status('VmHWM:'), before)\n"
        )
        size, peak, before = map(
            int, subprocess.check_output([sys.executable, "-c", code, str(path)], text=True).split()
        )
    return size, peak, before


def worst_case_section(quick: bool) -> dict[str, Any]:
    rules = load_rules()
    print("\n9. worst-case inputs (best of 3 after a warm-up run, in process)")
    print(f"{'input':<34}{'KB':>9}{'out/in':>8}{'ms':>10}{'us/KB':>9}{'x ordinary':>12}")
    rows = []
    baseline = None
    for name, payload in shapes(quick):
        seconds, out = _timed(payload, rules)
        kb = len(payload) / 1024
        per_kb = seconds * 1e6 / kb
        baseline = baseline or per_kb
        row = {"input": name, "kb": round(kb, 1), "out_over_in": out / len(payload), "seconds": seconds}
        row |= {"us_per_kb": per_kb, "over_ordinary": per_kb / baseline}
        rows.append(row)
        print(
            f"{name:<34}{kb:>9.1f}{row['out_over_in']:>8.2f}{seconds * 1e3:>10.1f}{per_kb:>9.1f}"
            f"{row['over_ordinary']:>12.2f}"
        )
    size, peak, before = peak_rss_kb(LARGEST // 4 if quick else LARGEST)
    growth = (peak - before) * 1024 / size
    print(
        f"peak RSS converting the {size / 1e6:.1f} MB bundle: {peak / 1024:.0f} MB "
        f"({before / 1024:.0f} MB before it): grew {growth:.2f}x the input (target < 10x)"
    )
    return {"rows": rows, "rss": {"input_bytes": size, "peak_kb": peak, "before_kb": before, "growth": growth}}


if __name__ == "__main__":
    worst_case_section("--quick" in sys.argv)
