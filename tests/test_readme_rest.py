"""The README's REST section lists the interactions and search parameters exactly as the
CapabilityStatement does (issue 11): the block between the markers is generated from it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from adapter.service.capability import capability_statement

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN, END = "<!-- capability:begin -->", "<!-- capability:end -->"


def capability_table(statement: dict[str, Any]) -> str:
    [rest] = statement["rest"]
    lines = [
        "| type | interactions | search parameters | _include / _revinclude | operations |",
        "|---|---|---|---|---|",
    ]
    for resource in rest["resource"]:
        interactions = ", ".join(i["code"] for i in resource.get("interaction", [])) or "-"
        params = ", ".join(f"`{p['name']}` ({p['type']})" for p in resource.get("searchParam", [])) or "-"
        includes = (
            ", ".join(
                [f"`{v}`" for v in resource.get("searchInclude", [])]
                + [f"rev `{v}`" for v in resource.get("searchRevInclude", [])]
            )
            or "-"
        )
        operations = ", ".join(f"`${o['name']}`" for o in resource.get("operation", [])) or "-"
        lines.append(f"| {resource['type']} | {interactions} | {params} | {includes} | {operations} |")
    system = ", ".join(i["code"] for i in rest.get("interaction", []))
    lines += ["", f"System level: {system} (`POST /fhir`)."]
    return "\n".join(lines)


def test_the_readme_lists_what_the_capability_statement_says() -> None:
    text = README.read_text(encoding="utf-8")
    generated = capability_table(capability_statement("2026-01-01T00:00:00Z", "https://theraclaim.example/auth/token"))
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    if os.environ.get("THERACLAIM_UPDATE_README"):
        README.write_text(text[:start] + "\n" + generated + "\n" + text[end:], encoding="utf-8")
        return
    assert text[start:end].strip() == generated, "run THERACLAIM_UPDATE_README=1 pytest tests/test_readme_rest.py"
