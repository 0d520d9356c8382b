"""The targets of issues 17, 10 and 13, each next to its figure and its baseline from the same run.

Every verdict is computed from this run's figures (bench/run.py's sections); a section skipped
leaves its targets out.  A target missed is printed as missed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Row = dict[str, Any]


def _row(issue: int, target: str, figure: str, baseline: str, met: bool) -> Row:
    return {"issue": issue, "target": target, "figure": figure, "baseline": baseline, "met": met}


def _in_process(section: dict[str, Any]) -> list[Row]:
    rows = []
    for r in section["rows"]:
        us, mvj, loads = r["fields_s"] * 1e6, r["model_validate_json_s"] * 1e6, r["orjson_s"] * 1e6
        if r["bundle"].startswith("visit-"):
            rows.append(
                _row(
                    17,
                    f"fields <= 0.12x mvj, {r['bundle']}",
                    f"{us:.0f} us = {r['fields_over_mvj']:.3f}x",
                    f"Bundle.model_validate_json {mvj:.0f} us",
                    r["fields_over_mvj"] <= 0.12,
                )
            )
            rows.append(
                _row(
                    17,
                    f"fields <= 20x orjson.loads, {r['bundle']}",
                    f"{r['fields_over_orjson']:.1f}x",
                    f"orjson.loads {loads:.1f} us",
                    r["fields_over_orjson"] <= 20,
                )
            )
    synthea = [r for r in section["rows"] if r["bundle"].startswith("synthea-")]
    if synthea:
        worst = max(synthea, key=lambda r: r["fields_over_mvj"])
        rows.append(
            _row(
                17,
                "fields <= 0.10x mvj, every Synthea bundle",
                f"worst {worst['fields_over_mvj']:.3f}x ({worst['bundle']})",
                f"mvj {worst['model_validate_json_s'] * 1e3:.1f} ms",
                worst["fields_over_mvj"] <= 0.10,
            )
        )
    return rows


def _batch(section: dict[str, Any]) -> list[Row]:
    one, loop = section["workers_1"], section["validation_loop"]
    rows = [
        _row(
            17,
            "batch 1 worker >= 4,000 bundles/s",
            f"{one['bundles_per_s']:.0f} /s",
            f"fhir.resources loop {loop['bundles_per_s']:.0f} /s",
            one["bundles_per_s"] >= 4000,
        ),
        _row(
            17,
            "batch 1 worker <= 0.10x the fhir.resources loop (time per bundle)",
            f"{section['over_validation_loop']:.3f}x",
            f"{1e6 / loop['bundles_per_s']:.0f} us per bundle",
            section["over_validation_loop"] <= 0.10,
        ),
        _row(
            17,
            "batch 2 workers >= 1.8x one",
            f"{section['speedup_2_over_1']:.2f}x",
            f"1 worker {one['bundles_per_s']:.0f} /s",
            section["speedup_2_over_1"] >= 1.8,
        ),
    ]
    if "rss_growth_small_to_full" in section:
        rows.append(
            _row(
                17,
                f"batch RSS flat from {section['small_bundles']:,} to {section['bundles']:,} bundles (<= 1.10x)",
                f"{section['workers_1']['peak_rss_process_mb']:.0f} MB = {section['rss_growth_small_to_full']:.2f}x",
                f"{section['small_peak_rss_mb']:.0f} MB",
                section["rss_growth_small_to_full"] <= 1.10,
            )
        )
    return rows


def _http(section: dict[str, Any]) -> list[Row]:
    push, echo = section["from-encounter"], section["echo"]
    client = section["client"]
    return [
        _row(
            17,
            f"HTTP c=1 p50 <= 3x echo ({client})",
            f"{push['c1']['p50_ms']:.1f} ms = {section['c1_p50_over_echo']:.2f}x; its server and database CPU "
            f"{section['c1_cpu_ms']:.2f} ms, the target leaves {section['c1_p50_budget_ms']:.2f} ms",
            f"echo p50 {echo['c1']['p50_ms']:.2f} ms",
            section["c1_p50_over_echo"] <= 3,
        ),
        _row(
            17,
            "HTTP c=1 p99 <= 2.5x p50",
            f"p99 {push['c1']['p99_ms']:.1f} ms = {section['c1_p99_over_p50']:.2f}x",
            f"p50 {push['c1']['p50_ms']:.1f} ms",
            section["c1_p99_over_p50"] <= 2.5,
        ),
        _row(
            17,
            "HTTP c=16 throughput >= 0.4x echo",
            f"{push['c16']['rps']:.0f} req/s = {section['c16_rps_over_echo']:.3f}x; CPU per request "
            f"{section['c16_cpu_ms']:.2f} ms, the target leaves {section['c16_cpu_budget_ms']:.2f} ms",
            f"echo {echo['c16']['rps']:.0f} req/s",
            section["c16_rps_over_echo"] >= 0.4,
        ),
        _row(
            17,
            "HTTP c=16 p99 <= 4x p50",
            f"p99 {push['c16']['p99_ms']:.1f} ms = {section['c16_p99_over_p50']:.2f}x",
            f"p50 {push['c16']['p50_ms']:.1f} ms",
            section["c16_p99_over_p50"] <= 4,
        ),
    ]


def _hl7v2(section: dict[str, Any]) -> list[Row]:
    local, service = section["in_process"], section["service_level"]
    return [
        _row(
            13,
            "v2 message <= 1.3x the same visit as a FHIR Bundle, in process",
            f"{local['v2_s'] * 1e6:.0f} us = {local['ratio']:.2f}x",
            f"FHIR Bundle {local['fhir_s'] * 1e6:.0f} us",
            local["ratio"] <= 1.3,
        ),
        _row(
            13,
            "v2 message <= 1.3x a FHIR transaction of the visit, service level (PostgreSQL)",
            f"{service['median_s']['v2'] * 1e3:.1f} ms = {service['ratio_to_transaction']:.2f}x",
            f"transaction {service['median_s']['transaction'] * 1e3:.1f} ms",
            service["ratio_to_transaction"] <= 1.3,
        ),
    ]


def _auth(section: dict[str, Any]) -> list[Row]:
    return [
        _row(
            9,
            "token check + audit <= 1.15x, push",
            f"{section['push_auth_and_audit_ratio']:.3f}x",
            f"protected push {section['protected']['push_ms']:.2f} ms",
            section["push_auth_and_audit_ratio"] <= 1.15,
        ),
    ]


def _worst(section: dict[str, Any]) -> list[Row]:
    ordinary = section["rows"][0]
    rows = [
        _row(
            10,
            f"time per KB within 3x an ordinary visit's: {r['input']}",
            f"{r['us_per_kb']:.0f} us/KB = {r['over_ordinary']:.2f}x",
            f"ordinary {ordinary['us_per_kb']:.0f} us/KB",
            r["over_ordinary"] <= 3,
        )
        for r in section["rows"][1:]
    ]
    rss = section["rss"]
    rows.append(
        _row(
            10,
            f"peak RSS growth < 10x the input ({rss['input_bytes'] / 1e6:.1f} MB worst case)",
            f"{(rss['peak_kb'] - rss['before_kb']) / 1024:.0f} MB = {rss['growth']:.2f}x",
            f"input {rss['input_bytes'] / 1e6:.1f} MB",
            rss["growth"] < 10,
        )
    )
    return rows


SECTIONS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "in_process": _in_process,
    "batch": _batch,
    "http": _http,
    "hl7v2": _hl7v2,
    "auth": _auth,
    "worst_case": _worst,
}


def rows_of_run(figures: dict[str, Any]) -> list[Row]:
    return [row for name, rows_of in SECTIONS.items() if name in figures for row in rows_of(figures[name])]


def report(figures: dict[str, Any]) -> list[Row]:
    rows = rows_of_run(figures)
    print("\nTargets (issue: target | this run's figure | its baseline in the same run | verdict)")
    for r in rows:
        verdict = "met" if r["met"] else "MISSED"
        print(f"#{r['issue']:<3}{r['target']:<78}{r['figure']:<30}{r['baseline']:<36}{verdict}")
    print(f"{sum(r['met'] for r in rows)} of {len(rows)} targets met")
    return rows


def markdown(rows: list[Row]) -> str:
    """The targets as the README's table."""
    lines = ["| issue | target | figure | baseline (same run) | |", "|---|---|---|---|---|"]
    lines += [
        f"| {r['issue']} | {r['target']} | {r['figure']} | {r['baseline']} | {'met' if r['met'] else '**missed**'} |"
        for r in rows
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # python -m bench.targets [figures.json]: the README's table of a run's figures
    import json
    import sys
    from pathlib import Path

    path = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results.json")
    print(markdown(rows_of_run(json.loads(path.read_text()))))
