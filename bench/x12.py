"""837P rendering cost vs the pipeline that makes the decisions, per bundle (median, same run)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from adapter.output.x12 import fixed_envelope, interchange_of, load_profile
from adapter.pipeline import run
from adapter.rules.catalog import load_rules
from bench import bundles
from tests.x12_support import with_demographics

NOW = datetime(2025, 1, 15, 12, tzinfo=UTC)


def x12_section(median_seconds: Callable[..., float], quick: bool) -> dict[str, Any]:
    rules, profile = load_rules(), load_profile()
    rows = []
    print("\n5. 837P, per bundle (median): the decisions' 837P vs the pipeline (FHIR Bundle) from the same bytes")
    print(f"{'bundle':<24}{'pipeline':>12}{'837P':>10}{'837P/pipeline':>15}")
    for procedures in (1, 3, 8):
        payload = orjson.dumps(with_demographics(bundles.visit(procedures)))
        decisions = [d for d in run(payload, rules=rules, now=NOW).decisions if d.status == "active"]
        budget = 0.3 if quick else 1.0
        pipeline = median_seconds(lambda p=payload: run(p, rules=rules, now=NOW), budget)
        render = median_seconds(
            lambda d=decisions: interchange_of(d, rules, profile, fixed_envelope(len(d)), NOW), budget
        )
        rows.append({"procedures": procedures, "pipeline_s": pipeline, "x12_s": render, "ratio": render / pipeline})
        name = f"visit-{procedures}-procedures"
        print(f"{name:<24}{pipeline * 1e6:>10.0f}us{render * 1e6:>8.0f}us{render / pipeline:>15.3f}")
    return {"rows": rows}
