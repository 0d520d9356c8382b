"""Writes the HL7 v2 golden inputs: tests/fixtures/hl7v2/<case>/message.hl7 and why.txt.

.venv/bin/python -m tests.hl7v2.golden_cases
THERACLAIM_UPDATE_GOLDEN=1 .venv/bin/pytest tests/hl7v2/test_golden_v2.py    # rewrite the expected files
"""

from __future__ import annotations

from pathlib import Path

from tests.hl7v2.messages import dg1, ft1, in1, message, msh, pid, pr1, pv1, segment, visit

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "hl7v2"
DAY = "20250114"


def _visit(version: str, charges: list[str], *, dx: list[str], plan: str = "PPO", control: str = "MSG0001") -> bytes:
    return message(
        msh(control, version=version),
        segment("EVN", {1: "P03", 2: f"{DAY}100000-0500"}),
        pid(),
        pv1(f"V-{control}"),
        *charges,
        *dx,
        in1(plan_type=plan),
    )


CASES: dict[str, tuple[bytes, str]] = {
    "v251-commercial-97124-pr1-minutes-97140-ft1-range": (
        visit(),
        "v2.5.1, commercial PPO (AMA per code): 97124 with PR1-7 = 24 minutes (2 units), 97140 over the FT1-4 "
        "range 09:30-09:53 (23 minutes, 2 units); FT1-10 says 1 for 97140: a hl7v2-units-differ warning at "
        "FT1[2]-10. NTE and EVN ignored (MSA-3 says so).",
    ),
    "v23-medicare-cms-example-1-held-no-plan-of-care": (
        _visit(
            "2.3",
            [
                ft1(1, "97124", f"{DAY}090000-0500", units="2"),
                pr1(1, "97124", f"{DAY}090000-0500", "24"),
                ft1(2, "97140", f"{DAY}093000-0500", units="1"),
                pr1(2, "97140", f"{DAY}093000-0500", "23"),
            ],
            dx=[dg1(1, "M54.50", "Low back pain, unspecified")],
            plan="MC",
        ),
        "v2.3, Medicare (IN1-15 MC -> SOPT 1): CMS manual example 1, 24 + 23 PR1 minutes = 47 pooled = 3 units "
        "(97124 x2, 97140 x1). v2 carries no plan of care, so the Medicare pack holds the Claim (draft) and MSA-3 "
        "says so.",
    ),
    "v24-medicare-cms-33-min-97140-7-min-97124": (
        _visit(
            "2.4",
            [
                ft1(1, "97140", f"{DAY}090000-0500^{DAY}093300-0500", units="3"),
                ft1(2, "97124", f"{DAY}093500-0500^{DAY}094200-0500", units="0"),
            ],
            dx=[dg1(1, "M54.50", "Low back pain, unspecified")],
            plan="MCR",
        ),
        "v2.4, Medicare, minutes from FT1-4 ranges only: CMS example, 33 minutes 97140 + 7 minutes 97124 = 40 "
        "pooled minutes = 3 units, all to 97140 (97124's 7 minutes earn none); FT1-10 agrees (3 and 0).",
    ),
    "v28-dvt-in-dg1-contraindication-held": (
        _visit(
            "2.8",
            [ft1(1, "97124", f"{DAY}090000-0500", units="2"), pr1(1, "97124", f"{DAY}090000-0500", "30")],
            dx=[
                dg1(1, "M54.50", "Low back pain, unspecified"),
                dg1(2, "I82.401", "Acute embolism and thrombosis of unspecified deep veins of right lower extremity"),
            ],
        ),
        "v2.8, commercial: an acute DVT (I82.401) among the DG1 diagnoses of the visit: massage is "
        "contraindicated, a DetectedIssue is made and the Claim is held.",
    ),
    "v26-timed-code-without-minutes-refused": (
        _visit(
            "2.6",
            [ft1(1, "97124", f"{DAY}090000-0500"), pr1(1, "97124", f"{DAY}090000-0500", "20"), ft1(2, "97140", DAY)],
            dx=[dg1(1, "M54.50", "Low back pain, unspecified")],
        ),
        "v2.6: the second charge is a timed code (97140) with neither PR1-7 minutes nor an FT1-4 range: an input "
        "error at FT1[2]-4 (AE), nothing is guessed from FT1-10 and nothing is stored.",
    ),
    "v25-sent-modifier-and-snomed-code": (
        _visit(
            "2.5",
            [
                segment(
                    "FT1",
                    {
                        1: "1",
                        4: f"{DAY}090000-0500^{DAY}093000-0500",
                        6: "CG",
                        7: "386438000^Therapeutic massage^SCT",
                        10: "2",
                        19: "M54.50^^I10",
                        20: "1245319599^Therapist^Terry^^^^^^^^^^NPI",
                        26: "59",
                    },
                )
            ],
            dx=[dg1(1, "M54.50", "Low back pain, unspecified")],
        ),
        "v2.5, commercial: FT1-7 is SNOMED CT 386438000 (therapeutic massage) -> 97124, 30 minutes from the FT1-4 "
        "range = 2 units; FT1-26 sends modifier 59, carried as the procedure-modifier extension "
        "(then checked by the rules: no NCCI edit needs it, so it is not billed and a warning says so).",
    ),
}


def main() -> None:
    for name, (raw, why) in CASES.items():
        folder = GOLDEN / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "message.hl7").write_bytes(raw)
        (folder / "why.txt").write_text(why + "\n", encoding="utf-8")
        print(folder)


if __name__ == "__main__":
    main()
