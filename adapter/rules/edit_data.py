"""Schemas of the payer edits in a payer pack, and loaders for the CMS quarterly files.

The NCCI procedure-to-procedure (PTP) and the practitioner MUE tables are published by CMS every
quarter; a pack may list rows inline and/or name files in the CMS layout (relative to the
mappings folder), so a user can drop the real files in.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from adapter.rules.rulefile import Strict

CptKey = Annotated[str, Field(pattern=r"^[0-9A-Z]{5}$")]
ModifierCode = Annotated[str, Field(pattern=r"^[0-9A-Z]{2}$")]


class PtpPair(Strict):
    column1: CptKey
    column2: CptKey
    modifier_indicator: Literal[0, 1, 9]
    effective: date
    deletion: date | None = None
    bypass: Literal["spinal-region", "time-block", "distinct-service"] = Field(
        "time-block",
        description="what documentation lets a modifier bypass an indicator-1 edit: a different spinal region "
        "(body sites), separate time blocks (performed periods) or a distinct service (always)",
    )
    source: str

    def active_on(self, day: date) -> bool:
        return self.modifier_indicator != 9 and self.effective <= day and (self.deletion is None or day < self.deletion)


class NcciPolicy(Strict):
    region_modifier: Literal["XS", "59"] = Field("XS", description="bypass modifier for a different spinal region")
    time_modifier: Literal["XU", "59"] = Field("59", description="bypass modifier for separate time blocks")
    spinal_regions: list[str] = Field(
        default=["cervical-spine", "thoracic-spine", "lumbar-spine", "pelvis"],
        description="body-site regions that count as spinal regions for CMT edits",
    )
    pairs: list[PtpPair] = []
    files: list[str] = Field(default=[], description="CMS PTP files (tab or comma separated), relative to mappings/")
    bypass_by_column1: dict[str, Literal["spinal-region", "time-block", "distinct-service"]] = Field(
        default={},
        description="bypass kind of file rows by column-1 code prefix (the CMS file does not say); a file row "
        "for a pair listed in `pairs` keeps that row's kind; otherwise time-block",
    )

    def merged_with(self, file_rows: list[PtpPair]) -> tuple[PtpPair, ...]:
        """File rows replace the inline row of the same pair (keeping its bypass kind); new pairs take the
        kind of their column-1 prefix."""
        inline = {(p.column1, p.column2): p for p in self.pairs}
        merged = dict(inline)
        for row in file_rows:
            known = inline.get((row.column1, row.column2))
            prefix = max((p for p in self.bypass_by_column1 if row.column1.startswith(p)), key=len, default=None)
            kind = known.bypass if known else self.bypass_by_column1[prefix] if prefix else "time-block"
            merged[(row.column1, row.column2)] = row.model_copy(update={"bypass": kind})
        return tuple(merged.values())


class MueCap(Strict):
    cpt: CptKey
    units: Annotated[int, Field(ge=0)]
    mai: Literal[1, 2, 3] = Field(
        description="MUE adjudication indicator: 1 line, 2 date of service (policy), 3 date of service (clinical)"
    )
    placeholder: bool = Field(description="true while the value is not from the current CMS file")
    source: str


class MuePolicy(Strict):
    caps: list[MueCap] = []
    files: list[str] = Field(default=[], description="CMS practitioner MUE files (CSV), relative to mappings/")


class ProviderRole(Strict):
    role: Annotated[str, Field(pattern=r"^[a-z][a-z-]*$")]
    system: str
    code_prefix: str
    source: str


class Discipline(Strict):
    id: Literal["pt", "ot", "slp"]
    modifier: Literal["GP", "GO", "GN"]
    roles: list[str] = Field(description="provider roles of this discipline")
    assistant_roles: list[str] = Field(default=[], description="assistant roles (PTA, OTA)")
    assistant_modifier: Literal["CQ", "CO"] | None = None
    plan_codes: list[tuple[str, str]] = Field(default=[], description="(system, code) of plan-of-care categories")
    source: str


class AssistantPolicy(Strict):
    """How CQ / CO are decided per unit (Pub 100-04 ch. 5 §20.1; CMS "Billing Examples Using CQ/CO
    Modifiers for Services Furnished In Whole or In Part by PTAs and OTAs")."""

    label: str = "CQ/CO"
    de_minimis_percent: Annotated[int, Field(ge=0, le=100)] = Field(
        10, description="an assistant's independent minutes above this share of a unit's minutes make it 'in part'"
    )
    final_unit: Literal["de-minimis", "therapist-midpoint"] = Field(
        "de-minimis",
        description="the unit left after full 15-minute units: de-minimis (the 10 % test alone) or "
        "therapist-midpoint (without CQ/CO when the therapist alone furnished 8+ of its minutes, the CY 2022 "
        "revision as secondary sources describe it: UNCONFIRMED)",
    )
    payment_percent: Annotated[int, Field(ge=1, le=100)] | None = Field(
        None, description="the payer pays CQ/CO lines at this share of the fee schedule (SSA §1834(v): 85 %)"
    )
    payment_from: date | None = Field(None, description="dates of service from which payment_percent applies")
    payment_source: str = ""
    source: str = ""

    def allowed_cents(self, cents: int, service_date: date) -> int:
        """What the payer allows for a CQ/CO line charged ``cents`` on that date of service."""
        if self.payment_percent is None or (self.payment_from is not None and service_date < self.payment_from):
            return cents
        return (cents * self.payment_percent + 50) // 100


class KxYear(Strict):
    year: Annotated[int, Field(ge=2006, le=2100)]
    amount: Annotated[str, Field(pattern=r"^\d+\.\d{2}$")]
    placeholder: bool = Field(description="true while the amount is not confirmed from a CMS source")
    source: str


class KxThreshold(Strict):
    by_year: list[KxYear] = Field(description="the threshold of each calendar year; the date of service chooses")
    groups: dict[str, list[str]] = Field(description="threshold group -> disciplines (PT and SLP share one)")
    amounts: str = Field(
        "this claim's lines at the pack's fee schedule",
        description="what the claim adds to the year-to-date amount (the threshold counts allowed amounts)",
    )

    def for_year(self, year: int) -> KxYear | None:
        return next((y for y in self.by_year if y.year == year), None)


class ProviderPolicy(Strict):
    roles: list[ProviderRole] = []
    excluded_route: Literal["hold", "gy"] = Field(
        "hold",
        description="a code the performer may not bill under this payer (statutorily excluded for them): hold the "
        "Claim for review, or bill the line with GY (statutorily excluded) where the payer wants the denial",
    )
    excluded_source: str = ""
    may_bill_therapy: list[str] | None = Field(None, description="roles allowed on therapy codes; null: no check")
    may_bill_other: list[str] | None = Field(None, description="roles allowed on other codes; null: no check")


class DevicePolicy(Strict):
    applies_to: list[CptKey] = Field(default=["97124", "97140"], description="hands-on codes a device rules out")
    codes: list[tuple[str, str, str]] = Field(default=[], description="(system, code, display) of massage devices")
    bill_as: CptKey | None = Field(None, description="code billed instead (97039), or null: not billable")
    description: str = Field("", description="narrative the payer needs with the unlisted code")
    source: str = ""


class CodeRule(Strict):
    code: CptKey
    action: Literal["bill-as", "bundled", "not-covered"] = Field(
        description="bill-as: the payer wants another code for the service; bundled: not separately billable "
        "(MPFS status B), left off; not-covered: the payer does not pay the code, left off"
    )
    bill_as: CptKey | None = None
    source: str


class CodeSetPolicy(Strict):
    """The payer's code set: codes it replaces, bundles or does not pay, codes billed per session, codes
    that need a description."""

    rules: list[CodeRule] = []
    per_session: list[CptKey] = Field(default=[], description="untimed codes billed once per session (visit)")
    needs_description: list[CptKey] = Field(default=[], description="unlisted codes: the line needs a narrative")
    source: str = ""

    def rule_for(self, cpt: str) -> CodeRule | None:
        return next((r for r in self.rules if r.code == cpt), None)


class ChiropracticPolicy(Strict):
    codes: list[CptKey] = Field(default=[], description="spinal CMT codes that carry the active-treatment modifier")
    roles: list[str] = Field(default=["chiropractor"], description="performer roles the modifier is for")
    modifier: Literal["AT"] = "AT"
    source: str = ""


class TelehealthPolicy(Strict):
    """A virtual visit (Encounter.class VR, or a virtual Location) is never billed with the office POS."""

    covered: bool = Field(False, description="false: a virtual visit is held (the payer does not cover it)")
    home_place_of_service: str = Field("10", description="POS when the patient is at home (Location PTRES / ho)")
    other_place_of_service: str = Field("02", description="POS for telehealth elsewhere than the patient's home")
    modifier: Literal["95", "GT"] | None = Field(None, description="the line modifier the payer wants, if any")
    source: str = ""


KNOWN_MODIFIERS = [
    # anatomic and NCCI-associated modifiers (NCCI Policy Manual ch. I §E, billing-rules.md F2.3), CPT 22/52/76/77,
    # ABN modifiers GA/GX/GZ; the ones the rules decide (GP/GO/GN, CQ/CO, 59/X{EPSU}, KX, AT, 95, GY) are known too
    "LT", "RT", "E1", "E2", "E3", "E4", "FA", "F1", "F2", "F3", "F4", "F5", "F6", "F7", "F8", "F9",
    "TA", "T1", "T2", "T3", "T4", "T5", "T6", "T7", "T8", "T9", "LC", "LD", "RC", "LM", "RI",
    "24", "25", "27", "57", "58", "76", "77", "78", "79", "91", "22", "52", "GA", "GX", "GZ",
]  # fmt: skip


class SentModifierPolicy(Strict):
    known: list[ModifierCode] = Field(default=KNOWN_MODIFIERS, description="modifiers a sender may attach")
    unknown: Literal["remove", "hold"] = Field("remove", description="a modifier not in `known`")
    unneeded_bypass: Literal["remove", "hold"] = Field(
        "remove", description="a 59 / XE / XS / XP / XU on a line no NCCI edit needs it for"
    )
    source: str = ""


class PlanOfCarePolicy(Strict):
    required: bool = False
    source: str = ""
    certification_days: Annotated[int, Field(ge=1)] | None = Field(
        None, description="a plan certifies at most this many days from its start (Medicare: 90); null: no check"
    )
    recertification: Literal["hold", "warn"] = "hold"
    progress_report_days: Annotated[int, Field(ge=1)] | None = Field(
        None, description="a progress report is due at least every this many treatment days (Medicare: 10)"
    )
    progress_report: Literal["hold", "warn"] = "warn"
    dates_source: str = ""


class NecessityPolicy(Strict):
    unsupported_diagnoses: list[tuple[str, str]] = Field(
        default=[], description="(ICD-10-CM prefix without dot, display): reasons that alone do not support therapy"
    )
    source: str = ""


class EditPolicy(Strict):
    ncci: NcciPolicy = NcciPolicy()
    mue: MuePolicy = MuePolicy()
    disciplines: list[Discipline] = []
    default_discipline: Literal["pt", "ot", "slp"] | None = None
    assistant: AssistantPolicy = AssistantPolicy()
    kx: KxThreshold | None = None
    providers: ProviderPolicy = ProviderPolicy()
    devices: DevicePolicy = DevicePolicy()
    code_set: CodeSetPolicy = CodeSetPolicy()
    chiropractic: ChiropracticPolicy = ChiropracticPolicy()
    telehealth: TelehealthPolicy = TelehealthPolicy()
    sent_modifiers: SentModifierPolicy = SentModifierPolicy()
    plan_of_care: PlanOfCarePolicy = PlanOfCarePolicy()
    medical_necessity: NecessityPolicy = NecessityPolicy()


def _rows(text: str, header_starts: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of a CMS table: skips the preamble up to the header row, tab- or comma-separated."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        lowered = line.lower()
        if all(h.lower() in lowered for h in header_starts):
            dialect = "excel-tab" if "\t" in line else "excel"
            reader = csv.reader(io.StringIO("\n".join(lines[index:])), dialect=dialect)
            header = [h.strip() for h in next(reader)]
            return [dict(zip(header, (c.strip() for c in row), strict=False)) for row in reader if any(row)]
    raise ValueError(f"no header row with {header_starts}")


def _column(row: dict[str, str], prefix: str) -> str:
    for name, value in row.items():
        if name.lower().startswith(prefix.lower()):
            return value
    raise ValueError(f"no column starting with {prefix!r}")


def _cms_date(value: str) -> date | None:
    value = value.strip()
    if not value or value == "*":
        return None
    return date(int(value[:4]), int(value[4:6]), int(value[6:8]))


def load_ptp_file(path: Path) -> list[PtpPair]:
    """The CMS NCCI PTP practitioner table: Column 1, Column 2, *, Effective Date, Deletion Date,
    Modifier (0/1/9), PTP Edit Rationale.  Dates are YYYYMMDD; ``*`` means no deletion date."""
    pairs = []
    for row in _rows(path.read_text(encoding="utf-8-sig"), ("Column 1", "Column 2")):
        effective = _cms_date(_column(row, "Effective"))
        if effective is None:
            raise ValueError(f"{path}: a row without an effective date: {row}")
        pairs.append(
            PtpPair(
                column1=_column(row, "Column 1"),
                column2=_column(row, "Column 2"),
                modifier_indicator=int(_column(row, "Modifier")[:1]),
                effective=effective,
                deletion=_cms_date(_column(row, "Deletion")),
                source=f"{path.name}: {_column(row, 'PTP Edit Rationale') or 'CMS PTP table'}",
            )
        )
    return pairs


def load_mue_file(path: Path) -> list[MueCap]:
    """The CMS practitioner MUE table: HCPCS/CPT Code, Practitioner Services MUE Values, MUE Adjudication
    Indicator ("2 Date of Service Edit: Policy"), MUE Rationale."""
    caps = []
    for row in _rows(path.read_text(encoding="utf-8-sig"), ("HCPCS", "MUE")):
        caps.append(
            MueCap(
                cpt=_column(row, "HCPCS"),
                units=int(_column(row, "Practitioner Services MUE")),
                mai=int(_column(row, "MUE Adjudication")[:1]),
                placeholder=False,
                source=f"{path.name}: {_column(row, 'MUE Rationale') or 'CMS practitioner MUE table'}",
            )
        )
    return caps
