"""The golden cases' INPUTS: ``.venv/bin/python -m tests.golden_cases`` (re)writes them.

For every case below it writes ``tests/fixtures/golden/<case>/input.json`` (a FHIR R4 Bundle built
with tests/bundle_builder.py), ``why.txt`` (what the case shows and where the rule comes from) and,
when the case forces a payer pack, ``args.json``.  The expected outputs (``expected.json`` and
``expected-exit.txt``) are written by tests/test_golden.py with THERACLAIM_UPDATE_GOLDEN=1; read the
diff before committing it.

Unit expectations are quoted in ``why.txt`` from ../shared/docs/billing-rules.md (§1, "Test cases"
T1-T13); where a CMS manual example used other codes, 97124/97140 are substituted as in that table.
Procedures of one visit run back to back from 09:00 (-05:00) on 2025-01-14 unless a case says otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.bundle_builder import (
    SNOMED,
    TECHNIQUE,
    back_to_back,
    base_resources,
    bundle,
    encounter,
    plan_of_care,
    procedure,
    urn_transaction,
    visit,
)

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "golden"
Service = tuple[str, int] | tuple[str, int, str]


@dataclass(frozen=True)
class Case:
    name: str
    why: str
    build: Callable[[], dict[str, Any]]
    args: dict[str, Any] = field(default_factory=dict)


def _timed(*services: Service, payer: str = "medicare") -> Callable[[], dict[str, Any]]:
    return lambda: visit(*back_to_back(*services), payer=payer)


# --- the unit chart, one code, Medicare (cms-pooled) --------------------------------------------

CHART_SOURCE = "Pub 100-04 ch.5 §20.2 unit chart (billing-rules.md F1.3, T1-T4)"
CHART = [
    ("97124", 7, 0, "below 8 minutes: no unit, so no Claim (exit 1); T1"),
    ("97124", 8, 1, "first minute of the 8-22 row; T2"),
    ("97140", 22, 1, "last minute of the 8-22 row; T3"),
    ("97140", 23, 2, "first minute of the 23-37 row; T3"),
    ("97140", 37, 2, "last minute of the 23-37 row; T3"),
    ("97140", 38, 3, "first minute of the 38-52 row; T3"),
    ("97140", 52, 3, "last minute of the 38-52 row; T3"),
    ("97140", 53, 4, "first minute of the 53-67 row; T3"),
    ("97140", 67, 4, "last minute of the 53-67 row; T3"),
    ("97140", 68, 5, "first minute of the 68-82 row; T3"),
    ("97140", 127, 8, "last minute of the 113-127 row; T3"),
    ("97124", 60, 4, "manual: 60 min of one timed code -> 4 units (97530 in the manual); T4"),
]

CASES: list[Case] = [
    Case(
        f"cms-chart-{code}-{minutes}min",
        f"{code} alone for {minutes} min under Medicare -> {code} x{units}: {note}.\nSource: {CHART_SOURCE}",
        _timed((code, minutes)),
    )
    for code, minutes, units, note in CHART
]

# --- the five CMS manual examples (F1.6), Medicare and the commercial pack ----------------------
# (name, services in start order, CMS outcome, AMA outcome, source)
MANUAL = [
    (
        "ex1-97124-24-97140-23",
        (("97124", 24), ("97140", 23)),
        "47 pooled min -> 3 units: 97124 x2 (larger remainder 9 vs 8), 97140 x1",
        "per code: 24 -> 2, 23 -> 2 = 4 units",
        "T6, CMS manual example 1 (Pub 100-04 ch.5 §20.2) with 97124/97140 for 97112/97110",
    ),
    (
        "ex2-tie-97140-20-97124-20",
        (("97140", 20), ("97124", 20)),
        "40 pooled min -> 3 units; remainders (5) and minutes tie, 97140 started first: 97140 x2, 97124 x1",
        "per code: 20 -> 1 each = 2 units",
        "T7, CMS manual example 2 (tie left to the clinician; theraclaim's tie-break: earlier start)",
    ),
    (
        "ex3-97140-33-97124-7",
        (("97140", 33), ("97124", 7)),
        "40 pooled min -> 3 units: 97140 x2 (full), 97124 x1 (remainder 7 beats 3)",
        "per code: 33 -> 2, 7 -> 0 (documented, not billed) = 2 units",
        "T5, CMS manual example 3 (33 min 97110 + 7 min 97140) with 97140/97124 substituted",
    ),
    (
        "ex4-four-codes-97124-8",
        (("97110", 18), ("97140", 13), ("97116", 10), ("97124", 8)),
        "49 pooled min -> 3 units: 97110 x1, 97140 x1, 97116 x1; 97124 (8 min, remainder 8) not billed",
        "per code: 18, 13, 10, 8 -> 1 each = 4 units",
        "T10, CMS manual example 4 with 97124 in place of 97035",
    ),
    (
        "ex5-tie-three-codes-7min",
        (("97140", 7), ("97112", 7), ("97110", 7)),
        "21 pooled min -> 1 unit; three-way tie, 97140 started first (before the lower codes): 97140 x1",
        "per code: 7 -> 0 each: no Claim (exit 1)",
        "T11, CMS manual example 5 (7+7+7; the clinician chooses; theraclaim: earlier start)",
    ),
]

for name, services, cms, ama, source in MANUAL:
    CASES.append(Case(f"cms-manual-{name}", f"Medicare (cms-pooled): {cms}.\nSource: {source}", _timed(*services)))
    CASES.append(
        Case(
            f"ama-manual-{name}",
            f"Same input, --payer commercial (ama-per-code): {ama}.\nSource: {source}; AMA column of the table",
            _timed(*services),
            {"payer": "commercial"},
        )
    )

# --- more unit rules: NCCI 8+8, no leftover, merging, ties -------------------------------------

CASES += [
    Case(
        "cms-ncci-8-plus-8-one-unit",
        "97124 8 min + 97140 8 min under Medicare: 16 pooled min -> 1 unit, to 97124 (tie on remainder 8 and "
        "minutes, earlier start); 97140 not billed.\nSource: T9, NCCI Policy Manual ch.I §E (8 min 97112 + 8 min "
        "97110 -> 1 unit), billing-rules.md F1.12",
        _timed(("97124", 8), ("97140", 8)),
    ),
    Case(
        "ama-8-plus-8-two-units",
        "97124 8 min + 97140 8 min, commercial Coverage (SOPT 5 -> ama-per-code): 8 min each -> 97124 x1, "
        "97140 x1.\nSource: T9 AMA column; billing-rules.md F1.13-F1.14 (per-code rounding can give more units)",
        _timed(("97124", 8), ("97140", 8), payer="commercial"),
    ),
    Case(
        "cms-97124-45-97140-7-no-leftover",
        "97124 45 min + 97140 7 min under Medicare: 52 pooled min -> 3 units, all full units of 97124; no unit "
        "left for 97140's 7 min (documented, not billed).\nSource: T12 (derived from the §1.2 algorithm)",
        _timed(("97124", 45), ("97140", 7)),
    ),
    Case(
        "cms-merge-two-97140-same-day",
        "Two 97140 Procedures on one date (09:00 and 09:30), 10 + 10 min: merged into one claim line, 97140 x1 "
        "(codeMinutes 20); both Procedures are Provenance sources.\nSource: T13; "
        "billing-rules.md F1.9 (FCSO: one line per timed code per date of service)",
        lambda: visit(
            procedure("97140", 10, start="2025-01-14T09:00:00-05:00", proc_id="proc-97140-a"),
            procedure("97140", 10, start="2025-01-14T09:30:00-05:00", proc_id="proc-97140-b"),
        ),
    ),
    Case(
        "cms-tie-7-plus-7-earlier-start",
        "97140 7 min then 97124 7 min under Medicare: 14 pooled min -> 1 unit; remainders and minutes tie, so the "
        "earlier start wins over the lower code: 97140 x1, 97124 not billed.\nSource: T8; Pub 100-04 ch.5 §20.2 "
        "(two services of 7 min or less totalling 8+ -> 1 unit)",
        _timed(("97140", 7), ("97124", 7)),
    ),
    Case(
        "cms-tie-more-minutes-97124-20-97140-35",
        "97124 20 min then 97140 35 min under Medicare: 55 pooled min -> 4 units; full 1 + 2, remainders tie at 5, "
        "so more minutes wins over the earlier start: 97140 x3, 97124 x1.\nSource: billing-rules.md §1.2 "
        "(largest remainder; ties are a configured tie-break), units.py tie order",
        _timed(("97124", 20), ("97140", 35)),
    ),
]


# --- bundle shapes -------------------------------------------------------------------------------


def _two_encounters() -> dict[str, Any]:
    second_day = "2025-01-10T09:00:00-05:00"  # before the golden files' now (2025-01-15)
    return bundle(
        *base_resources("medicare"),
        encounter("enc-1"),
        encounter("enc-2", start="2025-01-10T08:55:00-05:00"),
        *back_to_back(("97124", 24), ("97140", 23)),
        *back_to_back(("97140", 38), start=second_day, encounter="Encounter/enc-2", id_prefix="enc2"),
        plan_of_care(),
    )


def _two_dates() -> dict[str, Any]:
    return visit(
        *back_to_back(("97140", 20)),
        *back_to_back(("97140", 20), ("97124", 10), start="2025-01-15T09:00:00-05:00", id_prefix="day2"),
    )


def _transaction() -> dict[str, Any]:
    return urn_transaction(
        [*base_resources("medicare"), encounter(), *back_to_back(("97124", 30), ("97140", 15)), plan_of_care()]
    )


CASES += [
    Case(
        "multi-encounter-two-claims",
        "Two Encounters of one patient in one Bundle (2025-01-14: 97124 24 + 97140 23 min; 2025-01-10: 97140 38 "
        "min) -> two Claims: 97124 x2 + 97140 x1, and 97140 x3.\nSource: one Claim per Encounter (pipeline design); "
        "units T6 and T3",
        _two_encounters,
    ),
    Case(
        "multi-date-lines-per-date",
        "One Encounter with Procedures on two dates: 2025-01-14 97140 20 min -> x1; 2025-01-15 97140 20 + 97124 "
        "10 min (30 pooled) -> 97124 x1, 97140 x1. Minutes pool per date of service, not across dates.\nSource: "
        "Pub 100-04 ch.5 §20.2 (total timed minutes on the date of service), F1.9 (one line per code per date)",
        _two_dates,
    ),
    Case(
        "mixed-timed-97140-untimed-97161",
        "97161 PT evaluation (untimed, performedDateTime) + 97140 23 min: 97140 x2 (23 timed min), 97161 x1 per "
        "service; the evaluation's time is not pooled.\nSource: billing-rules.md §1.2 (untimed codes excluded)",
        lambda: visit(
            procedure("97161", None, performed="2025-01-14T09:00:00-05:00"),
            *back_to_back(("97140", 23), start="2025-01-14T09:30:00-05:00"),
        ),
    ),
    Case(
        "overlapping-timed-held-draft",
        "97124 09:00-09:30 and 97140 09:20-09:40 overlap: units on the minutes as documented (50 -> 97124 x2, "
        "97140 x1) and the Claim is held as draft with overlapping-timed-services.\nSource: NCCI ch.I §E / "
        "billing-rules.md F1.10 (no two codes for the same 15 min); adapter/rules/claim.py docstring",
        lambda: visit(
            procedure("97124", 30, start="2025-01-14T09:00:00-05:00"),
            procedure("97140", 20, start="2025-01-14T09:20:00-05:00"),
        ),
    ),
    Case(
        "coding-snomed-massage-technique-myofascial",
        "SNOMED 386438000 (therapeutic massage) 24 min -> 97124 and technique#myofascial-release 23 min -> 97140 "
        "under Medicare: 97124 x2, 97140 x1.\nSource: mappings/procedures/therapy.yaml (billing-rules.md §6.2, "
        "F6.2); units T6",
        _timed(("386438000", 24, SNOMED), ("myofascial-release", 23, TECHNIQUE)),
    ),
    Case(
        "coding-unknown-codes-not-billed",
        "97140 23 min is billed (x2); a local code with no mapping and CPT 97113 (outside the catalog) are "
        "findings, not billed and not pooled.\nSource: adapter/rules/coding.py (an unknown code is a finding, "
        "never a guess)",
        lambda: visit(
            *back_to_back(
                ("97140", 23),
                ("hot-stone-massage", 15, "urn:example:local-procedure"),
                ("97113", 15),
            )
        ),
    ),
    Case(
        "not-done-procedure-left-out",
        "97124 with status not-done (statusReason: patient declined) is left out with a procedure-not-completed "
        "finding; 97140 25 min alone -> x2.\nSource: only completed Procedures are billed (adapter/rules/claim.py)",
        lambda: visit(
            procedure("97124", None, status="not-done", status_reason="Patient declined massage today"),
            *back_to_back(("97140", 25)),
        ),
    ),
    Case(
        "coverage-unmatched-payer-defaulted",
        "Coverage type SOPT 9 matches no pack: the default commercial pack (ama-per-code) is used with a "
        "payer-defaulted warning; 97124 24 + 97140 23 min -> x2 + x2.\nSource: adapter/rules/payers.py; T6 AMA",
        _timed(("97124", 24), ("97140", 23), payer="unmatched"),
    ),
    Case(
        "transaction-urn-uuid-references",
        "A transaction Bundle (POST entries, no ids, urn:uuid fullUrls and references) -> same Claim as a "
        "collection: 97124 30 + 97140 15 min = 45 -> x2 + x1; the Claim refers to the urn:uuid ids.\nSource: "
        "FHIR R4 Bundle §3.1.3.4 (resolving references in Bundles)",
        _transaction,
    ),
]


def _write_json(path: Path, document: Any) -> None:
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def all_cases() -> list[Case]:
    """The cases of this module plus the contraindication and payer-edit cases (own modules)."""
    from tests import golden_billing, golden_contraindications, golden_edits  # they import Case from here

    return CASES + golden_contraindications.CASES + golden_edits.CASES + golden_billing.CASES


def write_cases(root: Path = GOLDEN) -> list[str]:
    """Write every case's inputs; return the names of folders under ``root`` that no case owns."""
    cases = all_cases()
    names = [case.name for case in cases]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise SystemExit(f"duplicate golden case names: {sorted(duplicates)}")
    for case in cases:
        folder = root / case.name
        folder.mkdir(parents=True, exist_ok=True)
        _write_json(folder / "input.json", case.build())
        (folder / "why.txt").write_text(case.why.strip() + "\n", encoding="utf-8")
        args = folder / "args.json"
        if case.args:
            _write_json(args, case.args)
        elif args.exists():
            args.unlink()
    return sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in set(names))


def main() -> None:
    stale = write_cases()
    print(f"wrote the inputs of {len(all_cases())} golden cases under {GOLDEN}")
    print("now: THERACLAIM_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_golden.py, then read the diff")
    if stale:
        print(f"folders with no case (delete them by hand if they are obsolete): {', '.join(stale)}")


if __name__ == "__main__":
    main()
