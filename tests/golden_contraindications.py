"""Golden cases of contraindication screening (issue 3): every class and rule, allowed and disallowed.

Every case is one Medicare visit on 2025-01-14 (tests/bundle_builder.visit: a qualified PT, a plan of
care and the principal diagnosis M54.50), so the only findings besides the KX note are the ones the
case is about.  The massage is 97124 for 30 min (2 units) unless a case says otherwise.

Policy (both packs use the defaults of adapter/rules/screening_data.TierActions): tier ``full`` ->
hold (Claim ``draft``, DetectedIssue severity ``high``), ``lesser`` -> warn (Claim ``active``,
``moderate``), ``minor`` -> warn (``low``), ``none`` -> nothing.  No pack blocks, so every case exits 0.
Sources: ../shared/docs/billing-rules.md §5 and "Test cases" T14-T27; the documented decisions are
the module docstrings of adapter/rules/contraindications.py and adapter/rules/sites.py.
"""

from __future__ import annotations

from typing import Any

from tests.bundle_builder import ICD10CM, SNOMED, condition, procedure, visit
from tests.golden_cases import Case

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
OVERRIDE_URL = "https://theraclaim.org/fhir/StructureDefinition/contraindication-override"
DOCUMENTED = "adapter/rules/contraindications.py docstring (documented decision)"
SITES_DOC = "adapter/rules/sites.py docstring (documented decision)"

# SNOMED CT body structures and laterality qualifiers (mappings/body-sites.yaml, body-sites.md §1)
Site = tuple[str, str]
RIGHT: Site = ("24028007", "Right")
LEFT: Site = ("7771000", "Left")
BILATERAL: Site = ("51440002", "Right and left")
HIP: Site = ("29836001", "Hip region structure")
THIGH: Site = ("68367000", "Thigh structure")
RIGHT_THIGH: Site = ("11207009", "Structure of right thigh")
LOWER_BACK: Site = ("37822005", "Lower back structure")
FOREARM: Site = ("14975008", "Forearm structure")
LOWER_LEG: Site = ("30021000", "Lower leg structure")

DVT = ("I82.401", "Acute embolism and thrombosis of unspecified deep veins of right lower extremity")
PLATELETS = ("777-3", "Platelets [#/volume] in Blood by Automated count")
DXA_SPINE = ("38267-8", "DXA Lumbar spine [T-score] Bone density")
WARFARIN = ("855332", "warfarin sodium 5 MG Oral Tablet")


# --- resource helpers (local: other helpers edit bundle_builder.py) ------------------------------


def massage(
    *sites: Site,
    code: str = "97124",
    minutes: int = 30,
    start: str = "2025-01-14T09:00:00-05:00",
    proc_id: str | None = None,
    override: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """A completed massage / manual therapy Procedure; each site is one bodySite CodeableConcept.

    A region and a laterality qualifier are two bodySite entries (the adapter reads the codings of
    all of them, body-sites.md §3 item 1); ``override`` is (class, reason) for the override extension.
    """
    resource = procedure(code, minutes, start=start, proc_id=proc_id)
    if sites:
        resource["bodySite"] = [{"coding": [{"system": SNOMED, "code": c, "display": d}]} for c, d in sites]
    if override:
        resource["extension"] = [
            {
                "url": OVERRIDE_URL,
                "extension": [
                    {"url": "class", "valueCode": override[0]},
                    {"url": "reason", "valueString": override[1]},
                ],
            }
        ]
    return resource


def problem(
    cond_id: str,
    coded: tuple[str, str],
    *,
    system: str = ICD10CM,
    clinical: str | None = "active",
    verification: str | None = None,
    category: str | None = None,
    onset: str | None = None,
    abatement: str | None = None,
    sites: tuple[Site, ...] = (),
) -> dict[str, Any]:
    """A Condition of pat-1; ``clinical=None`` leaves clinicalStatus out (con-3 allows it off the problem list)."""
    resource = condition(cond_id, coded[0], coded[1], clinical=clinical or "active")
    resource["code"]["coding"][0]["system"] = system
    if clinical is None:
        del resource["clinicalStatus"]
    if verification:
        resource["verificationStatus"] = {"coding": [{"system": VERIFICATION, "code": verification}]}
    if category:
        resource["category"] = [{"coding": [{"system": CATEGORY, "code": category}]}]
    if sites:
        resource["bodySite"] = [{"coding": [{"system": SNOMED, "code": c, "display": d}]} for c, d in sites]
    if onset:
        resource["onsetDateTime"] = onset
    if abatement:
        resource["abatementDateTime"] = abatement
    return resource


def _rxnorm(coded: tuple[str, str]) -> dict[str, Any]:
    return {"coding": [{"system": RXNORM, "code": coded[0], "display": coded[1]}]}


def statement(
    med_id: str, coded: tuple[str, str], *, status: str = "active", period: tuple[str, str] | None = None
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "id": med_id,
        "status": status,
        "medicationCodeableConcept": _rxnorm(coded),
        "subject": {"reference": "Patient/pat-1"},
    }
    if period:
        resource["effectivePeriod"] = {"start": period[0], "end": period[1]}
    return resource


def ordered_by_reference(med_id: str, coded: tuple[str, str], ingredient: tuple[str, str]) -> list[dict[str, Any]]:
    """A Medication (clinical drug code and ingredient) and an active MedicationRequest naming it."""
    return [
        {
            "resourceType": "Medication",
            "id": med_id,
            "code": _rxnorm(coded),
            "ingredient": [{"itemCodeableConcept": _rxnorm(ingredient), "isActive": True}],
        },
        {
            "resourceType": "MedicationRequest",
            "id": f"{med_id}-order",
            "status": "active",
            "intent": "order",
            "medicationReference": {"reference": f"Medication/{med_id}"},
            "subject": {"reference": "Patient/pat-1"},
            "authoredOn": "2024-11-02",
        },
    ]


def lab(
    obs_id: str, coded: tuple[str, str], value: float, unit: str, day: str, *, status: str = "final"
) -> dict[str, Any]:
    """An Observation of pat-1 with a UCUM valueQuantity, taken at 08:00 on ``day``."""
    return {
        "resourceType": "Observation",
        "id": obs_id,
        "status": status,
        "code": {"coding": [{"system": LOINC, "code": coded[0], "display": coded[1]}]},
        "subject": {"reference": "Patient/pat-1"},
        "effectiveDateTime": f"{day}T08:00:00-05:00",
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }


def _case(
    name: str, why: str, source: str, *resources: dict[str, Any], args: dict[str, Any] | None = None, **enc: Any
) -> Case:
    assert name.startswith("ci-"), name
    return Case(name, f"{why}\nSource: {source}", lambda: visit(*resources, **enc), args or {})


HOLD = "DetectedIssue high, Claim draft (hold), exit 0"
WARN = "DetectedIssue moderate, Claim active (warn), exit 0"
LOW = "DetectedIssue low, Claim active (warn), exit 0"
NOTHING = "no DetectedIssue, Claim active, exit 0"

# --- classes: one case where each fires and one where it does not ----------------------------------

CASES: list[Case] = [
    # dvt (systemic)
    _case(
        "ci-dvt-i82-401-acute-hold",
        f"Active confirmed I82.401 (acute DVT, right leg) and massage of the lower back: dvt is systemic, so the "
        f"site does not matter -> dvt COND, implicated Condition/dvt-1 + Procedure/proc-97124; {HOLD}.",
        "T14; billing-rules.md §5.1 (I82.4- acute DVT); issue 3 policy defaults (systemic acute -> hold)",
        massage(LOWER_BACK),
        problem("dvt-1", DVT, verification="confirmed"),
    ),
    _case(
        "ci-dvt-z86-718-history-nothing",
        f"Only Z86.718 (personal history of venous thrombosis) is on file: a history code is not a DVT (tier "
        f"none) -> {NOTHING}.",
        "T15; billing-rules.md §5.1 (Z86.718 is history, not active DVT)",
        massage(LOWER_BACK),
        problem("dvt-hx", ("Z86.718", "Personal history of other venous thrombosis and embolism")),
    ),
    _case(
        "ci-dvt-i82-501-chronic-warn",
        f"Active I82.501 (chronic DVT, right leg): dvt class at tier lesser ('review', not block) -> {WARN}.",
        "T16; billing-rules.md §5.1 (I82.5- chronic: review rather than block)",
        massage(LOWER_BACK),
        problem(
            "dvt-chronic",
            ("I82.501", "Chronic embolism and thrombosis of unspecified deep veins of right lower extremity"),
        ),
    ),
    _case(
        "ci-dvt-snomed-128053003-hold",
        f"A Condition coded only in SNOMED CT 128053003 (deep venous thrombosis), no ICD-10-CM: the SNOMED list "
        f"matches -> dvt COND; {HOLD}.",
        "billing-rules.md §5.2 (SNOMED 128053003); mappings/contraindications/massage.yaml dvt.snomed",
        massage(LOWER_BACK),
        problem("dvt-sct", ("128053003", "Deep venous thrombosis"), system=SNOMED),
    ),
    _case(
        "ci-dvt-i82401-without-dot-hold",
        f"The same acute DVT sent as 'I82401' (no dot): codes are compared without the dot -> dvt COND; {HOLD}.",
        "issue 3 ('Codes are matched without relying on the dot'); billing-rules.md §5.1 (normalise by removing "
        "the dot)",
        massage(LOWER_BACK),
        problem("dvt-nodot", ("I82401", DVT[1])),
    ),
    # bleeding-disorder (systemic)
    _case(
        "ci-bleeding-d66-haemophilia-a-hold",
        f"Active D66 (haemophilia A) -> bleeding-disorder COND; {HOLD}.",
        "T23; billing-rules.md §5.1 (D65-D68.4, D68.8, D68.9)",
        massage(LOWER_BACK),
        problem("bleed-1", ("D66", "Hereditary factor VIII deficiency")),
    ),
    _case(
        "ci-bleeding-d68-32-drug-induced-hold",
        f"Active D68.32 (haemorrhagic disorder due to extrinsic circulating anticoagulants) -> bleeding-disorder "
        f"COND; {HOLD}.",
        "T23; billing-rules.md §5.1 (D68.32 drug-induced haemorrhagic disorder)",
        massage(LOWER_BACK),
        problem("bleed-2", ("D68.32", "Hemorrhagic disorder due to extrinsic circulating anticoagulants")),
    ),
    _case(
        "ci-bleeding-d68-4-acquired-factor-deficiency-hold",
        f"Active D68.4 (acquired coagulation factor deficiency), the last bleeding code before the D68.5- "
        f"thrombophilias -> bleeding-disorder COND; {HOLD}.",
        "billing-rules.md §5.1 (D68.4 is a bleeding disorder; the D68.5 vs D68.4 boundary named in issue 3)",
        massage(LOWER_BACK),
        problem("bleed-3", ("D68.4", "Acquired coagulation factor deficiency")),
    ),
    _case(
        "ci-bleeding-d68-51-thrombophilia-nothing",
        f"Active D68.51 (activated protein C resistance) is a clotting tendency, not a bleeding disorder -> {NOTHING}.",
        "T22; billing-rules.md §5.1 trap (D68.5-/D68.6- are thrombophilia, excluded)",
        massage(LOWER_BACK),
        problem("thrombophilia", ("D68.51", "Activated protein C resistance")),
    ),
    # thrombocytopenia (systemic; severe only from a platelet count)
    _case(
        "ci-thrombocytopenia-d69-6-alone-warn",
        f"Active D69.6 (thrombocytopenia, unspecified) and no platelet count: severity cannot be coded, so tier "
        f"lesser -> thrombocytopenia COND; {WARN}.",
        "T21; billing-rules.md §5.1 ('severe' only from a platelet Observation)",
        massage(LOWER_BACK),
        problem("tcp-1", ("D69.6", "Thrombocytopenia, unspecified")),
    ),
    _case(
        "ci-thrombocytopenia-d69-6-low-platelets-hold",
        f"D69.6 and a final platelet count (LOINC 777-3) of 32 10*3/uL on 2025-01-10, below the threshold 50: "
        f"severe -> tier full; implicated Condition/tcp-1 + Observation/plt-low + Procedure/proc-97124; detail "
        f"names the count; {HOLD}.",
        "T21; massage.yaml thrombocytopenia.severe_observation (LOINC 777-3 and 50 x10^3/uL are UNCONFIRMED, "
        "billing-rules.md §10)",
        massage(LOWER_BACK),
        problem("tcp-1", ("D69.6", "Thrombocytopenia, unspecified")),
        lab("plt-low", PLATELETS, 32, "10*3/uL", "2025-01-10"),
    ),
    _case(
        "ci-thrombocytopenia-d69-6-normal-platelets-warn",
        f"D69.6 and a normal platelet count (180 10*3/uL, 2025-01-10): not severe, the code's tier lesser stays "
        f"-> thrombocytopenia COND; {WARN}.",
        "T21 ('severe' only below the threshold)",
        massage(LOWER_BACK),
        problem("tcp-1", ("D69.6", "Thrombocytopenia, unspecified")),
        lab("plt-ok", PLATELETS, 180, "10*3/uL", "2025-01-10"),
    ),
    _case(
        "ci-thrombocytopenia-low-platelets-without-code-hold",
        f"No thrombocytopenia code, but a final platelet count of 32 10*3/uL on 2025-01-10: the Observation is a "
        f"finding of its own -> thrombocytopenia COND with source Observation/plt-low; {HOLD}.",
        f"{DOCUMENTED}; _Screen.observations (a severe Observation when no code named its class)",
        massage(LOWER_BACK),
        lab("plt-low", PLATELETS, 32, "10*3/uL", "2025-01-10"),
    ),
    _case(
        "ci-thrombocytopenia-platelets-per-ul-converted-hold",
        f"D69.6 and a platelet count of 32000 /uL: converted with the unit factor (0.001) to 32 10*3/uL, below 50 "
        f"-> severe; {HOLD}.",
        "massage.yaml thrombocytopenia.severe_observation.unit_factors",
        massage(LOWER_BACK),
        problem("tcp-1", ("D69.6", "Thrombocytopenia, unspecified")),
        lab("plt-ul", PLATELETS, 32000, "/uL", "2025-01-10"),
    ),
    # anticoagulant (systemic; antiplatelets minor)
    _case(
        "ci-anticoagulant-z79-01-hold",
        f"Active Z79.01 (long-term use of anticoagulants) -> anticoagulant COND; {HOLD}.",
        "T19; billing-rules.md §5.1 (Z79.01)",
        massage(LOWER_BACK),
        problem("ac-1", ("Z79.01", "Long term (current) use of anticoagulants")),
    ),
    _case(
        "ci-anticoagulant-warfarin-statement-active-hold",
        f"Active MedicationStatement RxNorm 855332 (warfarin sodium 5 MG oral tablet) -> anticoagulant DRG, "
        f"implicated MedicationStatement/warfarin + Procedure/proc-97124; {HOLD}.",
        "T19; billing-rules.md §5.3 (VSAC warfarin value set, 855332)",
        massage(LOWER_BACK),
        statement("warfarin", WARFARIN),
    ),
    _case(
        "ci-anticoagulant-warfarin-statement-stopped-nothing",
        f"The same warfarin MedicationStatement with status stopped: not taken any more -> {NOTHING}.",
        f"issue 3 ('Medication: status active ...'); {DOCUMENTED}",
        massage(LOWER_BACK),
        statement("warfarin", WARFARIN, status="stopped", period=("2024-06-01", "2024-12-01")),
    ),
    _case(
        "ci-anticoagulant-warfarin-started-after-dos-nothing",
        f"An active warfarin MedicationStatement whose effective period starts 2025-02-01, after the 2025-01-14 date "
        f"of service: the patient was not taking it at the visit -> {NOTHING}.",
        f"issue 3 ('Medication: status active ...'); {DOCUMENTED} (started after the date of service)",
        massage(LOWER_BACK),
        statement("warfarin", WARFARIN, status="active", period=("2025-02-01", "2025-08-01")),
    ),
    _case(
        "ci-anticoagulant-apixaban-request-by-reference-hold",
        f"Active MedicationRequest whose medicationReference names Medication/apixaban (RxNorm 1364435 apixaban "
        f"2.5 MG oral tablet, ingredient 1364430): codes are read through the reference -> anticoagulant DRG, "
        f"source MedicationRequest/apixaban-order; {HOLD}.",
        "T20; billing-rules.md §5.3 (apixaban IN 1364430, SCD 1364435); issue 3 ('also through "
        "medicationReference to a Medication')",
        massage(LOWER_BACK),
        *ordered_by_reference("apixaban", ("1364435", "apixaban 2.5 MG Oral Tablet"), ("1364430", "apixaban")),
    ),
    _case(
        "ci-anticoagulant-aspirin-minor-warn",
        f"Active MedicationStatement RxNorm 1191 (aspirin, an antiplatelet): tier minor -> anticoagulant DRG; {LOW}.",
        "T20; billing-rules.md §5.3 (antiplatelets, ATC B01AC: warn at most)",
        massage(LOWER_BACK),
        statement("aspirin", ("1191", "aspirin")),
    ),
    _case(
        "ci-anticoagulant-z79-02-antiplatelet-minor-warn",
        f"Active Z79.02 (long-term use of antithrombotics/antiplatelets): tier minor -> anticoagulant COND; {LOW}.",
        "T20; billing-rules.md §5.1 (Z79.02: configurable warning)",
        massage(LOWER_BACK),
        problem("ap-1", ("Z79.02", "Long term (current) use of antithrombotics/antiplatelets")),
    ),
    # fracture (regional)
    _case(
        "ci-fracture-s72-001a-right-hip-same-site-hold",
        f"S72.001A (femoral neck fracture, right, initial) implies right hip (S72.0 -> hip, 6th character 1 -> "
        f"right); massage of the right hip is the same site -> fracture COND tier full; {HOLD}.",
        "T17; billing-rules.md §5.1 (7th character A: active); body-sites.md §5.2 (S72.0 head and neck of femur "
        "-> hip)",
        massage(HIP, RIGHT),
        problem("fx-1", ("S72.001A", "Fracture of unspecified part of neck of right femur, initial encounter")),
    ),
    _case(
        "ci-fracture-s72-001a-lower-back-other-site-warn",
        f"The same right femoral neck fracture; massage of the lower back is a clearly different region -> "
        f"fracture COND one tier lower (lesser); detail says where; {WARN}.",
        "issue 3 ('a clearly different region -> a lesser finding'); T25 by analogy; " + SITES_DOC,
        massage(LOWER_BACK),
        problem("fx-1", ("S72.001A", "Fracture of unspecified part of neck of right femur, initial encounter")),
    ),
    _case(
        "ci-fracture-s72-001a-no-body-site-hold",
        f"The same fracture and a Procedure without bodySite: the treated site is unknown, so the full finding "
        f"stays (conservative); {HOLD}.",
        "issue 3 ('Same region (or either side unknown) -> the full finding'); " + SITES_DOC,
        massage(),
        problem("fx-1", ("S72.001A", "Fracture of unspecified part of neck of right femur, initial encounter")),
    ),
    _case(
        "ci-fracture-s72-001d-healing-hold",
        f"S72.001D (routine healing, subsequent encounter) on the treated right hip: a healing fracture is still a "
        f"fracture (D-R: tier full in massage.yaml) -> fracture COND; {HOLD}.",
        "T18 (D -> fracture hit, warn/block configurable); billing-rules.md §5.1 7th characters",
        massage(HIP, RIGHT),
        problem("fx-2", ("S72.001D", "Fracture of unsp part of neck of right femur, subs for clos fx w routn heal")),
    ),
    _case(
        "ci-fracture-s72-001s-sequela-nothing",
        f"S72.001S (sequela) on the treated right hip: a late effect, not an active fracture (tier none) -> {NOTHING}.",
        "T18 (S -> no hit); billing-rules.md §5.1 (S = sequela)",
        massage(HIP, RIGHT),
        problem("fx-3", ("S72.001S", "Fracture of unspecified part of neck of right femur, sequela")),
    ),
    # burn (regional)
    _case(
        "ci-burn-t22-211a-right-forearm-hold",
        f"T22.211A (second-degree burn, right forearm, initial) and massage of the right forearm: same region and "
        f"side -> burn COND tier full; {HOLD}.",
        "T25 (same region -> block/hold); billing-rules.md §5.1 (T20-T25); body-sites.md §5.4 (T22 5th character "
        "1 forearm)",
        massage(FOREARM, RIGHT),
        problem("burn-1", ("T22.211A", "Burn of second degree of right forearm, initial encounter")),
    ),
    _case(
        "ci-burn-t22-211a-lower-back-warn",
        f"The same burn; the massage is on the lower back -> burn COND tier lesser; {WARN}.",
        "T25 (different region -> warn only)",
        massage(LOWER_BACK),
        problem("burn-1", ("T22.211A", "Burn of second degree of right forearm, initial encounter")),
    ),
    _case(
        "ci-burn-t22-211s-sequela-nothing",
        f"T22.211S (burn sequela: scar, contracture) with massage of the right forearm: no hit -> {NOTHING}.",
        "billing-rules.md §5.1 (burns: 7th character S = sequela -> no hit)",
        massage(FOREARM, RIGHT),
        problem("burn-2", ("T22.211S", "Burn of second degree of right forearm, sequela")),
    ),
    # open-wound (regional)
    _case(
        "ci-open-wound-s81-811a-right-lower-leg-hold",
        f"S81.811A (laceration, right lower leg, initial) and massage of the right lower leg -> open-wound COND "
        f"tier full; {HOLD}.",
        "T26; billing-rules.md §5.1 (S81 open wound); body-sites.md §5.3",
        massage(LOWER_LEG, RIGHT),
        problem("wound-1", ("S81.811A", "Laceration without foreign body, right lower leg, initial encounter")),
    ),
    _case(
        "ci-open-wound-s81-811s-sequela-nothing",
        f"S81.811S (sequela: a scar) with massage of the right lower leg: no hit -> {NOTHING}.",
        "billing-rules.md §5.1 (open wounds: 7th character S -> no hit)",
        massage(LOWER_LEG, RIGHT),
        problem("wound-2", ("S81.811S", "Laceration without foreign body, right lower leg, sequela")),
    ),
    # osteoporosis (M81 systemic warn; M80 is a fracture; severe from a DXA T-score)
    _case(
        "ci-osteoporosis-m81-0-warn",
        f"Active M81.0 (age-related osteoporosis without current pathological fracture): severity unknown, tier "
        f"lesser -> osteoporosis COND; {WARN}.",
        "T24 (M81.0 -> warn); billing-rules.md §5.1",
        massage(LOWER_BACK),
        problem("op-1", ("M81.0", "Age-related osteoporosis without current pathological fracture")),
    ),
    _case(
        "ci-osteoporosis-m80-08xa-vertebra-fracture-hold",
        f"Active M80.08XA (osteoporosis with current pathological fracture of a vertebra): screened as a fracture "
        f"at the spine; the lower back lies in the spine -> fracture COND tier full; {HOLD}.",
        "T24 (M80.08XA -> block: fracture + osteoporosis); billing-rules.md §5.1; body-sites.yaml M8008 -> spine",
        massage(LOWER_BACK),
        problem("op-2", ("M80.08XA", "Age-related osteoporosis w current pathological fracture, vertebra(e), init")),
    ),
    _case(
        "ci-osteoporosis-m81-0-dxa-severe-hold",
        f"M81.0 and a final DXA lumbar-spine T-score (LOINC 38267-8) of -3.1 on 2024-12-02, at or below -2.5: "
        f"severe -> osteoporosis COND tier full, implicated Condition/op-1 + Observation/dxa + Procedure; {HOLD}.",
        "billing-rules.md §5.1 (severe from a DXA T-score, WHO -2.5: UNCONFIRMED); massage.yaml "
        "osteoporosis.severe_observation",
        massage(LOWER_BACK),
        problem("op-1", ("M81.0", "Age-related osteoporosis without current pathological fracture")),
        lab("dxa", DXA_SPINE, -3.1, "{T-score}", "2024-12-02"),
    ),
    _case(
        "ci-osteoporosis-m81-0-dxa-not-severe-warn",
        f"M81.0 and a DXA T-score of -1.9 (above -2.5): not severe, tier lesser stays -> osteoporosis COND; {WARN}.",
        "billing-rules.md §5.1; massage.yaml osteoporosis.severe_observation (threshold -2.5, comparator <=)",
        massage(LOWER_BACK),
        problem("op-1", ("M81.0", "Age-related osteoporosis without current pathological fracture")),
        lab("dxa", DXA_SPINE, -1.9, "{T-score}", "2024-12-02"),
    ),
]

# --- rules: what counts as present ---------------------------------------------------------------

CASES += [
    # clinicalStatus
    _case(
        "ci-status-resolved-nothing",
        f"I82.401 with clinicalStatus resolved (abated 2024-11-30): not present -> {NOTHING}.",
        "T27; issue 3 ('clinicalStatus active, recurrence or relapse'); " + DOCUMENTED,
        massage(LOWER_BACK),
        problem("dvt-1", DVT, clinical="resolved", abatement="2024-11-30"),
    ),
    _case(
        "ci-status-inactive-nothing",
        f"I82.401 with clinicalStatus inactive: not present -> {NOTHING}.",
        "issue 3; " + DOCUMENTED,
        massage(LOWER_BACK),
        problem("dvt-1", DVT, clinical="inactive", abatement="2024-11-30"),
    ),
    _case(
        "ci-status-recurrence-hold",
        f"I82.401 with clinicalStatus recurrence counts like active -> dvt COND; {HOLD}.",
        "issue 3 ('active, recurrence or relapse'); " + DOCUMENTED,
        massage(LOWER_BACK),
        problem("dvt-1", DVT, clinical="recurrence"),
    ),
    # verificationStatus
    _case(
        "ci-verification-refuted-nothing",
        f"I82.401 active but verificationStatus refuted: never counts -> {NOTHING}.",
        "T27; issue 3 ('refuted or entered-in-error never counts')",
        massage(LOWER_BACK),
        problem("dvt-1", DVT, verification="refuted"),
    ),
    _case(
        "ci-verification-entered-in-error-nothing",
        f"I82.401 with verificationStatus entered-in-error (so no clinicalStatus, con-5) and category "
        f"encounter-diagnosis, which would otherwise count fully: never counts -> {NOTHING}.",
        "issue 3 ('refuted or entered-in-error never counts'); FHIR R4 Condition con-5",
        massage(LOWER_BACK),
        problem("dvt-1", DVT, clinical=None, verification="entered-in-error", category="encounter-diagnosis"),
    ),
    _case(
        "ci-verification-unconfirmed-warn",
        f"I82.401 active, verificationStatus unconfirmed: one tier lower (full -> lesser) -> dvt COND; {WARN}.",
        "issue 3 ('unconfirmed / provisional / differential give a lesser finding'; default: unconfirmed "
        "conditions warn)",
        massage(LOWER_BACK),
        problem("dvt-1", DVT, verification="unconfirmed"),
    ),
    _case(
        "ci-verification-provisional-warn",
        f"I82.401 active, verificationStatus provisional: one tier lower -> dvt COND; {WARN}.",
        "issue 3 ('unconfirmed / provisional / differential give a lesser finding')",
        massage(LOWER_BACK),
        problem("dvt-1", DVT, verification="provisional"),
    ),
    # onset and abatement against the date of service (2025-01-14)
    _case(
        "ci-dates-onset-after-dos-nothing",
        f"I82.401 active with onset 2025-01-20, after the date of service: not present then -> {NOTHING}.",
        "issue 3 ('onset after the date of service ... no hit')",
        massage(LOWER_BACK),
        problem("dvt-1", DVT, onset="2025-01-20"),
    ),
    _case(
        "ci-dates-onset-on-dos-hold",
        f"I82.401 active with onset 2025-01-14, the date of service itself: present -> dvt COND; {HOLD}.",
        "issue 3 (only an onset *after* the date of service is no hit)",
        massage(LOWER_BACK),
        problem("dvt-1", DVT, onset="2025-01-14"),
    ),
    _case(
        "ci-dates-abatement-before-dos-nothing",
        f"I82.401 still marked active but with abatementDateTime 2024-12-31, before the date of service (an EHR "
        f"breaking con-4 on purpose: the dates alone must stop it) -> {NOTHING}.",
        "issue 3 ('abatement before it: no hit')",
        massage(LOWER_BACK),
        problem("dvt-1", DVT, abatement="2024-12-31"),
    ),
    # no clinicalStatus: encounter diagnosis vs an unmaintained entry
    _case(
        "ci-no-status-encounter-diagnosis-category-hold",
        f"I82.401 with no clinicalStatus and category encounter-diagnosis (allowed by con-3): counts fully -> dvt "
        f"COND; {HOLD}.",
        DOCUMENTED + " (no clinicalStatus: encounter-diagnosis counts fully); FHIR R4 Condition con-3",
        massage(LOWER_BACK),
        problem("dvt-1", DVT, clinical=None, category="encounter-diagnosis"),
    ),
    _case(
        "ci-no-status-named-by-encounter-hold",
        f"I82.401 with no clinicalStatus and no category, named in Encounter.diagnosis (rank 2): this Encounter "
        f"diagnosed it, so it counts fully -> dvt COND; I82.401 is also Claim diagnosis 2; {HOLD}.",
        DOCUMENTED + " (counts fully when this Encounter names it as a diagnosis)",
        massage(LOWER_BACK),
        problem("dvt-1", DVT, clinical=None),
        diagnoses=("Condition/dx-1", "Condition/dvt-1"),
    ),
    _case(
        "ci-no-status-not-an-encounter-diagnosis-warn",
        f"I82.401 with no clinicalStatus, no category and not named by the Encounter (an unmaintained list entry; "
        f"a problem-list-item would need a clinicalStatus, con-3): one tier lower -> dvt COND; {WARN}.",
        DOCUMENTED + " (one tier lower otherwise)",
        massage(LOWER_BACK),
        problem("dvt-1", DVT, clinical=None),
    ),
    # laterality (S72.301A: shaft of the right femur -> right thigh)
    _case(
        "ci-laterality-right-thigh-same-side-hold",
        f"S72.301A (fracture of the shaft of the right femur -> right thigh) and massage of the right thigh "
        f"(pre-coordinated SNOMED 11207009) -> fracture COND tier full; {HOLD}.",
        "issue 3 (laterality from the code); body-sites.md §1d, §5.2; " + SITES_DOC,
        massage(RIGHT_THIGH),
        problem("fx-4", ("S72.301A", "Unspecified fracture of shaft of right femur, initial encounter")),
    ),
    _case(
        "ci-laterality-left-thigh-other-side-warn",
        f"The same right femoral shaft fracture; massage of the left thigh (68367000 + qualifier 7771000 left): "
        f"left never meets right -> fracture COND tier lesser; {WARN}.",
        SITES_DOC + " (left never meets right); issue 3 (different site -> lesser)",
        massage(THIGH, LEFT),
        problem("fx-4", ("S72.301A", "Unspecified fracture of shaft of right femur, initial encounter")),
    ),
    _case(
        "ci-laterality-bilateral-thighs-hold",
        f"The same fracture; massage of both thighs (qualifier 51440002 right and left): bilateral meets right -> "
        f"fracture COND tier full; {HOLD}.",
        SITES_DOC + " (an unspecified or bilateral side meets anything)",
        massage(THIGH, BILATERAL),
        problem("fx-4", ("S72.301A", "Unspecified fracture of shaft of right femur, initial encounter")),
    ),
    _case(
        "ci-laterality-thigh-side-unspecified-hold",
        f"The same fracture; massage of 'the thigh' with no side: unspecified meets right -> fracture COND tier "
        f"full; {HOLD}.",
        SITES_DOC + " (an unspecified side meets anything)",
        massage(THIGH),
        problem("fx-4", ("S72.301A", "Unspecified fracture of shaft of right femur, initial encounter")),
    ),
    _case(
        "ci-site-condition-bodysite-two-procedures",
        "A fracture coded only SNOMED 125605004 (no ICD region) with Condition.bodySite forearm + right; 97140 "
        "(25 min) on the right forearm and 97124 (23 min) on the lower back: the site comes from Condition.bodySite "
        "-> two fracture DetectedIssues from one Condition: tier full (high) implicating Procedure/proc-97140 and "
        "tier lesser (moderate) implicating Procedure/proc-97124; Claim draft (the full one holds), exit 0.",
        "issue 3 ('Derive the body region ... from Condition.bodySite or, when absent, from the ICD-10-CM code'); "
        "billing-rules.md §5.2 (125605004)",
        massage(FOREARM, RIGHT, code="97140", minutes=25, proc_id="proc-97140"),
        massage(LOWER_BACK, minutes=23, start="2025-01-14T09:25:00-05:00"),
        problem("fx-5", ("125605004", "Fracture of bone"), system=SNOMED, sites=(FOREARM, RIGHT)),
    ),
    # medications: completed with an effective period
    _case(
        "ci-medication-completed-period-covers-dos-hold",
        f"Warfarin MedicationStatement completed, effectivePeriod 2024-12-01..2025-01-31 covering the date of "
        f"service -> anticoagulant DRG; {HOLD}.",
        "issue 3 ('completed with an effective period covering the date of service'); " + DOCUMENTED,
        massage(LOWER_BACK),
        statement("warfarin", WARFARIN, status="completed", period=("2024-12-01", "2025-01-31")),
    ),
    _case(
        "ci-medication-completed-period-before-dos-nothing",
        f"Warfarin MedicationStatement completed, effectivePeriod 2024-10-01..2024-12-31, ended before the date "
        f"of service -> {NOTHING}.",
        "issue 3 (completed counts only with a period covering the date of service)",
        massage(LOWER_BACK),
        statement("warfarin", WARFARIN, status="completed", period=("2024-10-01", "2024-12-31")),
    ),
    # observations: the latest final value on or before the date of service
    _case(
        "ci-obs-later-than-dos-ignored-warn",
        f"D69.6; platelets 180 (final, 2025-01-10) and 32 (final, 2025-01-16, after the date of service): the "
        f"later count is ignored, 180 is not severe -> thrombocytopenia COND tier lesser; {WARN}.",
        "issue 3 ('Observation: the latest final value on or before the date of service')",
        massage(LOWER_BACK),
        problem("tcp-1", ("D69.6", "Thrombocytopenia, unspecified")),
        lab("plt-ok", PLATELETS, 180, "10*3/uL", "2025-01-10"),
        lab("plt-after", PLATELETS, 32, "10*3/uL", "2025-01-16"),
    ),
    _case(
        "ci-obs-preliminary-ignored-warn",
        f"D69.6; platelets 180 (final, 2025-01-10) and 32 (preliminary, 2025-01-13): only final / amended / "
        f"corrected results count -> 180 -> tier lesser; {WARN}.",
        "issue 3 ('the latest final value'); " + DOCUMENTED,
        massage(LOWER_BACK),
        problem("tcp-1", ("D69.6", "Thrombocytopenia, unspecified")),
        lab("plt-ok", PLATELETS, 180, "10*3/uL", "2025-01-10"),
        lab("plt-prelim", PLATELETS, 32, "10*3/uL", "2025-01-13", status="preliminary"),
    ),
    _case(
        "ci-obs-latest-final-wins-warn",
        f"D69.6; platelets 32 (final, 2025-01-03) then 180 (final, 2025-01-10): the latest one decides, the count "
        f"has recovered -> tier lesser; {WARN}.",
        "issue 3 ('the latest final value on or before the date of service')",
        massage(LOWER_BACK),
        problem("tcp-1", ("D69.6", "Thrombocytopenia, unspecified")),
        lab("plt-low", PLATELETS, 32, "10*3/uL", "2025-01-03"),
        lab("plt-ok", PLATELETS, 180, "10*3/uL", "2025-01-10"),
    ),
    # clinician override
    _case(
        "ci-override-dvt-warn-mitigation",
        "I82.401 active and the Procedure carries the contraindication-override extension (class dvt, reason): "
        "the finding becomes a warning -> dvt COND, still tier full (severity high) but Claim active; the "
        "DetectedIssue has a mitigation (clinician-override, the reason) and the detail quotes it; exit 0.",
        "issue 3 ('A clinician override ... the finding becomes a warning and the DetectedIssue gets a "
        "mitigation entry')",
        massage(
            LOWER_BACK,
            override=("dvt", "Vascular surgery cleared light effleurage of the lower back on 2025-01-10"),
        ),
        problem("dvt-1", DVT),
    ),
    _case(
        "ci-override-other-class-still-hold",
        f"I82.401 active but the override names class fracture, not dvt: an override covers only its own class "
        f"-> dvt COND, no mitigation; {HOLD}.",
        "issue 3 (the extension names the class it overrides)",
        massage(LOWER_BACK, override=("fracture", "Old fracture reviewed")),
        problem("dvt-1", DVT),
    ),
    _case(
        "ci-override-on-one-of-two-procedures-still-hold",
        "I82.401 active; 97140 (25 min, right forearm) documents a dvt override, 97124 (23 min, lower back) does "
        "not. The systemic dvt finding concerns both Procedures, and an override is per Procedure, so it is not "
        "covered -> dvt COND, implicated Condition/dvt-1 + Procedure/proc-97140 + Procedure/proc-97124, no "
        "mitigation; DetectedIssue high, Claim draft (hold), exit 0.",
        "issue 3 ('when the Procedure documents that the therapist knew and proceeded'); " + DOCUMENTED,
        massage(
            FOREARM, RIGHT, code="97140", minutes=25, proc_id="proc-97140", override=("dvt", "Cleared for the forearm")
        ),
        massage(LOWER_BACK, minutes=23, start="2025-01-14T09:25:00-05:00"),
        problem("dvt-1", DVT),
    ),
]
