"""HL7 v2 test messages built field by field (fields named by their HL7 position, so a reader can check them)."""

from __future__ import annotations

THERAPIST = "1245319599^Therapist^Terry^^^^^^^^^^NPI"


def segment(name: str, fields: dict[int, str]) -> str:
    """One ER7 segment; ``fields`` maps HL7 field numbers to their (already encoded) values."""
    if name == "MSH":  # MSH-1 is the field separator itself, MSH-2 the encoding characters
        values = ["MSH", "^~\\&"] + [fields.get(i, "") for i in range(3, max(fields) + 1)]
        return "|".join(values)
    return "|".join([name] + [fields.get(i, "") for i in range(1, max(fields) + 1)])


def msh(
    control_id: str = "MSG0001",
    *,
    version: str = "2.5.1",
    event: str = "P03",
    processing: str = "P",
    facility: str = "CLINIC^1.2.3.4.5^ISO",
    extra: dict[int, str] | None = None,
) -> str:
    fields = {
        3: "EHR",
        4: facility,
        5: "THERACLAIM",
        6: "BILLING",
        7: "20250114100000-0500",
        9: f"DFT^{event}^DFT_{event}",
        10: control_id,
        11: processing,
        12: version,
    }
    return segment("MSH", fields | (extra or {}))


def pid() -> str:
    return segment(
        "PID",
        {
            1: "1",
            3: "MRN123^^^CLINIC^MR",
            5: "Example^Pat",
            7: "19500203",
            8: "F",
            11: "1 Main St^^Springfield^IL^62701^USA",
        },
    )


def pv1(visit: str = "V-1001", patient_class: str = "O") -> str:
    return segment(
        "PV1",
        {1: "1", 2: patient_class, 7: THERAPIST, 19: f"{visit}^^^CLINIC&1.2.3.4.5&ISO^VN", 44: "20250114085500-0500"},
    )


def ft1(
    n: int, code: str, when: str, *, units: str = "", dx: str = "M54.50^Low back pain^I10", modifiers: str = ""
) -> str:
    return segment(
        "FT1",
        {
            1: str(n),
            3: f"T{n}",
            4: when,
            6: "CG",
            7: f"{code}^^C4",
            10: units,
            19: dx,
            20: THERAPIST,
            25: f"{code}^^C4",
            26: modifiers,
        },
    )


def pr1(n: int, code: str, start: str, minutes: str) -> str:
    return segment("PR1", {1: str(n), 3: f"{code}^^C4", 5: start, 7: minutes})


def dg1(n: int, code: str, text: str = "", kind: str = "F") -> str:
    return segment("DG1", {1: str(n), 3: f"{code}^{text}^I10", 6: kind})


def in1(plan_type: str = "PPO", company: str = "ACME01^^^&2.16.840.1.999.1&ISO", name: str = "Acme Health") -> str:
    return segment("IN1", {1: "1", 2: "PLAN1^Gold PPO", 3: company, 4: name, 15: plan_type, 36: "W123456789"})


def message(*segments: str) -> bytes:
    return ("\r".join(segments) + "\r").encode()


def visit(
    control_id: str = "MSG0001",
    *,
    version: str = "2.5.1",
    units: tuple[str, str] = ("2", "1"),
    extra: dict[int, str] | None = None,
    visit_number: str = "V-1001",
) -> bytes:
    """97124 with 24 PR1 minutes and 97140 over a 23-minute FT1-4 range, low back pain, a PPO plan."""
    return message(
        msh(control_id, version=version, extra=extra),
        segment("EVN", {1: "P03", 2: "20250114100000-0500"}),
        pid(),
        pv1(visit_number),
        ft1(1, "97124", "20250114090000-0500", units=units[0]),
        pr1(1, "97124", "20250114090000-0500", "24"),
        ft1(2, "97140", "20250114093000-0500^20250114095300-0500", units=units[1]),
        dg1(1, "M54.50", "Low back pain, unspecified"),
        in1(),
        segment("NTE", {1: "1", 3: "free text"}),
    )
