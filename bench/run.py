"""``python -m bench [--quick] [--skip-SECTION ...] [--json PATH] [--update-results]``

Every figure is printed next to a baseline measured in the same run, and the ratio is what
counts (the machines are shared and noisy):

1. in-process pipeline per bundle at each validation level vs ``orjson.loads`` and vs
   fhir.resources ``Bundle.model_validate_json`` of the same bytes;
2. cost per KB across bundle sizes (1, 3, 8 procedures and the Synthea bundles);
3. HTTP ``POST /fhir/Claim/$from-encounter`` on loopback (PostgreSQL, auth and audit on, 2 workers)
   at 1 and 16 connections from wrk vs a trivial FastAPI echo endpoint served the same way;
4. ``theraclaim batch`` of 100,000 bundles with 1 and 2 workers vs the fhir.resources validation
   loop of the same file, and peak RSS at 10,000 and 100,000 bundles;
5. the 837P of a visit's decisions vs the pipeline run that made them;
6. the HL7 v2 door: a DFT^P03 message vs the same visit as a FHIR Bundle in process, and MLLP
   messages per second on one worker (one core) with ACK latency p50 / p99 vs an MLLP echo;
7. token checking and auditing per request (bench/auth.py);
8. delivery through the outbox: deliveries per second of one worker vs direct PUTs to the same
   loopback receiver, and the delay from commit to delivery (p50 / p99) vs the poll interval;
9. the worst-case inputs of issue 10 (bench/worst.py): output bytes per input byte and time per KB
   next to an ordinary visit, and the peak RSS of a ~9 MB worst case.
10. ``theraclaim batch --bulk`` of the Synthea Bulk Data sample at 1x and 10x, and peak RSS.

At the end, the targets of issues 17, 10, 13 and 9 next to their figures and baselines
(bench/targets.py; bench/README.md has the profiles).

The figures go to a JSON file (default bench/results-latest.json, git-ignored) so runs can be
compared; ``--update-results`` writes the committed bench/results.json the README quotes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from fhir.resources.R4B.bundle import Bundle

from adapter import native
from adapter.pipeline import run
from adapter.rules.catalog import Rules, load_rules
from bench import bundles
from bench.auth import auth_section
from bench.bulk import bulk_section
from bench.delivery import delivery_section
from bench.hl7v2 import hl7v2_section
from bench.http import http_section
from bench.replay import batch_section
from bench.targets import report
from bench.worst import worst_case_section
from bench.x12 import x12_section

NOW = datetime(2025, 1, 15, 12, tzinfo=UTC)
COMMITTED = Path(__file__).resolve().parent / "results.json"  # the figures the README quotes
LATEST = Path(__file__).resolve().parent / "results-latest.json"  # every other run (git-ignored)


def median_seconds(action: Callable[[], object], budget: float = 0.5, at_least: int = 15) -> float:
    """Median wall time of ``action``: repeated for ~``budget`` seconds, at least ``at_least`` times."""
    times = []
    deadline = time.perf_counter() + budget
    while len(times) < at_least or time.perf_counter() < deadline:
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def inputs(quick: bool) -> list[tuple[str, bytes]]:
    cases = [(f"visit-{n}-procedures", orjson.dumps(bundles.visit(n))) for n in (1, 3, 8)]
    synthea = list(bundles.synthea()) if bundles.SYNTHEA.is_dir() else []
    synthea.sort(key=lambda item: len(orjson.dumps(item[1])))
    picks = synthea if not quick else synthea[:: max(1, len(synthea) // 3)]
    cases += [(f"synthea-{name}", orjson.dumps(bundle)) for name, bundle in picks]
    return cases


ROUNDS = 3  # each bundle's four measurements are taken in turn this many times (see in_process_section)


def _round(payload: bytes, rules: Rules, budget: float) -> dict[str, float]:
    """One round of a bundle's four measurements, one after the other (each in a block of its own:
    calls interleaved one by one would measure each with the caches the other one left)."""
    return {
        "loads": median_seconds(lambda: orjson.loads(payload), budget),
        "model": median_seconds(lambda: Bundle.model_validate_json(payload), budget, at_least=3),
        "fields": median_seconds(lambda: run(payload, rules=rules, now=NOW, validation="fields"), budget),
        "full": median_seconds(lambda: run(payload, rules=rules, now=NOW, validation="full"), budget, at_least=3),
    }


def _median_of(rounds: list[dict[str, float]], figure: str, over: str | None = None) -> float:
    """The median over the rounds of a figure, or of its ratio to another figure of the same round."""
    return statistics.median(r[figure] / r[over] if over else r[figure] for r in rounds)


def in_process_section(quick: bool) -> dict[str, Any]:
    """Per bundle, ROUNDS rounds of measurements; each figure is the median of its rounds, each ratio
    the median of the rounds' ratios (a change of the machine's load moves a round, not the figure)."""
    rules = load_rules()
    rows = []
    print(f"\n1-2. in-process, per bundle (median of {1 if quick else ROUNDS} rounds)")
    print(
        f"{'bundle':<34}{'KB':>7}{'orjson':>10}{'Bundle.mvj':>12}{'fields':>10}{'full':>10}"
        f"{'fields/mvj':>12}{'fields/orjson':>15}{'full/mvj':>10}{'fields us/KB':>14}"
    )
    count, budget = (1, 0.3) if quick else (ROUNDS, 1.0 / ROUNDS)
    for name, payload in inputs(quick):
        rounds = [_round(payload, rules, budget) for _ in range(count)]
        loads, model, fields, full = (_median_of(rounds, k) for k in ("loads", "model", "fields", "full"))
        kb = len(payload) / 1024
        row = {
            "bundle": name,
            "kb": round(kb, 1),
            "orjson_s": loads,
            "model_validate_json_s": model,
            "fields_s": fields,
            "full_s": full,
            "fields_over_mvj": _median_of(rounds, "fields", "model"),
            "fields_over_orjson": _median_of(rounds, "fields", "loads"),
            "full_over_mvj": _median_of(rounds, "full", "model"),
            "fields_us_per_kb": fields * 1e6 / kb,
        }
        rows.append(row)
        print(
            f"{name[:33]:<34}{kb:>7.1f}{loads * 1e6:>8.0f}us{model * 1e3:>10.2f}ms{fields * 1e6:>8.0f}us"
            f"{full * 1e3:>8.2f}ms{row['fields_over_mvj']:>12.3f}{row['fields_over_orjson']:>15.1f}"
            f"{row['full_over_mvj']:>10.2f}{row['fields_us_per_kb']:>14.1f}"
        )
    per_kb = [r["fields_us_per_kb"] for r in rows]
    spread = max(per_kb) / min(per_kb)
    print(f"cost per KB at the fields level: {min(per_kb):.1f}-{max(per_kb):.1f} us/KB, spread {spread:.2f}x")
    return {"rows": rows, "per_kb_spread": spread}


def _loads(averages: tuple[float, float, float]) -> str:
    return " ".join(f"{a:.2f}" for a in averages)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer bundles and repetitions (a smoke run)")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument("--skip-hl7v2", action="store_true")
    parser.add_argument("--skip-delivery", action="store_true")
    parser.add_argument("--skip-auth", action="store_true")
    parser.add_argument("--skip-bulk", action="store_true")
    parser.add_argument("--batch-size", type=int, default=100_000)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("THERACLAIM_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    parser.add_argument("--skip-worst", action="store_true", help="skip the worst-case inputs section")
    parser.add_argument(
        "--json", type=Path, default=LATEST, help=f"where the figures go (default {LATEST.name}, not committed)"
    )
    parser.add_argument(
        "--update-results", action="store_true", help=f"write the committed {COMMITTED.name} (a deliberate update)"
    )
    args = parser.parse_args()
    machine = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "system": platform.platform(),
        # the mypyc build, or the sources (adapter/native.py); the servers started here run the same
        "engine": "compiled (mypyc)" if native.compiled_in_use() else "sources",
    }
    load_start = os.getloadavg()
    print(f"theraclaim benchmark on {machine['system']}, {machine['cpus']} CPUs, Python {machine['python']}")
    print(f"engine: {machine['engine']}")
    print(f"load average (1, 5, 15 min): {_loads(load_start)}")
    figures: dict[str, Any] = {"machine": machine, "when": datetime.now(UTC).isoformat()}
    figures["in_process"] = in_process_section(args.quick)
    figures["x12"] = x12_section(median_seconds, args.quick)
    if not args.skip_http and (http := http_section(args.database_url, quick=args.quick)) is not None:
        figures["http"] = http
    if not args.skip_batch:
        figures["batch"] = batch_section(1_000 if args.quick else args.batch_size)
    if not args.skip_hl7v2:
        figures["hl7v2"] = hl7v2_section(args.database_url, args.quick, median_seconds)
    if not args.skip_delivery:
        figures["delivery"] = delivery_section(args.database_url, quick=args.quick)
    if not args.skip_auth:
        figures["auth"] = auth_section(args.database_url, quick=args.quick)
    if not args.skip_worst:
        figures["worst_case"] = worst_case_section(args.quick)
    if not args.skip_bulk:
        figures["bulk"] = bulk_section(args.quick)
    figures["load_average"] = {"start": load_start, "end": os.getloadavg()}
    print(f"load average at the start {_loads(load_start)}, at the end {_loads(os.getloadavg())}")
    figures["targets"] = report(figures)
    target = COMMITTED if args.update_results else args.json
    target.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\nfigures written to {target}")
