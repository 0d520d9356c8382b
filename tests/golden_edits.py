"""Golden cases of the payer edits (issue 5): every edit fires in one case and not in another.

Sources are cited in each case's why.txt: ../shared/docs/billing-rules.md (§ and F-numbers, test
cases T28-T34) and the payer packs (mappings/payers/*.yaml, ``edits:``), whose placeholder values
(MUE caps, the KX amount) are labelled as such in the findings.  Visits are on 2025-01-14 from 09:00
(-05:00) under the visit() defaults (a PT performer, a PT plan of care 2025-01-01..2025-03-31,
diagnosis M54.50) unless a case says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.bundle_builder import (
    MASSAGE_DEVICE,
    back_to_back,
    base_resources,
    bundle,
    care_plan,
    condition,
    device,
    encounter,
    find,
    plan_of_care,
    practitioner,
    procedure,
    visit,
    with_modifiers,
    with_year_to_date,
)
from tests.golden_cases import Case

Bundle = dict[str, Any]

# NUCC Health Care Provider Taxonomy codes (the packs' provider roles match them by prefix).
PHYSICIAN_PMR = "208100000X"  # Physical Medicine & Rehabilitation physician
PTA = "225200000X"
OT = "225X00000X"
OTA = "224Z00000X"
CHIROPRACTOR = "111N00000X"
MASSAGE_THERAPIST = "225700000X"
OT_PLAN = "84478008"  # the medicare pack's OT plan-of-care category (SNOMED)

# SNOMED body structures (mappings/body-sites.yaml)
CERVICAL = ("122494005", "Structure of cervical vertebral column")
THORACIC = ("122495006", "Thoracic spine structure")
LUMBAR = ("122496007", "Lumbar spine structure")
LOWER_BACK = ("37822005", "Lower back structure")
SHOULDER = ("16982005", "Shoulder region structure")

AT_9 = "2025-01-14T09:00:00-05:00"


def _at(minute: int) -> str:
    return f"2025-01-14T09:{minute:02d}:00-05:00"


def _with(*extra: dict[str, Any], payer: str = "medicare", change: Callable[[Bundle], None] | None = None) -> Bundle:
    """visit()'s resources plus ``extra`` (practitioners, devices), then ``change`` edits the Bundle."""
    document = visit(*extra, payer=payer)
    if change is not None:
        change(document)
    return document


# --- NCCI procedure-to-procedure pairs (billing-rules.md §2, T28, T29) -----------------------------


def _cmt_with_97140(site: tuple[str, str] | None) -> Callable[[], Bundle]:
    """A PM&R physician: 98941 on the cervical, thoracic and lumbar spine, then 97140 23 min at ``site``."""

    def build() -> Bundle:
        cmt = procedure("98941", None, performed=AT_9, performer="Practitioner/md-1", proc_id="proc-98941")
        cmt["bodySite"] = [
            {"coding": [{"system": "http://snomed.info/sct", "code": code, "display": display}]}
            for code, display in (CERVICAL, THORACIC, LUMBAR)
        ]
        manual = procedure("97140", 23, start=_at(10), performer="Practitioner/md-1", body_site=site)
        return _with(practitioner("md-1", PHYSICIAN_PMR), cmt, manual)

    return build


def _manual_and_activity(
    *, overlap: bool, performer: str = "Practitioner/pt-1", extra: tuple[dict[str, Any], ...] = ()
) -> list[dict[str, Any]]:
    """97140 + 97530: split blocks (10 min manual, 15 min activity, 5 min manual) or overlapping ones."""
    if overlap:
        return [
            procedure("97140", 15, start=_at(0), performer=performer),
            procedure("97530", 15, start=_at(5), performer=performer),
        ]
    return [
        procedure("97140", 10, start=_at(0), performer=performer, proc_id="proc-97140-a"),
        procedure("97530", 15, start=_at(10), performer=performer),
        procedure("97140", 5, start=_at(25), performer=performer, proc_id="proc-97140-b"),
        *extra,
    ]


CMT_SOURCE = (
    "billing-rules.md §2.2 (NCCI Policy Manual ch. XI §S), F9.4, T28; medicare.yaml edits.ncci pair 98941/97140"
)
CASES: list[Case] = [
    Case(
        "edit-ncci-cmt-98941-97140-same-region-not-billable",
        "Medicare, a PM&R physician: CMT 98941 on cervical/thoracic/lumbar spine + 97140 23 min on the lower back "
        "(lumbar region, the same spinal region) -> 97140 is not billable (ncci-column2-not-billable, rule "
        "edits/ncci-ptp); the Claim goes out active with 98941 x1 only (no GP: CMT is not a therapy code).\n"
        f"Source: {CMT_SOURCE}",
        _cmt_with_97140(LOWER_BACK),
    ),
    Case(
        "edit-ncci-cmt-98941-97140-different-region-xs",
        "Medicare, a PM&R physician: CMT 98941 on the spine + 97140 23 min on the shoulder (a different region, "
        "documented by body sites) -> 97140 x2 billed with GP, XS (the pack's region modifier; ncci-bypass); "
        "98941 x1 without modifiers; Claim active.\n"
        f"Source: {CMT_SOURCE}; F2.3-F2.4 (XS before 59); edits.py modifier order (discipline, then bypass)",
        _cmt_with_97140(SHOULDER),
    ),
    Case(
        "edit-ncci-cmt-98941-97140-no-body-site-held",
        "Medicare: CMT 98941 with body sites + 97140 23 min without a bodySite -> the region cannot be compared: "
        "97140 stays (GP only, no bypass modifier) and the Claim is held (draft) with ncci-undocumented "
        "(rule edits/ncci-ptp) asking for body sites.\n"
        f"Source: {CMT_SOURCE}; F9.4 (scrubber check: Procedure.bodySite present and different from the CMT's)",
        _cmt_with_97140(None),
    ),
    Case(
        "edit-ncci-97140-97530-split-blocks-59",
        "Medicare: 97140 10 min, 97530 15 min, 97140 5 min in separate (split) time blocks -> 30 pooled min: "
        "97140 x1 (two Procedures merged) with GP, 97530 x1 with GP, 59 (column 2; the pack's time modifier; "
        "ncci-bypass); Claim active.\nSource: billing-rules.md §2.2 (CMS MLN modifier 59 example 9: 10 min manual, "
        "15 min activities, 5 min manual), F1.11, F2.5, T29",
        lambda: _with(*_manual_and_activity(overlap=False)),
    ),
    Case(
        "edit-ncci-97140-97530-same-block-not-billable",
        "Medicare: 97140 09:00-09:15 and 97530 09:05-09:20 share a time block -> 97530 is not billable "
        "(ncci-column2-not-billable, same time block); 97140 x1 GP remains (units pooled on the documented 30 "
        "min) and the Claim is held (draft) by overlapping-timed-services (units/overlap).\nSource: "
        "billing-rules.md §2.2 (same block: 97530 not reported), T29; F1.10 (no two codes for the same 15 min)",
        lambda: _with(*_manual_and_activity(overlap=True)),
    ),
    Case(
        "edit-ncci-97161-97140-59",
        "Medicare: PT evaluation 97161 + 97140 23 min on the same day -> 97161 x1 GP; 97140 x2 with GP, 59 "
        "(distinct-service bypass of the eval pair; ncci-bypass); Claim active.\nSource: billing-rules.md §2.2 "
        "(APTA: since 2020 a 59/X modifier on 97140 with a PT evaluation; column order UNCONFIRMED)",
        lambda: _with(
            procedure("97161", None, performed=AT_9),
            *back_to_back(("97140", 23), start=_at(30)),
        ),
    ),
    # --- MUE (billing-rules.md §3) -------------------------------------------------------------------
    Case(
        "edit-mue-97140-9-units-over-cap-held",
        "Medicare: 97140 128 min -> 9 units (T3 chart: 128 = 113-127 row + 1), above the pack's PLACEHOLDER MUE "
        "of 8 (MAI 3) -> the line stays and the Claim is held (draft) with mue-exceeded (rule edits/mue), whose "
        "message says the value is a placeholder.\nSource: billing-rules.md F3.1-F3.2, F3.5 (97140 MUE "
        "UNCONFIRMED); medicare.yaml edits.mue.caps",
        lambda: visit(*back_to_back(("97140", 128))),
    ),
    Case(
        "edit-mue-97140-8-units-at-cap",
        "Medicare: 97140 120 min -> 8 units, exactly the pack's PLACEHOLDER MUE of 8 -> no MUE finding; GP; "
        "Claim active.\nSource: billing-rules.md F3.1 (the MUE is the most units allowed), F3.5; T3 chart",
        lambda: visit(*back_to_back(("97140", 120))),
    ),
]

# --- modifiers (billing-rules.md §4.1-§4.2, F2.8, T30, T31) ---------------------------------------


def _ot_visit(performer_taxonomy: str, *, ot_ytd: float | None = None, pt_ytd: float | None = None) -> Bundle:
    """An OT plan of care (category 84478008) and an OT-discipline performer doing 97140 23 min."""

    def change(document: Bundle) -> None:
        find(document, "ServiceRequest", "poc-1")["category"][0]["coding"][0]["code"] = OT_PLAN
        if ot_ytd is not None or pt_ytd is not None:
            with_year_to_date(find(document, "Coverage", "cov-1"), pt_slp=pt_ytd, ot=ot_ytd)

    return _with(
        practitioner("ot-1", performer_taxonomy),
        procedure("97140", 23, performer="Practitioner/ot-1"),
        change=change,
    )


def _year_to_date(pt_slp: float) -> Callable[[Bundle], None]:
    return lambda document: with_year_to_date(find(document, "Coverage", "cov-1"), pt_slp=pt_slp)


def _lt_on_97530_after_2450(document: Bundle) -> None:
    _year_to_date(2450.00)(document)
    with_modifiers(find(document, "Procedure", "proc-97530"), "LT")


def _modified(code: str, minutes: int, *modifiers: str) -> Callable[[], Bundle]:
    return lambda: visit(with_modifiers(procedure(code, minutes), *modifiers))


KX_SOURCE = (
    "billing-rules.md F4.5-F4.8 (PT+SLP share one threshold, OT separate; KX only when a year-to-date "
    "amount crosses it); medicare.yaml edits.kx.by_year: the visits are in 2025, CY2025 2410.00 (secondary "
    "sources: labelled placeholder)"
)
ORDER_SOURCE = "adapter/rules/edits.py docstring (documented order); billing-rules.md F4.4 (any order, at most 4)"

CASES += [
    Case(
        "edit-modifier-gp-every-therapy-line-medicare",
        "Medicare, PT plan: 97124 24 min + 97140 23 min -> 97124 x2 and 97140 x1, both with GP; no NCCI "
        "modifier (no 97124/97140 pair in the pack: UNCONFIRMED); Claim active.\nSource: billing-rules.md F4.1 "
        "(GP on every therapy line under a PT plan of care); §2.2 (97124 <-> 97140 pair UNCONFIRMED); T6",
        lambda: visit(*back_to_back(("97124", 24), ("97140", 23))),
    ),
    Case(
        "edit-modifier-commercial-no-gp",
        "Same visit under a commercial Coverage (SOPT 5): 97124 x2, 97140 x2 (ama-per-code) with no modifiers: "
        "the commercial pack has no disciplines (GP/GO/GN are Medicare therapy modifiers); Claim active.\n"
        "Source: billing-rules.md F4.1 (Medicare), commercial.yaml (edits: devices only); T6 AMA column",
        lambda: visit(*back_to_back(("97124", 24), ("97140", 23)), payer="commercial"),
    ),
    Case(
        "edit-modifier-ot-plan-go",
        "Medicare: an OT (NUCC 225X00000X) does 97140 23 min under an OT plan of care (category SNOMED 84478008) "
        "-> 97140 x2 with GO (not GP); Claim active.\nSource: billing-rules.md F4.1 (GO = OT plan of care); "
        "medicare.yaml edits.disciplines (plan_codes)",
        lambda: _ot_visit(OT),
    ),
    Case(
        "edit-modifier-pta-gp-cq",
        "Medicare, PT plan: a PTA (NUCC 225200000X) does 97140 23 min -> 97140 x2 with GP, CQ (discipline "
        "first, then the assistant modifier); Claim active.\nSource: billing-rules.md F4.2 (CQ with GP), T31; "
        f"{ORDER_SOURCE}",
        lambda: _with(practitioner("pta-1", PTA), procedure("97140", 23, performer="Practitioner/pta-1")),
    ),
    Case(
        "edit-modifier-ota-under-pt-plan-held",
        "Medicare, PT plan: an OTA (NUCC 224Z00000X) does 97140 23 min -> 97140 x2 with GP only (CO goes only "
        "with GO, so it is not added) and the Claim is held (draft) with assistant-discipline-mismatch (rule "
        "edits/modifiers).\nSource: billing-rules.md F4.2 (CO must be paired with GO; a mismatch is rejected), T31",
        lambda: _with(practitioner("ota-1", OTA), procedure("97140", 23, performer="Practitioner/ota-1")),
    ),
    Case(
        "edit-modifier-kx-over-threshold",
        "Medicare: the Coverage says 2450.00 of PT/SLP therapy so far this year; 97140 x2 = 90.00 -> 2540.00 "
        "> 2410.00 -> 97140 with GP, KX (kx-added, rule edits/kx); Claim active.\n"
        f"Source: {KX_SOURCE}",
        lambda: _with(*back_to_back(("97140", 23)), change=_year_to_date(2450.00)),
    ),
    Case(
        "edit-modifier-kx-below-threshold",
        "Medicare: 1000.00 PT/SLP so far this year + 90.00 = 1090.00 <= 2410.00 -> 97140 x2 with GP only, no "
        "KX and no KX finding; Claim active.\n"
        f"Source: {KX_SOURCE}; F4.8 (KX below the threshold is abuse)",
        lambda: _with(*back_to_back(("97140", 23)), change=_year_to_date(1000.00)),
    ),
    Case(
        "edit-modifier-kx-no-amount",
        "Medicare: no therapy-year-to-date extension on the Coverage -> KX is not guessed: 97140 x2 with GP "
        "only and an information finding kx-not-evaluated (rule edits/kx); Claim active.\n"
        f"Source: {KX_SOURCE}; issue 5 ('year-to-date amount is an input ... do not guess it')",
        lambda: visit(*back_to_back(("97140", 23))),
    ),
    Case(
        "edit-modifier-kx-ot-threshold-separate",
        "Medicare, OT plan, an OT does 97140 23 min: PT/SLP so far 2450.00 (would cross) but OT so far 100.00 -> "
        "OT is its own group: 100.00 + 90.00 <= 2410.00 -> 97140 with GO only, no KX; Claim active.\n"
        f"Source: {KX_SOURCE}",
        lambda: _ot_visit(OT, ot_ytd=100.00, pt_ytd=2450.00),
    ),
    Case(
        "edit-modifier-51-removed",
        "Medicare: the sender attached modifier 51 to 97124 30 min -> 51 is removed with a warning "
        "(modifier-51-removed, rule edits/modifiers); 97124 x2 with GP; Claim active.\nSource: billing-rules.md "
        "F2.8-F2.9 (CPT: no 51 on PM&R 97xxx; Medicare uses MPPR instead), T30",
        _modified("97124", 30, "51"),
    ),
    Case(
        "edit-modifier-sender-lt-kept",
        "Medicare: the sender attached LT to 97140 23 min -> kept after the edit modifiers: GP, LT; no "
        "modifier finding; Claim active.\nSource: billing-rules.md F2.3 (LT is an anatomic modifier); "
        f"{ORDER_SOURCE} (sender modifiers last)",
        _modified("97140", 23, "LT"),
    ),
    Case(
        "edit-modifier-order-four-gp-cq-59-kx",
        "Medicare, a PTA does 97140 10 + 97530 15 + 97140 5 min in split blocks; PT/SLP so far this year "
        "2450.00 -> 97140 x1 with GP, CQ, KX; 97530 x1 with GP, CQ, 59, KX (exactly four, in the "
        "documented order: discipline, assistant, NCCI bypass, KX); Claim active.\nSource: "
        f"{ORDER_SOURCE}; F4.2 (CQ), F1.11/F2.5 (59), F4.5 (KX)",
        lambda: _with(
            practitioner("pta-1", PTA),
            *_manual_and_activity(overlap=False, performer="Practitioner/pta-1"),
            change=_year_to_date(2450.00),
        ),
    ),
    Case(
        "edit-modifier-more-than-four-held",
        "As edit-modifier-order-four-gp-cq-59-kx, and the sender attached LT to 97530 -> five modifiers: the "
        "line keeps the first four in order (GP, CQ, 59, KX; LT dropped) and the Claim is held (draft) with "
        "too-many-modifiers (rule edits/modifiers).\nSource: adapter/rules/edits.py docstring (documented order); "
        "billing-rules.md F4.4 (the 837P SV101 carries at most 4 modifiers per line)",
        lambda: _with(
            practitioner("pta-1", PTA),
            *_manual_and_activity(overlap=False, performer="Practitioner/pta-1"),
            change=_lt_on_97530_after_2450,
        ),
    ),
]

# --- devices (billing-rules.md F9.6, T34) -----------------------------------------------------------


def _chair_medicare() -> Bundle:
    chair = procedure("97124", 20)
    chair["usedCode"] = [{"coding": [{"system": MASSAGE_DEVICE, "code": "massage-chair", "display": "massage chair"}]}]
    return visit(chair)


def _hydro_table_commercial() -> Bundle:
    table = procedure("97124", 20)
    table["focalDevice"] = [{"manipulated": {"reference": "Device/dev-1"}}]
    hands_on = procedure("97140", 23, start=_at(20))
    return visit(device("dev-1", "hydro-massage-table", "hydro-massage table"), table, hands_on, payer="commercial")


DEVICE_SOURCE = "billing-rules.md F9.6 (CPT Assistant Aug 2006: massage devices -> 97039; payers disagree), T34"
CASES += [
    Case(
        "edit-device-massage-chair-medicare-97039",
        "Medicare: 97124 20 min with usedCode massage-chair -> billed as 97039 x1 (unlisted modality, untimed) "
        "with GP and the pack's description on the line; device-billed-as-unlisted warning (rule edits/devices); "
        f"Claim active.\nSource: {DEVICE_SOURCE}; medicare.yaml edits.devices (bill_as 97039)",
        _chair_medicare,
    ),
    Case(
        "edit-device-hydro-table-commercial-not-billable",
        "Commercial: 97124 20 min on a hydro-massage table (focalDevice -> Device.type) is not billable "
        "(device-not-billable, rule edits/devices); the hands-on 97140 23 min -> x2 (ama-per-code), no "
        f"modifiers; Claim active.\nSource: {DEVICE_SOURCE}; commercial.yaml edits.devices (bill_as null)",
        _hydro_table_commercial,
    ),
    Case(
        "edit-device-none-97124-hands-on",
        "Medicare: 97124 30 min with no device -> hands-on massage: 97124 x2 with GP, no device finding; Claim "
        f"active.\nSource: {DEVICE_SOURCE}; T4 chart",
        lambda: visit(procedure("97124", 30)),
    ),
]

# --- provider qualification (billing-rules.md F4.11) -------------------------------------------------


def _performed_by(taxonomy: str | None, payer: str = "medicare") -> Callable[[], Bundle]:
    return lambda: visit(
        practitioner("rp-1", taxonomy),
        procedure("97124", 30, performer="Practitioner/rp-1"),
        payer=payer,
    )


PROVIDER_SOURCE = "billing-rules.md F4.11 (BPM ch. 15 §220/§230, §30.5, §240.1.1); medicare.yaml edits.providers"
CASES += [
    Case(
        "edit-provider-chiropractor-97124-medicare-held",
        "Medicare: a chiropractor (NUCC 111N00000X) bills 97124 30 min -> 97124 x2 GP stays on the Claim, which is "
        "held (draft) with provider-not-qualified (rule edits/providers): Medicare pays chiropractors only for "
        f"spinal CMT.\nSource: {PROVIDER_SOURCE}",
        _performed_by(CHIROPRACTOR),
    ),
    Case(
        "edit-provider-massage-therapist-97124-medicare-held",
        "Medicare: a massage therapist (NUCC 225700000X) bills 97124 30 min -> held (draft) with "
        f"provider-not-qualified (rule edits/providers).\nSource: {PROVIDER_SOURCE} (massage therapists are not "
        "qualified providers of Medicare therapy)",
        _performed_by(MASSAGE_THERAPIST),
    ),
    Case(
        "edit-provider-pt-97124-medicare-billable",
        "Medicare: a physical therapist (NUCC 225100000X) bills 97124 30 min -> 97124 x2 GP, no provider "
        f"finding; Claim active.\nSource: {PROVIDER_SOURCE}",
        _performed_by("225100000X"),
    ),
    Case(
        "edit-provider-no-taxonomy-held",
        "Medicare: the performer has no qualification (no NUCC taxonomy) -> the pack cannot tell whether they "
        "may bill 97124: held (draft) with provider-qualification-unknown (rule edits/providers).\nSource: "
        f"{PROVIDER_SOURCE}; issue 5 (unbillable lines are held with a finding)",
        _performed_by(None),
    ),
    Case(
        "edit-provider-massage-therapist-commercial-no-check",
        "Commercial: a massage therapist (NUCC 225700000X) bills 97124 30 min -> 97124 x2, no provider finding "
        "(the commercial pack has no provider check: commercial plans differ); Claim active.\nSource: "
        "billing-rules.md F4.11 ('Commercial plans differ'); commercial.yaml (no edits.providers)",
        _performed_by(MASSAGE_THERAPIST, payer="commercial"),
    ),
]

# --- plan of care (billing-rules.md F9.2) -----------------------------------------------------------


def _without_plan(payer: str = "medicare") -> Bundle:
    resources = [*base_resources(payer), encounter(), procedure("97140", 23)]
    del resources[-2]["basedOn"]
    return bundle(*resources)


def _care_plan_on_procedure() -> Bundle:
    enc = encounter()
    del enc["basedOn"]
    manual = procedure("97140", 23)
    manual["basedOn"] = [{"reference": "CarePlan/cp-1"}]
    return bundle(*base_resources("medicare"), enc, manual, care_plan())


PLAN_SOURCE = "billing-rules.md F9.2 (BPM ch. 15 §220.1: a plan of care covering the date of service)"
CASES += [
    Case(
        "edit-plan-none-held",
        "Medicare: no basedOn and no ServiceRequest / CarePlan in the Bundle -> 97140 x2 GP, held (draft) with "
        f"no-plan-of-care (rule edits/plan-of-care, 'plans: none in the Bundle').\nSource: {PLAN_SOURCE}; "
        "medicare.yaml edits.plan_of_care.required",
        _without_plan,
    ),
    Case(
        "edit-plan-expired-held",
        "Medicare: the PT plan of care ran 2024-07-01..2024-12-31, before the 2025-01-14 visit -> held (draft) "
        f"with no-plan-of-care naming ServiceRequest/poc-1.\nSource: {PLAN_SOURCE}",
        lambda: _with(
            procedure("97140", 23),
            change=lambda d: find(d, "ServiceRequest", "poc-1").update(
                occurrencePeriod={"start": "2024-07-01", "end": "2024-12-31"}
            ),
        ),
    ),
    Case(
        "edit-plan-careplan-on-procedure-covers",
        "Medicare: no Encounter.basedOn, but the Procedure's basedOn names a PT CarePlan whose period "
        "2025-01-01..2025-03-31 covers the visit -> 97140 x2 GP, no plan finding; Claim active.\nSource: "
        f"{PLAN_SOURCE}; issue 5 (ServiceRequest / CarePlan referenced by the Encounter or Procedure)",
        _care_plan_on_procedure,
    ),
    Case(
        "edit-plan-none-commercial-not-required",
        "Commercial: no plan of care -> 97140 x2, no plan finding (the commercial pack does not require one); "
        "Claim active.\nSource: issue 5 ('when the pack requires one'); commercial.yaml (no edits.plan_of_care)",
        lambda: _without_plan("commercial"),
    ),
]

# --- medical necessity (billing-rules.md F9.3) --------------------------------------------------------


def _diagnosed(*conditions: tuple[str, str]) -> Callable[[], Bundle]:
    """97124 30 min under Medicare with these ICD-10-CM diagnoses (dx-1, dx-2, ...) instead of M54.50."""

    def build() -> Bundle:
        refs = tuple(f"Condition/dx-{i}" for i in range(1, len(conditions) + 1))
        resources = [r for r in base_resources("medicare") if r["resourceType"] != "Condition"]
        resources += [condition(f"dx-{i}", code, display) for i, (code, display) in enumerate(conditions, 1)]
        return bundle(*resources, encounter(diagnoses=refs), procedure("97124", 30), plan_of_care())

    return build


STRESS = ("Z73.3", "Stress, not elsewhere classified")
LOW_BACK_PAIN = ("M54.50", "Low back pain, unspecified")
NECESSITY_SOURCE = (
    "billing-rules.md F9.3 (massage for relaxation or stress relief alone is not medically necessary); "
    "medicare.yaml edits.medical_necessity (a configurable list)"
)
CASES += [
    Case(
        "edit-necessity-z733-only-held",
        "Medicare: 97124 30 min whose only diagnosis is Z73.3 (stress) -> 97124 x2 GP, held (draft) with "
        f"not-medically-necessary (rule edits/medical-necessity).\nSource: {NECESSITY_SOURCE}",
        _diagnosed(STRESS),
    ),
    Case(
        "edit-necessity-m5450-billable",
        "Medicare: 97124 30 min for M54.50 (low back pain) -> 97124 x2 GP, no necessity finding; Claim active.\n"
        f"Source: {NECESSITY_SOURCE}",
        _diagnosed(LOW_BACK_PAIN),
    ),
    Case(
        "edit-necessity-z733-with-m5450-billable",
        "Medicare: 97124 30 min pointing to Z73.3 and M54.50 -> stress is not the only reason: no necessity "
        f"finding; diagnosis pointers 1, 2; Claim active.\nSource: {NECESSITY_SOURCE} ('alone')",
        _diagnosed(STRESS, LOW_BACK_PAIN),
    ),
    Case(
        "edit-necessity-no-diagnosis-held",
        "Medicare: the Encounter names no diagnosis -> 97124 x2 GP with no diagnosis pointer: held (draft) with "
        "no-diagnosis-pointer (rule edits/medical-necessity) and no-diagnosis (claim/diagnosis).\nSource: issue 5 "
        "('at least one diagnosis pointer per line'); billing-rules.md F8.4 (SV107 pointers)",
        lambda: bundle(
            *[r for r in base_resources("medicare") if r["resourceType"] != "Condition"],
            encounter(diagnoses=()),
            procedure("97124", 30),
            plan_of_care(),
        ),
    ),
]
