"""Screening data: every contraindication and body-site rule fires on a real code and stays quiet on a near miss.

The codes below are real: ICD-10-CM codes were checked against the CDC FY2026 tabular (PyPI
``simple-icd-10-cm`` 1.5.0, in a scratch environment, not a project dependency).  Each table has to
name every entry of the rule data: adding a prefix, a SNOMED CT or RxNorm code, a body-site code or
an ICD-10-CM region rule without a test row fails ``test_*_table_covers_the_data``.
"""

from __future__ import annotations

import pytest

from adapter.model import Coding
from adapter.rules.catalog import Rules, load_rules
from adapter.rules.contraindications import RXNORM_SYSTEM, SNOMED_SYSTEM, Match, match_codes, match_icd
from adapter.rules.screening_data import ContraindicationClass, Side, Tier
from adapter.rules.sites import UNKNOWN_SITE, Site, SiteResolver

RULES: Rules = load_rules()
CLASSES = RULES.contraindications.classes
RESOLVER = SiteResolver(RULES.body_sites)
LOINC = "http://loinc.org"


def classes_of(matches: list[Match]) -> dict[str, Tier]:
    return {m.klass.id: m.tier for m in matches}


def snomed(*codes: str) -> list[Coding]:
    return [Coding(SNOMED_SYSTEM, code) for code in codes]


ICD_CASES: dict[str, tuple[str, str, Tier, str]] = {
    # prefix: (class, a real code under it, the tier it gets, a real near-miss code that must not give the class)
    # dvt
    "I801": ("dvt", "I80.10", "full", "I80.01"),
    "I802": ("dvt", "I80.201", "full", "I80.8"),
    "I803": ("dvt", "I80.3", "full", "I80.9"),
    "I824": ("dvt", "I82.401", "full", "I82.811"),
    "I825": ("dvt", "I82.501", "lesser", "I82.91"),
    "I8262": ("dvt", "I82.621", "full", "I82.611"),
    "I8272": ("dvt", "I82.721", "lesser", "I82.711"),
    "I82A1": ("dvt", "I82.A11", "full", "I82.611"),
    "I82B1": ("dvt", "I82.B11", "full", "I82.611"),
    "I82C1": ("dvt", "I82.C11", "full", "I87.1"),
    "I82A2": ("dvt", "I82.A21", "lesser", "I82.711"),
    "I82B2": ("dvt", "I82.B21", "lesser", "I82.711"),
    "I82C2": ("dvt", "I82.C21", "lesser", "I87.1"),
    "I822": ("dvt", "I82.210", "full", "I82.3"),
    "I82211": ("dvt", "I82.211", "lesser", "I82.3"),
    "I82221": ("dvt", "I82.221", "lesser", "I82.3"),
    "I82291": ("dvt", "I82.291", "lesser", "I82.3"),
    "I26": ("dvt", "I26.01", "full", "I27.0"),
    "O223": ("dvt", "O22.30", "full", "O22.00"),
    "O871": ("dvt", "O87.1", "full", "O87.0"),
    "Z86718": ("dvt", "Z86.718", "none", "Z86.711"),
    # bleeding-disorder
    "D65": ("bleeding-disorder", "D65", "full", "D64.9"),
    "D66": ("bleeding-disorder", "D66", "full", "D68.51"),
    "D67": ("bleeding-disorder", "D67", "full", "D68.52"),
    "D680": ("bleeding-disorder", "D68.00", "full", "D68.51"),
    "D681": ("bleeding-disorder", "D68.1", "full", "D68.59"),
    "D682": ("bleeding-disorder", "D68.2", "full", "D68.61"),
    "D683": ("bleeding-disorder", "D68.311", "full", "D68.62"),
    "D684": ("bleeding-disorder", "D68.4", "full", "D68.69"),
    "D688": ("bleeding-disorder", "D68.8", "full", "D68.51"),
    "D689": ("bleeding-disorder", "D68.9", "full", "D68.52"),
    # thrombocytopenia
    "D693": ("thrombocytopenia", "D69.3", "lesser", "D69.0"),
    "D694": ("thrombocytopenia", "D69.41", "lesser", "D69.1"),
    "D695": ("thrombocytopenia", "D69.51", "lesser", "D69.2"),
    "D696": ("thrombocytopenia", "D69.6", "lesser", "D69.8"),
    "D7582": ("thrombocytopenia", "D75.821", "lesser", "D75.81"),
    # anticoagulant
    "Z7901": ("anticoagulant", "Z79.01", "full", "Z79.1"),
    "Z7902": ("anticoagulant", "Z79.02", "minor", "Z79.1"),
    "Z7982": ("anticoagulant", "Z79.82", "minor", "Z79.3"),
    # fracture
    "S02": ("fracture", "S02.0XXA", "full", "S03.00XA"),
    "S12": ("fracture", "S12.000A", "full", "S13.4XXA"),
    "S22": ("fracture", "S22.000A", "full", "S23.3XXA"),
    "S32": ("fracture", "S32.000A", "full", "S33.5XXA"),
    "S42": ("fracture", "S42.001A", "full", "S43.001A"),
    "S62": ("fracture", "S62.001A", "full", "S63.001A"),
    "S92": ("fracture", "S92.001A", "full", "S93.01XA"),
    "S52": ("fracture", "S52.001A", "full", "S53.001A"),
    "S72": ("fracture", "S72.001A", "full", "S73.001A"),
    "S82": ("fracture", "S82.001A", "full", "S83.001A"),
    "M843": ("fracture", "M84.30XA", "full", "M85.80"),
    "M844": ("fracture", "M84.40XA", "full", "M85.9"),
    "M845": ("fracture", "M84.50XA", "full", "M89.9"),
    "M846": ("fracture", "M84.60XA", "full", "M94.9"),
    "M847": ("fracture", "M84.750A", "full", "M85.80"),
    "M80": ("fracture", "M80.00XA", "full", "M81.0"),
    "M485": ("fracture", "M48.50XA", "full", "M48.061"),
    "M97": ("fracture", "M97.01XA", "full", "M96.1"),
    # burn
    "T20": ("burn", "T20.00XA", "full", "T33.011A"),
    "T21": ("burn", "T21.00XA", "full", "T33.2XXA"),
    "T22": ("burn", "T22.00XA", "full", "T33.41XA"),
    "T23": ("burn", "T23.001A", "full", "T33.511A"),
    "T24": ("burn", "T24.001A", "full", "T33.811A"),
    "T25": ("burn", "T25.011A", "full", "T33.821A"),
    "T26": ("burn", "T26.00XA", "full", "T15.10XA"),
    "T30": ("burn", "T30.0", "full", "T33.90XA"),
    "T31": ("burn", "T31.0", "full", "T33.99XA"),
    "T32": ("burn", "T32.0", "full", "T34.99XA"),
    # open-wound
    "S01": ("open-wound", "S01.00XA", "full", "S00.01XA"),
    "S11": ("open-wound", "S11.011A", "full", "S10.80XA"),
    "S21": ("open-wound", "S21.001A", "full", "S20.211A"),
    "S31": ("open-wound", "S31.000A", "full", "S30.0XXA"),
    "S41": ("open-wound", "S41.001A", "full", "S40.011A"),
    "S51": ("open-wound", "S51.001A", "full", "S50.01XA"),
    "S61": ("open-wound", "S61.001A", "full", "S60.011A"),
    "S71": ("open-wound", "S71.001A", "full", "S70.01XA"),
    "S81": ("open-wound", "S81.001A", "full", "S80.01XA"),
    "S91": ("open-wound", "S91.001A", "full", "S90.01XA"),
    "L89": ("open-wound", "L89.000", "full", "L88"),
    "L97": ("open-wound", "L97.101", "full", "L98.0"),
    "L984": ("open-wound", "L98.411", "full", "L98.3"),
    "T813": ("open-wound", "T81.30XA", "full", "T81.40XA"),
    # osteoporosis
    "M81": ("osteoporosis", "M81.0", "lesser", "M85.80"),
}

SEVENTH_CASES: dict[str, tuple[str, str]] = {
    # prefix: (a real 6-character code, every 7th character the tabular allows on it)
    "S02": ("S02.0XX", "ABDGKS"),
    "S12": ("S12.000", "ABDGKS"),
    "S22": ("S22.000", "ABDGKS"),
    "S32": ("S32.000", "ABDGKS"),
    "S42": ("S42.001", "ABDGKPS"),
    "S62": ("S62.001", "ABDGKPS"),
    "S92": ("S92.001", "ABDGKPS"),
    "S52": ("S52.001", "ABCDEFGHJKMNPQRS"),
    "S72": ("S72.001", "ABCDEFGHJKMNPQRS"),
    "S82": ("S82.001", "ABCDEFGHJKMNPQRS"),
    "M843": ("M84.30X", "ADGKPS"),
    "M844": ("M84.40X", "ADGKPS"),
    "M845": ("M84.50X", "ADGKPS"),
    "M846": ("M84.60X", "ADGKPS"),
    "M847": ("M84.750", "ADGKPS"),
    "M80": ("M80.00X", "ADGKPS"),
    "M485": ("M48.50X", "ADGS"),
    "M97": ("M97.01X", "ADS"),
    "T20": ("T20.00X", "ADS"),
    "T21": ("T21.00X", "ADS"),
    "T22": ("T22.00X", "ADS"),
    "T23": ("T23.001", "ADS"),
    "T24": ("T24.001", "ADS"),
    "T25": ("T25.011", "ADS"),
    "T26": ("T26.00X", "ADS"),
    "S01": ("S01.00X", "ADS"),
    "S11": ("S11.011", "ADS"),
    "S21": ("S21.001", "ADS"),
    "S31": ("S31.000", "ADS"),
    "S41": ("S41.001", "ADS"),
    "S51": ("S51.001", "ADS"),
    "S61": ("S61.001", "ADS"),
    "S71": ("S71.001", "ADS"),
    "S81": ("S81.001", "ADS"),
    "S91": ("S91.001", "ADS"),
    "T813": ("T81.30X", "ADS"),
}

REGION_CASES: dict[str, tuple[str, str, Side, str]] = {
    # prefix: (a real code it decides, region, side, a real code outside the prefix that resolves elsewhere)
    "S02": ("S02.0XXA", "head", "unspecified", "S01.101A"),
    "S0210": ("S02.101A", "head", "right", "S02.110A"),
    "S0211": ("S02.11AA", "head", "right", "S02.102A"),
    "S0212": ("S02.121A", "head", "right", "S02.102A"),
    "S023": ("S02.31XA", "head", "right", "S02.0XXA"),
    "S0240": ("S02.40AA", "head", "right", "S02.411A"),
    "S026": ("S02.601A", "head", "right", "S02.0XXA"),
    "S028": ("S02.81XA", "head", "right", "S02.0XXA"),
    "S0283": ("S02.831A", "head", "right", "S02.80XA"),
    "S0284": ("S02.841A", "head", "right", "S02.80XA"),
    "S12": ("S12.000A", "cervical-spine", "unspecified", "S11.011A"),
    "S128": ("S12.8XXA", "neck", "unspecified", "S12.000A"),
    "S129": ("S12.9XXA", "neck", "unspecified", "S12.000A"),
    "S22": ("S22.20XA", "thorax", "unspecified", "S21.001A"),
    "S220": ("S22.000A", "thoracic-spine", "unspecified", "S22.20XA"),
    "S223": ("S22.31XA", "thorax", "right", "S22.000A"),
    "S224": ("S22.41XA", "thorax", "right", "S22.000A"),
    "S32": ("S32.000A", "lumbar-spine", "unspecified", "S31.000A"),
    "S321": ("S32.10XA", "pelvis", "unspecified", "S32.000A"),
    "S322": ("S32.2XXA", "pelvis", "unspecified", "S32.000A"),
    "S323": ("S32.301A", "pelvis", "right", "S32.000A"),
    "S324": ("S32.401A", "hip", "right", "S32.000A"),
    "S325": ("S32.501A", "pelvis", "right", "S32.000A"),
    "S326": ("S32.601A", "pelvis", "right", "S32.000A"),
    "S328": ("S32.810A", "pelvis", "unspecified", "S32.000A"),
    "S329": ("S32.9XXA", "trunk", "unspecified", "S32.000A"),
    "S42": ("S42.001A", "shoulder", "right", "S41.002A"),
    "S4201": ("S42.011A", "shoulder", "right", "S42.002A"),
    "S423": ("S42.301A", "upper-arm", "right", "S42.001A"),
    "S424": ("S42.401A", "elbow", "right", "S42.001A"),
    "S4244": ("S42.441A", "elbow", "right", "S42.402A"),
    "S429": ("S42.91XA", "shoulder", "right", "S42.002A"),
    "S52": ("S52.201A", "forearm", "right", "S51.001A"),
    "S520": ("S52.001A", "elbow", "right", "S52.102A"),
    "S521": ("S52.101A", "elbow", "right", "S52.002A"),
    "S525": ("S52.501A", "wrist", "right", "S52.001A"),
    "S526": ("S52.601A", "wrist", "right", "S52.001A"),
    "S529": ("S52.91XA", "forearm", "right", "S52.001A"),
    "S62": ("S62.201A", "hand", "right", "S61.002A"),
    "S620": ("S62.001A", "wrist", "right", "S62.102A"),
    "S621": ("S62.101A", "wrist", "right", "S62.002A"),
    "S623": ("S62.300A", "hand", "right", "S62.001A"),
    "S626": ("S62.600A", "hand", "right", "S62.001A"),
    "S629": ("S62.91XA", "hand", "right", "S62.001A"),
    "S72": ("S72.301A", "thigh", "right", "S71.001A"),
    "S720": ("S72.001A", "hip", "right", "S72.102A"),
    "S721": ("S72.101A", "hip", "right", "S72.002A"),
    "S722": ("S72.21XA", "hip", "right", "S72.002A"),
    "S724": ("S72.401A", "knee", "right", "S72.001A"),
    "S729": ("S72.91XA", "thigh", "right", "S72.001A"),
    "S82": ("S82.201A", "lower-leg", "right", "S81.001A"),
    "S820": ("S82.001A", "knee", "right", "S82.102A"),
    "S821": ("S82.101A", "knee", "right", "S82.002A"),
    "S823": ("S82.301A", "ankle", "right", "S82.001A"),
    "S825": ("S82.51XA", "ankle", "right", "S82.001A"),
    "S826": ("S82.61XA", "ankle", "right", "S82.001A"),
    "S828": ("S82.821A", "ankle", "right", "S82.001A"),
    "S8281": ("S82.811A", "knee", "right", "S82.821A"),
    "S8283": ("S82.831A", "lower-leg", "right", "S82.811A"),
    "S8286": ("S82.861A", "lower-leg", "right", "S82.811A"),
    "S8289": ("S82.891A", "lower-leg", "right", "S82.811A"),
    "S829": ("S82.91XA", "lower-leg", "right", "S82.001A"),
    "S92": ("S92.001A", "foot", "right", "S91.001A"),
    "M8001": ("M80.011A", "shoulder", "right", "M80.021A"),
    "M8002": ("M80.021A", "upper-arm", "right", "M80.011A"),
    "M8003": ("M80.031A", "forearm", "right", "M80.011A"),
    "M8004": ("M80.041A", "hand", "right", "M80.011A"),
    "M8005": ("M80.051A", "lower-limb", "right", "M80.011A"),
    "M8006": ("M80.061A", "lower-leg", "right", "M80.011A"),
    "M8007": ("M80.071A", "lower-limb", "right", "M80.011A"),
    "M8008": ("M80.08XA", "spine", "unspecified", "M80.011A"),
    "M800B": ("M80.0B1A", "pelvis", "right", "M80.011A"),
    "M8081": ("M80.811A", "shoulder", "right", "M80.821A"),
    "M8082": ("M80.821A", "upper-arm", "right", "M80.811A"),
    "M8083": ("M80.831A", "forearm", "right", "M80.811A"),
    "M8084": ("M80.841A", "hand", "right", "M80.811A"),
    "M8085": ("M80.851A", "lower-limb", "right", "M80.811A"),
    "M8086": ("M80.861A", "lower-leg", "right", "M80.811A"),
    "M8087": ("M80.871A", "lower-limb", "right", "M80.811A"),
    "M8088": ("M80.88XA", "spine", "unspecified", "M80.811A"),
    "M808B": ("M80.8B1A", "pelvis", "right", "M80.811A"),
    "M485": ("M48.50XA", "spine", "unspecified", "M80.011A"),
    "M4851": ("M48.51XA", "cervical-spine", "unspecified", "M48.50XA"),
    "M4852": ("M48.52XA", "cervical-spine", "unspecified", "M48.50XA"),
    "M4854": ("M48.54XA", "thoracic-spine", "unspecified", "M48.50XA"),
    "M4856": ("M48.56XA", "lumbar-spine", "unspecified", "M48.50XA"),
    "M4857": ("M48.57XA", "lumbar-spine", "unspecified", "M48.50XA"),
    "M4858": ("M48.58XA", "pelvis", "unspecified", "M48.50XA"),
    "M8475": ("M84.751A", "thigh", "right", "M80.011A"),
    "M970": ("M97.01XA", "hip", "right", "M97.11XA"),
    "M971": ("M97.11XA", "knee", "right", "M97.01XA"),
    "M972": ("M97.21XA", "ankle", "right", "M97.01XA"),
    "M973": ("M97.31XA", "shoulder", "right", "M97.01XA"),
    "M974": ("M97.41XA", "elbow", "right", "M97.01XA"),
    "S01": ("S01.00XA", "head", "unspecified", "S02.101A"),
    "S011": ("S01.101A", "head", "right", "S01.00XA"),
    "S013": ("S01.301A", "head", "right", "S01.00XA"),
    "S014": ("S01.401A", "head", "right", "S01.00XA"),
    "S11": ("S11.011A", "neck", "unspecified", "S12.000A"),
    "S21": ("S21.001A", "thorax", "right", "S22.000A"),
    "S212": ("S21.201A", "thoracic-spine", "right", "S21.001A"),
    "S214": ("S21.401A", "thoracic-spine", "right", "S21.001A"),
    "S31": ("S31.000A", "trunk", "unspecified", "S32.000A"),
    "S311": ("S31.100A", "abdomen", "right", "S31.000A"),
    "S316": ("S31.600A", "abdomen", "right", "S31.000A"),
    "S318": ("S31.811A", "pelvis", "right", "S31.000A"),
    "S41": ("S41.101A", "upper-arm", "right", "S42.001A"),
    "S410": ("S41.001A", "shoulder", "right", "S41.101A"),
    "S51": ("S51.801A", "forearm", "right", "S52.001A"),
    "S510": ("S51.001A", "elbow", "right", "S51.801A"),
    "S61": ("S61.001A", "hand", "right", "S62.001A"),
    "S612": ("S61.200A", "hand", "right", "S61.002A"),
    "S613": ("S61.300A", "hand", "right", "S61.002A"),
    "S615": ("S61.501A", "wrist", "right", "S61.001A"),
    "S71": ("S71.101A", "thigh", "right", "S72.001A"),
    "S710": ("S71.001A", "hip", "right", "S71.101A"),
    "S81": ("S81.801A", "lower-leg", "right", "S82.001A"),
    "S810": ("S81.001A", "knee", "right", "S81.801A"),
    "S91": ("S91.101A", "foot", "right", "S92.002A"),
    "S910": ("S91.001A", "ankle", "right", "S91.101A"),
    "T20": ("T20.00XA", "head", "unspecified", "T21.00XA"),
    "T2001": ("T20.011A", "head", "right", "T20.00XA"),
    "T2011": ("T20.111A", "head", "right", "T20.10XA"),
    "T2021": ("T20.211A", "head", "right", "T20.20XA"),
    "T2031": ("T20.311A", "head", "right", "T20.30XA"),
    "T2041": ("T20.411A", "head", "right", "T20.40XA"),
    "T2051": ("T20.511A", "head", "right", "T20.50XA"),
    "T2061": ("T20.611A", "head", "right", "T20.60XA"),
    "T2071": ("T20.711A", "head", "right", "T20.70XA"),
    "T2007": ("T20.07XA", "neck", "unspecified", "T20.00XA"),
    "T2017": ("T20.17XA", "neck", "unspecified", "T20.10XA"),
    "T2027": ("T20.27XA", "neck", "unspecified", "T20.20XA"),
    "T2037": ("T20.37XA", "neck", "unspecified", "T20.30XA"),
    "T2047": ("T20.47XA", "neck", "unspecified", "T20.40XA"),
    "T2057": ("T20.57XA", "neck", "unspecified", "T20.50XA"),
    "T2067": ("T20.67XA", "neck", "unspecified", "T20.60XA"),
    "T2077": ("T20.77XA", "neck", "unspecified", "T20.70XA"),
    "T2009": ("T20.09XA", "head-and-neck", "unspecified", "T20.00XA"),
    "T2019": ("T20.19XA", "head-and-neck", "unspecified", "T20.10XA"),
    "T2029": ("T20.29XA", "head-and-neck", "unspecified", "T20.20XA"),
    "T2039": ("T20.39XA", "head-and-neck", "unspecified", "T20.30XA"),
    "T2049": ("T20.49XA", "head-and-neck", "unspecified", "T20.40XA"),
    "T2059": ("T20.59XA", "head-and-neck", "unspecified", "T20.50XA"),
    "T2069": ("T20.69XA", "head-and-neck", "unspecified", "T20.60XA"),
    "T2079": ("T20.79XA", "head-and-neck", "unspecified", "T20.70XA"),
    "T21": ("T21.00XA", "trunk", "unspecified", "T20.00XA"),
    "T2101": ("T21.01XA", "thorax", "unspecified", "T21.00XA"),
    "T2111": ("T21.11XA", "thorax", "unspecified", "T21.10XA"),
    "T2121": ("T21.21XA", "thorax", "unspecified", "T21.20XA"),
    "T2131": ("T21.31XA", "thorax", "unspecified", "T21.30XA"),
    "T2141": ("T21.41XA", "thorax", "unspecified", "T21.40XA"),
    "T2151": ("T21.51XA", "thorax", "unspecified", "T21.50XA"),
    "T2161": ("T21.61XA", "thorax", "unspecified", "T21.60XA"),
    "T2171": ("T21.71XA", "thorax", "unspecified", "T21.70XA"),
    "T2102": ("T21.02XA", "abdomen", "unspecified", "T21.00XA"),
    "T2112": ("T21.12XA", "abdomen", "unspecified", "T21.10XA"),
    "T2122": ("T21.22XA", "abdomen", "unspecified", "T21.20XA"),
    "T2132": ("T21.32XA", "abdomen", "unspecified", "T21.30XA"),
    "T2142": ("T21.42XA", "abdomen", "unspecified", "T21.40XA"),
    "T2152": ("T21.52XA", "abdomen", "unspecified", "T21.50XA"),
    "T2162": ("T21.62XA", "abdomen", "unspecified", "T21.60XA"),
    "T2172": ("T21.72XA", "abdomen", "unspecified", "T21.70XA"),
    "T2103": ("T21.03XA", "thoracic-spine", "unspecified", "T21.00XA"),
    "T2113": ("T21.13XA", "thoracic-spine", "unspecified", "T21.10XA"),
    "T2123": ("T21.23XA", "thoracic-spine", "unspecified", "T21.20XA"),
    "T2133": ("T21.33XA", "thoracic-spine", "unspecified", "T21.30XA"),
    "T2143": ("T21.43XA", "thoracic-spine", "unspecified", "T21.40XA"),
    "T2153": ("T21.53XA", "thoracic-spine", "unspecified", "T21.50XA"),
    "T2163": ("T21.63XA", "thoracic-spine", "unspecified", "T21.60XA"),
    "T2173": ("T21.73XA", "thoracic-spine", "unspecified", "T21.70XA"),
    "T2104": ("T21.04XA", "lumbar-spine", "unspecified", "T21.00XA"),
    "T2114": ("T21.14XA", "lumbar-spine", "unspecified", "T21.10XA"),
    "T2124": ("T21.24XA", "lumbar-spine", "unspecified", "T21.20XA"),
    "T2134": ("T21.34XA", "lumbar-spine", "unspecified", "T21.30XA"),
    "T2144": ("T21.44XA", "lumbar-spine", "unspecified", "T21.40XA"),
    "T2154": ("T21.54XA", "lumbar-spine", "unspecified", "T21.50XA"),
    "T2164": ("T21.64XA", "lumbar-spine", "unspecified", "T21.60XA"),
    "T2174": ("T21.74XA", "lumbar-spine", "unspecified", "T21.70XA"),
    "T2105": ("T21.05XA", "pelvis", "unspecified", "T21.00XA"),
    "T2115": ("T21.15XA", "pelvis", "unspecified", "T21.10XA"),
    "T2125": ("T21.25XA", "pelvis", "unspecified", "T21.20XA"),
    "T2135": ("T21.35XA", "pelvis", "unspecified", "T21.30XA"),
    "T2145": ("T21.45XA", "pelvis", "unspecified", "T21.40XA"),
    "T2155": ("T21.55XA", "pelvis", "unspecified", "T21.50XA"),
    "T2165": ("T21.65XA", "pelvis", "unspecified", "T21.60XA"),
    "T2175": ("T21.75XA", "pelvis", "unspecified", "T21.70XA"),
    "T2106": ("T21.06XA", "pelvis", "unspecified", "T21.00XA"),
    "T2116": ("T21.16XA", "pelvis", "unspecified", "T21.10XA"),
    "T2126": ("T21.26XA", "pelvis", "unspecified", "T21.20XA"),
    "T2136": ("T21.36XA", "pelvis", "unspecified", "T21.30XA"),
    "T2146": ("T21.46XA", "pelvis", "unspecified", "T21.40XA"),
    "T2156": ("T21.56XA", "pelvis", "unspecified", "T21.50XA"),
    "T2166": ("T21.66XA", "pelvis", "unspecified", "T21.60XA"),
    "T2176": ("T21.76XA", "pelvis", "unspecified", "T21.70XA"),
    "T2107": ("T21.07XA", "pelvis", "unspecified", "T21.00XA"),
    "T2117": ("T21.17XA", "pelvis", "unspecified", "T21.10XA"),
    "T2127": ("T21.27XA", "pelvis", "unspecified", "T21.20XA"),
    "T2137": ("T21.37XA", "pelvis", "unspecified", "T21.30XA"),
    "T2147": ("T21.47XA", "pelvis", "unspecified", "T21.40XA"),
    "T2157": ("T21.57XA", "pelvis", "unspecified", "T21.50XA"),
    "T2167": ("T21.67XA", "pelvis", "unspecified", "T21.60XA"),
    "T2177": ("T21.77XA", "pelvis", "unspecified", "T21.70XA"),
    "T22": ("T22.091A", "upper-limb", "right", "T20.00XA"),
    "T2201": ("T22.011A", "forearm", "right", "T22.00XA"),
    "T2211": ("T22.111A", "forearm", "right", "T22.10XA"),
    "T2221": ("T22.211A", "forearm", "right", "T22.20XA"),
    "T2231": ("T22.311A", "forearm", "right", "T22.30XA"),
    "T2241": ("T22.411A", "forearm", "right", "T22.40XA"),
    "T2251": ("T22.511A", "forearm", "right", "T22.50XA"),
    "T2261": ("T22.611A", "forearm", "right", "T22.60XA"),
    "T2271": ("T22.711A", "forearm", "right", "T22.70XA"),
    "T2202": ("T22.021A", "elbow", "right", "T22.00XA"),
    "T2212": ("T22.121A", "elbow", "right", "T22.10XA"),
    "T2222": ("T22.221A", "elbow", "right", "T22.20XA"),
    "T2232": ("T22.321A", "elbow", "right", "T22.30XA"),
    "T2242": ("T22.421A", "elbow", "right", "T22.40XA"),
    "T2252": ("T22.521A", "elbow", "right", "T22.50XA"),
    "T2262": ("T22.621A", "elbow", "right", "T22.60XA"),
    "T2272": ("T22.721A", "elbow", "right", "T22.70XA"),
    "T2203": ("T22.031A", "upper-arm", "right", "T22.00XA"),
    "T2213": ("T22.131A", "upper-arm", "right", "T22.10XA"),
    "T2223": ("T22.231A", "upper-arm", "right", "T22.20XA"),
    "T2233": ("T22.331A", "upper-arm", "right", "T22.30XA"),
    "T2243": ("T22.431A", "upper-arm", "right", "T22.40XA"),
    "T2253": ("T22.531A", "upper-arm", "right", "T22.50XA"),
    "T2263": ("T22.631A", "upper-arm", "right", "T22.60XA"),
    "T2273": ("T22.731A", "upper-arm", "right", "T22.70XA"),
    "T2204": ("T22.041A", "shoulder", "right", "T22.00XA"),
    "T2214": ("T22.141A", "shoulder", "right", "T22.10XA"),
    "T2224": ("T22.241A", "shoulder", "right", "T22.20XA"),
    "T2234": ("T22.341A", "shoulder", "right", "T22.30XA"),
    "T2244": ("T22.441A", "shoulder", "right", "T22.40XA"),
    "T2254": ("T22.541A", "shoulder", "right", "T22.50XA"),
    "T2264": ("T22.641A", "shoulder", "right", "T22.60XA"),
    "T2274": ("T22.741A", "shoulder", "right", "T22.70XA"),
    "T2205": ("T22.051A", "shoulder", "right", "T22.00XA"),
    "T2215": ("T22.151A", "shoulder", "right", "T22.10XA"),
    "T2225": ("T22.251A", "shoulder", "right", "T22.20XA"),
    "T2235": ("T22.351A", "shoulder", "right", "T22.30XA"),
    "T2245": ("T22.451A", "shoulder", "right", "T22.40XA"),
    "T2255": ("T22.551A", "shoulder", "right", "T22.50XA"),
    "T2265": ("T22.651A", "shoulder", "right", "T22.60XA"),
    "T2275": ("T22.751A", "shoulder", "right", "T22.70XA"),
    "T2206": ("T22.061A", "shoulder", "right", "T22.00XA"),
    "T2216": ("T22.161A", "shoulder", "right", "T22.10XA"),
    "T2226": ("T22.261A", "shoulder", "right", "T22.20XA"),
    "T2236": ("T22.361A", "shoulder", "right", "T22.30XA"),
    "T2246": ("T22.461A", "shoulder", "right", "T22.40XA"),
    "T2256": ("T22.561A", "shoulder", "right", "T22.50XA"),
    "T2266": ("T22.661A", "shoulder", "right", "T22.60XA"),
    "T2276": ("T22.761A", "shoulder", "right", "T22.70XA"),
    "T23": ("T23.001A", "hand", "right", "T20.00XA"),
    "T2307": ("T23.071A", "wrist", "right", "T23.001A"),
    "T2317": ("T23.171A", "wrist", "right", "T23.101A"),
    "T2327": ("T23.271A", "wrist", "right", "T23.201A"),
    "T2337": ("T23.371A", "wrist", "right", "T23.301A"),
    "T2347": ("T23.471A", "wrist", "right", "T23.401A"),
    "T2357": ("T23.571A", "wrist", "right", "T23.501A"),
    "T2367": ("T23.671A", "wrist", "right", "T23.601A"),
    "T2377": ("T23.771A", "wrist", "right", "T23.701A"),
    "T24": ("T24.001A", "lower-limb", "right", "T20.00XA"),
    "T2401": ("T24.011A", "thigh", "right", "T24.001A"),
    "T2411": ("T24.111A", "thigh", "right", "T24.101A"),
    "T2421": ("T24.211A", "thigh", "right", "T24.201A"),
    "T2431": ("T24.311A", "thigh", "right", "T24.301A"),
    "T2441": ("T24.411A", "thigh", "right", "T24.401A"),
    "T2451": ("T24.511A", "thigh", "right", "T24.501A"),
    "T2461": ("T24.611A", "thigh", "right", "T24.601A"),
    "T2471": ("T24.711A", "thigh", "right", "T24.701A"),
    "T2402": ("T24.021A", "knee", "right", "T24.001A"),
    "T2412": ("T24.121A", "knee", "right", "T24.101A"),
    "T2422": ("T24.221A", "knee", "right", "T24.201A"),
    "T2432": ("T24.321A", "knee", "right", "T24.301A"),
    "T2442": ("T24.421A", "knee", "right", "T24.401A"),
    "T2452": ("T24.521A", "knee", "right", "T24.501A"),
    "T2462": ("T24.621A", "knee", "right", "T24.601A"),
    "T2472": ("T24.721A", "knee", "right", "T24.701A"),
    "T2403": ("T24.031A", "lower-leg", "right", "T24.001A"),
    "T2413": ("T24.131A", "lower-leg", "right", "T24.101A"),
    "T2423": ("T24.231A", "lower-leg", "right", "T24.201A"),
    "T2433": ("T24.331A", "lower-leg", "right", "T24.301A"),
    "T2443": ("T24.431A", "lower-leg", "right", "T24.401A"),
    "T2453": ("T24.531A", "lower-leg", "right", "T24.501A"),
    "T2463": ("T24.631A", "lower-leg", "right", "T24.601A"),
    "T2473": ("T24.731A", "lower-leg", "right", "T24.701A"),
    "T25": ("T25.021A", "foot", "right", "T20.00XA"),
    "T2501": ("T25.011A", "ankle", "right", "T25.021A"),
    "T2511": ("T25.111A", "ankle", "right", "T25.121A"),
    "T2521": ("T25.211A", "ankle", "right", "T25.221A"),
    "T2531": ("T25.311A", "ankle", "right", "T25.321A"),
    "T2541": ("T25.411A", "ankle", "right", "T25.421A"),
    "T2551": ("T25.511A", "ankle", "right", "T25.521A"),
    "T2561": ("T25.611A", "ankle", "right", "T25.621A"),
    "T2571": ("T25.711A", "ankle", "right", "T25.721A"),
    "T2509": ("T25.091A", "lower-limb", "right", "T25.011A"),
    "T2519": ("T25.191A", "lower-limb", "right", "T25.111A"),
    "T2529": ("T25.291A", "lower-limb", "right", "T25.211A"),
    "T2539": ("T25.391A", "lower-limb", "right", "T25.311A"),
    "T2549": ("T25.491A", "lower-limb", "right", "T25.411A"),
    "T2559": ("T25.591A", "lower-limb", "right", "T25.511A"),
    "T2569": ("T25.691A", "lower-limb", "right", "T25.611A"),
    "T2579": ("T25.791A", "lower-limb", "right", "T25.711A"),
    "T26": ("T26.01XA", "head", "right", "T20.00XA"),
    "I800": ("I80.01", "lower-limb", "right", "I80.10"),
    "I801": ("I80.11", "thigh", "right", "I80.00"),
    "I802": ("I80.201", "lower-limb", "right", "I80.00"),
    "I8021": ("I80.211", "pelvis", "right", "I80.201"),
    "I8022": ("I80.221", "knee", "right", "I80.201"),
    "I8023": ("I80.231", "lower-leg", "right", "I80.201"),
    "I8024": ("I80.241", "lower-leg", "right", "I80.201"),
    "I8025": ("I80.251", "lower-leg", "right", "I80.201"),
    "I803": ("I80.3", "lower-limb", "unspecified", "I80.01"),
    "I824": ("I82.401", "lower-limb", "right", "I82.502"),
    "I8241": ("I82.411", "thigh", "right", "I82.401"),
    "I8242": ("I82.421", "pelvis", "right", "I82.401"),
    "I8243": ("I82.431", "knee", "right", "I82.401"),
    "I8244": ("I82.441", "lower-leg", "right", "I82.401"),
    "I8245": ("I82.451", "lower-leg", "right", "I82.401"),
    "I8246": ("I82.461", "lower-leg", "right", "I82.401"),
    "I824Y": ("I82.4Y1", "thigh", "right", "I82.401"),
    "I824Z": ("I82.4Z1", "lower-leg", "right", "I82.401"),
    "I825": ("I82.501", "lower-limb", "right", "I82.402"),
    "I8251": ("I82.511", "thigh", "right", "I82.501"),
    "I8252": ("I82.521", "pelvis", "right", "I82.501"),
    "I8253": ("I82.531", "knee", "right", "I82.501"),
    "I8254": ("I82.541", "lower-leg", "right", "I82.501"),
    "I8255": ("I82.551", "lower-leg", "right", "I82.501"),
    "I8256": ("I82.561", "lower-leg", "right", "I82.501"),
    "I825Y": ("I82.5Y1", "thigh", "right", "I82.501"),
    "I825Z": ("I82.5Z1", "lower-leg", "right", "I82.501"),
    "I826": ("I82.601", "upper-limb", "right", "I82.401"),
    "I827": ("I82.701", "upper-limb", "right", "I82.401"),
    "I82A": ("I82.A11", "shoulder", "right", "I82.401"),
    "I82B": ("I82.B11", "shoulder", "right", "I82.401"),
    "I82C": ("I82.C11", "neck", "right", "I82.401"),
}

LATERALITY_CASES: list[tuple[str, str, str, Side]] = [
    # (rule prefix, laterality character, a real code with that character at the position, side)
    ("S0210", "1", "S02.101A", "right"),
    ("S0210", "2", "S02.102A", "left"),
    ("S0210", "9", "S02.109A", "unspecified"),
    ("S0211", "A", "S02.11AA", "right"),
    ("S0211", "B", "S02.11BA", "left"),
    ("S0211", "C", "S02.11CA", "right"),
    ("S0211", "D", "S02.11DA", "left"),
    ("S0211", "E", "S02.11EA", "right"),
    ("S0211", "F", "S02.11FA", "left"),
    ("S0211", "G", "S02.11GA", "right"),
    ("S0211", "H", "S02.11HA", "left"),
    ("S023", "0", "S02.30XA", "unspecified"),
    ("S023", "1", "S02.31XA", "right"),
    ("S023", "2", "S02.32XA", "left"),
    ("S0240", "A", "S02.40AA", "right"),
    ("S0240", "B", "S02.40BA", "left"),
    ("S0240", "C", "S02.40CA", "right"),
    ("S0240", "D", "S02.40DA", "left"),
    ("S0240", "E", "S02.40EA", "right"),
    ("S0240", "F", "S02.40FA", "left"),
    ("S026", "0", "S02.600A", "unspecified"),
    ("S026", "1", "S02.601A", "right"),
    ("S026", "2", "S02.602A", "left"),
    ("S026", "9", "S02.609A", "unspecified"),
    ("S223", "1", "S22.31XA", "right"),
    ("S223", "2", "S22.32XA", "left"),
    ("S223", "9", "S22.39XA", "unspecified"),
    ("S224", "1", "S22.41XA", "right"),
    ("S224", "2", "S22.42XA", "left"),
    ("S224", "3", "S22.43XA", "bilateral"),
    ("S224", "9", "S22.49XA", "unspecified"),
    ("S323", "1", "S32.301A", "right"),
    ("S323", "2", "S32.302A", "left"),
    ("S323", "3", "S32.313A", "unspecified"),
    ("S323", "4", "S32.314A", "right"),
    ("S323", "5", "S32.315A", "left"),
    ("S323", "6", "S32.316A", "unspecified"),
    ("S323", "9", "S32.309A", "unspecified"),
    ("S4201", "1", "S42.011A", "right"),
    ("S4201", "2", "S42.012A", "left"),
    ("S4201", "3", "S42.013A", "unspecified"),
    ("S4201", "4", "S42.014A", "right"),
    ("S4201", "5", "S42.015A", "left"),
    ("S4201", "6", "S42.016A", "unspecified"),
    ("S4201", "7", "S42.017A", "right"),
    ("S4201", "8", "S42.018A", "left"),
    ("S4201", "9", "S42.019A", "unspecified"),
    ("S623", "0", "S62.300A", "right"),
    ("S623", "1", "S62.301A", "left"),
    ("S623", "2", "S62.302A", "right"),
    ("S623", "3", "S62.303A", "left"),
    ("S623", "4", "S62.304A", "right"),
    ("S623", "5", "S62.305A", "left"),
    ("S623", "6", "S62.306A", "right"),
    ("S623", "7", "S62.307A", "left"),
    ("S623", "8", "S62.308A", "unspecified"),
    ("S623", "9", "S62.309A", "unspecified"),
    ("S722", "1", "S72.21XA", "right"),
    ("S722", "2", "S72.22XA", "left"),
    ("S722", "3", "S72.23XA", "unspecified"),
    ("S722", "4", "S72.24XA", "right"),
    ("S722", "5", "S72.25XA", "left"),
    ("S722", "6", "S72.26XA", "unspecified"),
    ("M8475", "0", "M84.750A", "unspecified"),
    ("M8475", "1", "M84.751A", "right"),
    ("M8475", "2", "M84.752A", "left"),
    ("M8475", "3", "M84.753A", "unspecified"),
    ("M8475", "4", "M84.754A", "right"),
    ("M8475", "5", "M84.755A", "left"),
    ("M8475", "6", "M84.756A", "unspecified"),
    ("M8475", "7", "M84.757A", "right"),
    ("M8475", "8", "M84.758A", "left"),
    ("M8475", "9", "M84.759A", "unspecified"),
    ("S311", "0", "S31.100A", "right"),
    ("S311", "1", "S31.101A", "left"),
    ("S311", "2", "S31.102A", "unspecified"),
    ("S311", "3", "S31.103A", "right"),
    ("S311", "4", "S31.104A", "left"),
    ("S311", "5", "S31.105A", "unspecified"),
    ("S311", "6", "S31.106A", "right"),
    ("S311", "7", "S31.107A", "left"),
    ("S311", "9", "S31.109A", "unspecified"),
    ("S311", "A", "S31.10AA", "unspecified"),
    ("I800", "0", "I80.00", "unspecified"),
    ("I800", "1", "I80.01", "right"),
    ("I800", "2", "I80.02", "left"),
    ("I800", "3", "I80.03", "bilateral"),
    ("I802", "1", "I80.201", "right"),
    ("I802", "2", "I80.202", "left"),
    ("I802", "3", "I80.203", "bilateral"),
    ("I802", "9", "I80.209", "unspecified"),
]


SITE_CASES: dict[str, tuple[str | None, Side | None]] = {
    # SNOMED CT code: (region, side) per body-sites.md §1 and the §4 buckets
    "69536005": ("head", None),  # Head structure
    "89545001": ("head", None),  # Face structure
    "45048000": ("neck", None),  # Neck structure
    "122494005": ("cervical-spine", None),  # Structure of cervical vertebral column
    "122495006": ("thoracic-spine", None),  # Thoracic spine structure
    "122496007": ("lumbar-spine", None),  # Lumbar spine structure
    "52612000": ("lumbar-spine", None),  # Lumbar region back structure
    "37822005": ("lumbar-spine", None),  # Lower back structure
    "77568009": ("back", None),  # Structure of back of trunk
    "51185008": ("thorax", None),  # Thoracic structure
    "816094009": ("thorax", None),  # Cross-sectional thorax
    "113197003": ("thorax", None),  # Bone structure of rib
    "818983003": ("abdomen", None),  # Abdomen
    "818981001": ("abdomen", None),  # Cross-sectional abdomen
    "12921003": ("pelvis", None),  # Pelvic region
    "816092008": ("pelvis", None),  # Cross-sectional pelvis
    "54735007": ("pelvis", None),  # Bone structure of sacrum
    "16982005": ("shoulder", None),  # Shoulder region structure
    "40983000": ("upper-arm", None),  # Upper arm structure
    "85050009": ("upper-arm", None),  # Bone structure of humerus
    "127949000": ("elbow", None),  # Elbow region structure
    "16953009": ("elbow", None),  # Elbow joint structure
    "14975008": ("forearm", None),  # Forearm structure
    "62413002": ("forearm", None),  # Bone structure of radius
    "8205005": ("wrist", None),  # Wrist region structure
    "74670003": ("wrist", None),  # Wrist joint structure
    "85562004": ("hand", None),  # Hand structure
    "7569003": ("hand", None),  # Finger structure
    "29836001": ("hip", None),  # Hip region structure
    "24136001": ("hip", None),  # Hip joint structure
    "68367000": ("thigh", None),  # Thigh structure
    "71341001": ("thigh", None),  # Bone structure of femur
    "72696002": ("knee", None),  # Knee region structure
    "49076000": ("knee", None),  # Knee joint structure
    "30021000": ("lower-leg", None),  # Lower leg structure
    "53840002": ("lower-leg", None),  # Structure of calf of leg
    "12611008": ("lower-leg", None),  # Bone structure of tibia
    "344001": ("ankle", None),  # Ankle region structure
    "70258002": ("ankle", None),  # Ankle joint structure
    "56459004": ("foot", None),  # Foot structure
    "53120007": ("upper-limb", None),  # Upper limb structure
    "61685007": ("lower-limb", None),  # Lower limb structure
    "421060004": ("spine", None),  # Structure of vertebral column
    "22943007": ("trunk", None),  # Trunk structure
    "46862004": ("pelvis", None),  # Buttock structure
    "66019005": ("limb", None),  # Limb structure
    "38266002": ("whole-body", None),  # Entire body as a whole
    "7771000": (None, "left"),  # Left
    "24028007": (None, "right"),  # Right
    "51440002": (None, "bilateral"),  # Right and left
    "419161000": (None, "left"),  # Unilateral left
    "66459002": (None, "unspecified"),  # Unilateral
    "419465000": (None, "right"),  # Unilateral right
    "368209003": ("upper-arm", "right"),  # Right upper arm structure
    "72098002": ("upper-arm", "left"),  # Entire left upper arm
    "11207009": ("thigh", "right"),  # Structure of right thigh
    "304037003": ("thoracic-spine", None),  # Structure of back of thoracic region
    "113345001": ("abdomen", None),  # Abdominal structure
}

SNOMED_CASES: dict[str, tuple[str, Tier, str]] = {
    # SNOMED CT code: (class, tier, a neighbouring code that must not give the class)
    "128053003": ("dvt", "full", "64779008"),  # DVT vs blood coagulation disorder
    "404223003": ("dvt", "full", "125605004"),  # DVT of lower extremity vs fracture of bone
    "132281000119108": ("dvt", "full", "302215000"),  # acute DVT vs thrombocytopenic disorder
    "706870000": ("dvt", "full", "182764009"),  # acute pulmonary embolism vs anticoagulant therapy
    "64779008": ("bleeding-disorder", "full", "302215000"),  # coagulation disorder vs thrombocytopenic disorder
    "90935002": ("bleeding-disorder", "full", "128053003"),  # haemophilia vs DVT
    "302215000": ("thrombocytopenia", "lesser", "64779008"),  # thrombocytopenic disorder vs coagulation disorder
    "182764009": ("anticoagulant", "full", "64779008"),  # anticoagulant therapy vs coagulation disorder
    "125605004": ("fracture", "full", "64859006"),  # fracture of bone vs osteoporosis
    "125666000": ("burn", "full", "125643001"),  # burn vs open wound
    "125643001": ("open-wound", "full", "125666000"),  # open wound vs burn
    "64859006": ("osteoporosis", "lesser", "125605004"),  # osteoporosis vs fracture of bone
    "423125000": ("fracture", "full", "125666000"),  # closed fracture vs burn
    "397181002": ("fracture", "full", "125643001"),  # open fracture vs open wound
    "58150001": ("fracture", "full", "64859006"),  # clavicle
    "65966004": ("fracture", "full", "64859006"),  # forearm
    "263102004": ("fracture", "full", "64859006"),  # wrist
    "16114001": ("fracture", "full", "64859006"),  # ankle
    "33737001": ("fracture", "full", "64859006"),  # rib
    "359817006": ("fracture", "full", "64859006"),  # closed hip
    "15724005": ("fracture", "full", "64859006"),  # vertebral column
    "1734006": ("fracture", "full", "64859006"),  # vertebral column
    "443165006": ("fracture", "full", "64859006"),  # pathological fracture due to osteoporosis vs osteoporosis
    "403190006": ("burn", "full", "125643001"),  # first degree burn vs open wound
    "403191005": ("burn", "full", "125643001"),
    "403192003": ("burn", "full", "125643001"),
    "284549007": ("open-wound", "full", "125666000"),  # laceration of hand vs burn
    "283371005": ("open-wound", "full", "125666000"),
    "283385000": ("open-wound", "full", "125666000"),
    "370247008": ("open-wound", "full", "125666000"),
    "284551006": ("open-wound", "full", "125666000"),
}

# RxNorm ingredients that are not anticoagulants or antiplatelets: acetaminophen 161, ibuprofen 5640,
# naproxen 7258, meloxicam 41493, cyclobenzaprine 21949, tramadol 10689, gabapentin 25480, prednisone 8640.
RXNORM_CASES: dict[str, tuple[str, Tier, str]] = {
    # RxNorm code: (class, tier, a code that must not give the class)
    "11289": ("anticoagulant", "full", "161"),  # warfarin
    "855332": ("anticoagulant", "full", "161"),  # warfarin sodium 5 MG Oral Tablet
    "1364430": ("anticoagulant", "full", "5640"),  # apixaban
    "1364435": ("anticoagulant", "full", "5640"),
    "1364445": ("anticoagulant", "full", "5640"),
    "1114195": ("anticoagulant", "full", "7258"),  # rivaroxaban
    "1114198": ("anticoagulant", "full", "7258"),
    "1232082": ("anticoagulant", "full", "7258"),
    "1232086": ("anticoagulant", "full", "7258"),
    "1037042": ("anticoagulant", "full", "41493"),  # dabigatran etexilate
    "1546356": ("anticoagulant", "full", "41493"),  # dabigatran
    "1599538": ("anticoagulant", "full", "21949"),  # edoxaban
    "1599543": ("anticoagulant", "full", "21949"),
    "1599551": ("anticoagulant", "full", "21949"),
    "1599555": ("anticoagulant", "full", "21949"),
    "5224": ("anticoagulant", "full", "10689"),  # heparin
    "1659263": ("anticoagulant", "full", "10689"),
    "67108": ("anticoagulant", "full", "25480"),  # enoxaparin
    "854228": ("anticoagulant", "full", "25480"),
    "854235": ("anticoagulant", "full", "25480"),
    "854252": ("anticoagulant", "full", "25480"),
    "67109": ("anticoagulant", "full", "8640"),  # dalteparin
    "69646": ("anticoagulant", "full", "8640"),  # tinzaparin
    "321208": ("anticoagulant", "full", "8640"),  # fondaparinux
    "15202": ("anticoagulant", "full", "161"),  # argatroban
    "60819": ("anticoagulant", "full", "161"),  # bivalirudin
    "1191": ("anticoagulant", "minor", "161"),  # aspirin (antiplatelet)
    "32968": ("anticoagulant", "minor", "5640"),  # clopidogrel (antiplatelet)
}


# --- contraindications: ICD-10-CM -----------------------------------------------------------------


def test_icd_table_covers_the_data() -> None:
    in_data = {m.prefix: klass.id for klass in CLASSES for m in klass.icd10cm}
    assert set(in_data) == set(ICD_CASES), "every ICD-10-CM prefix needs a row in ICD_CASES (and no stale rows)"
    assert {prefix: case[0] for prefix, case in ICD_CASES.items()} == in_data


@pytest.mark.parametrize(("prefix", "case"), ICD_CASES.items(), ids=list(ICD_CASES))
def test_icd_prefix_fires_on_a_real_code(prefix: str, case: tuple[str, str, Tier, str]) -> None:
    class_id, code, tier, _ = case
    assert code.replace(".", "").startswith(prefix)
    assert classes_of(match_icd(CLASSES, code)).get(class_id) == tier


@pytest.mark.parametrize(("prefix", "case"), ICD_CASES.items(), ids=list(ICD_CASES))
def test_icd_prefix_stays_quiet_on_a_near_miss(prefix: str, case: tuple[str, str, Tier, str]) -> None:
    class_id, _, _, near_miss = case
    assert not near_miss.replace(".", "").startswith(prefix)
    assert class_id not in classes_of(match_icd(CLASSES, near_miss))


def test_icd_matching_ignores_the_dot_and_case() -> None:
    assert classes_of(match_icd(CLASSES, "s72.001a")) == {"fracture": "full"}
    assert classes_of(match_icd(CLASSES, "S72001A")) == {"fracture": "full"}


def test_thrombophilia_is_not_a_bleeding_disorder() -> None:
    """billing-rules.md §5.1 trap: D68.5- and D68.6- are clotting tendencies."""
    for code in ("D68.51", "D68.52", "D68.59", "D68.61", "D68.62", "D68.69"):
        assert match_icd(CLASSES, code) == [], code
    assert classes_of(match_icd(CLASSES, "D68.311")) == {"bleeding-disorder": "full"}


def test_exclude_beats_the_prefix() -> None:
    klass = ContraindicationClass(
        id="bleeding",
        display="test",
        scope="systemic",
        why="test",
        icd10cm=[{"prefix": "D68", "exclude": ["D685", "D686"], "display": "test", "source": "test"}],
    )
    assert classes_of(match_icd([klass], "D68.311")) == {"bleeding": "full"}
    assert match_icd([klass], "D68.51") == []
    assert match_icd([klass], "D68.61") == []


# --- contraindications: 7th characters ----------------------------------------------------------------


def test_seventh_character_table_covers_the_data() -> None:
    in_data = {m.prefix for klass in CLASSES for m in klass.icd10cm if m.seventh_character}
    assert set(SEVENTH_CASES) == in_data
    for klass in CLASSES:
        for match in klass.icd10cm:
            if match.seventh_character:
                characters = "".join(rule.characters for rule in match.seventh_character)
                assert len(set(characters)) == len(characters), f"{match.prefix}: a 7th character is in two rules"
                assert set(characters) == set(SEVENTH_CASES[match.prefix][1]), (
                    f"{match.prefix}: the rules must list exactly the 7th characters the tabular uses"
                )


SEVENTH = [
    (prefix, base, character) for prefix, (base, characters) in SEVENTH_CASES.items() for character in characters
]


@pytest.mark.parametrize(("prefix", "base", "character"), SEVENTH, ids=[f"{b}{c}" for _, b, c in SEVENTH])
def test_seventh_character_decides_the_tier(prefix: str, base: str, character: str) -> None:
    """A (initial) and B-R (open, subsequent: healing, nonunion, malunion) are active; S (sequela) is not."""
    class_id = ICD_CASES[prefix][0]
    expected: Tier = "none" if character == "S" else "full"
    assert classes_of(match_icd(CLASSES, base + character)).get(class_id) == expected


def test_initial_subsequent_and_sequela_differ() -> None:
    assert classes_of(match_icd(CLASSES, "S72.001A")) == {"fracture": "full"}
    assert classes_of(match_icd(CLASSES, "S72.001D")) == {"fracture": "full"}
    assert classes_of(match_icd(CLASSES, "S72.001S")) == {"fracture": "none"}
    assert classes_of(match_icd(CLASSES, "T22.211A")) == {"burn": "full"}
    assert classes_of(match_icd(CLASSES, "T22.211D")) == {"burn": "full"}
    assert classes_of(match_icd(CLASSES, "T22.211S")) == {"burn": "none"}
    assert classes_of(match_icd(CLASSES, "S81.811A")) == {"open-wound": "full"}
    assert classes_of(match_icd(CLASSES, "S81.811S")) == {"open-wound": "none"}


# --- contraindications: SNOMED CT and RxNorm ------------------------------------------------------------


def test_snomed_and_rxnorm_tables_cover_the_data() -> None:
    assert {c.code: k.id for k in CLASSES for c in k.snomed} == {code: case[0] for code, case in SNOMED_CASES.items()}
    assert {c.code: k.id for k in CLASSES for c in k.rxnorm} == {code: case[0] for code, case in RXNORM_CASES.items()}


@pytest.mark.parametrize(("code", "case"), SNOMED_CASES.items(), ids=list(SNOMED_CASES))
def test_snomed_code_fires_and_its_neighbour_does_not(code: str, case: tuple[str, Tier, str]) -> None:
    class_id, tier, neighbour = case
    assert classes_of(match_codes(CLASSES, SNOMED_SYSTEM, code)) == {class_id: tier}
    assert class_id not in classes_of(match_codes(CLASSES, SNOMED_SYSTEM, neighbour))
    assert match_codes(CLASSES, RXNORM_SYSTEM, code) == []  # the system matters, not only the code


@pytest.mark.parametrize(("code", "case"), RXNORM_CASES.items(), ids=list(RXNORM_CASES))
def test_rxnorm_code_fires_and_its_neighbour_does_not(code: str, case: tuple[str, Tier, str]) -> None:
    class_id, tier, neighbour = case
    assert classes_of(match_codes(CLASSES, RXNORM_SYSTEM, code)) == {class_id: tier}
    assert class_id not in classes_of(match_codes(CLASSES, RXNORM_SYSTEM, neighbour))
    assert match_codes(CLASSES, SNOMED_SYSTEM, code) == []


# --- body sites: SNOMED CT ------------------------------------------------------------------------------


def test_site_table_covers_the_data() -> None:
    assert {s.code for s in RULES.body_sites.snomed} == set(SITE_CASES)


@pytest.mark.parametrize(("code", "case"), SITE_CASES.items(), ids=list(SITE_CASES))
def test_site_code_resolves_to_its_region_and_side(code: str, case: tuple[str | None, Side | None]) -> None:
    region, side = case
    site = RESOLVER.of_codings(snomed(code))
    assert site.regions == (frozenset({region}) if region else frozenset())
    assert site.side == (side or "unspecified")
    assert RESOLVER.of_codings([Coding(LOINC, code)]) == UNKNOWN_SITE  # another system: not a body site


def test_only_verified_site_codes_except_the_documented_single_source_ones() -> None:
    unverified = {s.code for s in RULES.body_sites.snomed if not s.verified}
    assert unverified == {"419465000", "304037003", "113345001"}


def test_location_plus_laterality_qualifier() -> None:
    assert RESOLVER.of_codings(snomed("14975008", "419161000")) == Site(frozenset({"forearm"}), "left")
    assert RESOLVER.of_codings(snomed("14975008", "419465000")) == Site(frozenset({"forearm"}), "right")
    assert RESOLVER.of_codings(snomed("14975008", "7771000", "24028007")) == Site(frozenset({"forearm"}), "bilateral")
    assert RESOLVER.of_codings(snomed("123456789")) == UNKNOWN_SITE


# --- body sites: ICD-10-CM region rules ---------------------------------------------------------------------


def test_region_table_covers_the_data() -> None:
    prefixes = [r.prefix for r in RULES.body_sites.icd10cm]
    assert len(set(prefixes)) == len(prefixes), "a prefix is listed twice"
    assert set(prefixes) == set(REGION_CASES), "every region rule needs a row in REGION_CASES (and no stale rows)"


@pytest.mark.parametrize(("prefix", "case"), REGION_CASES.items(), ids=list(REGION_CASES))
def test_region_rule_fires_on_a_real_code(prefix: str, case: tuple[str, str, Side, str]) -> None:
    code, region, side, outside = case
    assert code.replace(".", "").startswith(prefix)
    assert RESOLVER.of_icd(code) == Site(frozenset({region}), side)
    assert not outside.replace(".", "").startswith(prefix)
    assert RESOLVER.of_icd(outside) != Site(frozenset({region}), side)


def test_laterality_table_covers_every_laterality_rule() -> None:
    rules = {r.prefix: r for r in RULES.body_sites.icd10cm}
    covered: dict[tuple[int, tuple[tuple[str, str], ...]], set[str]] = {}
    for prefix, character, _, _ in LATERALITY_CASES:
        laterality = rules[prefix].laterality
        assert laterality is not None, prefix
        covered.setdefault((laterality.position, tuple(sorted(laterality.values.items()))), set()).add(character)
    for rule in RULES.body_sites.icd10cm:
        if rule.laterality:
            key = (rule.laterality.position, tuple(sorted(rule.laterality.values.items())))
            assert covered.get(key) == set(rule.laterality.values), f"{rule.prefix}: laterality values without a case"


@pytest.mark.parametrize(
    ("prefix", "character", "code", "side"), LATERALITY_CASES, ids=[c[2] for c in LATERALITY_CASES]
)
def test_laterality_character(prefix: str, character: str, code: str, side: Side) -> None:
    rule = next(r for r in RULES.body_sites.icd10cm if r.prefix == prefix)
    assert rule.laterality is not None
    assert code.replace(".", "")[rule.laterality.position - 1] == character
    assert RESOLVER.of_icd(code).side == side


def test_codes_without_laterality_get_no_side() -> None:
    """body-sites.md §5.6 rule 4: a digit in these codes is not a side."""
    for code in ("S12.001A", "S22.011A", "S22.21XA", "S32.012A", "S32.2XXA", "S11.011A", "S31.001A", "T21.11XA"):
        site = RESOLVER.of_icd(code)
        assert site.known, code
        assert site.side == "unspecified", code


def test_vascular_3_is_bilateral_not_unspecified() -> None:
    assert RESOLVER.of_icd("I82.403").side == "bilateral"
    assert RESOLVER.of_icd("I80.13").side == "bilateral"
    assert RESOLVER.of_icd("S72.033A").side == "unspecified"  # a fracture's 3 is "unspecified femur"


def test_unmapped_codes_have_an_unknown_site() -> None:
    for code in ("M80.00XA", "M80.0AXA", "M84.30XA", "T30.0", "T31.0", "L89.150", "I26.99", "M54.50"):
        assert RESOLVER.of_icd(code) == UNKNOWN_SITE, code


# --- body sites: meet() -------------------------------------------------------------------------------------


LOWER_LEG, CALF, LOWER_LIMB, THIGH, FOREARM, NECK = (
    "30021000",
    "53840002",
    "61685007",
    "68367000",
    "14975008",
    "45048000",
)
LEFT, RIGHT, BILATERAL, UNILATERAL_LEFT, UNILATERAL_RIGHT = "7771000", "24028007", "51440002", "419161000", "419465000"

MEET_CASES = [
    # (first codings, second codings, meet?, why)
    ((LOWER_LEG,), (CALF,), True, "same region"),
    ((LOWER_LEG,), (LOWER_LIMB,), True, "lower limb encloses lower leg"),
    ((LOWER_LIMB,), (LOWER_LEG,), True, "enclosing works both ways"),
    ((THIGH,), (FOREARM,), False, "different regions"),
    ((THIGH,), ("53120007",), False, "the upper limb does not enclose the thigh"),
    ((LOWER_LEG, LEFT), (LOWER_LEG, RIGHT), False, "left vs right"),
    ((LOWER_LEG, UNILATERAL_LEFT), (LOWER_LEG, UNILATERAL_RIGHT), False, "left vs right, FHIR R4 qualifiers"),
    (("368209003",), ("72098002",), False, "pre-coordinated right vs left upper arm"),
    ((LOWER_LEG, LEFT), (LOWER_LEG,), True, "unknown side meets either side"),
    ((LOWER_LEG, LEFT), (LOWER_LEG, BILATERAL), True, "bilateral meets left"),
    ((LOWER_LEG, LEFT), (LOWER_LIMB, LEFT), True, "same side, enclosing region"),
    ((THIGH, LEFT), (), True, "an undocumented site meets everything"),
    (("38266002",), ("56459004",), True, "the whole body encloses the foot"),
    (("122494005",), (NECK,), True, "the cervical spine is in the neck"),
    (("122496007",), ("77568009",), True, "the back encloses the lumbar spine"),
    (("122496007",), ("122495006",), False, "lumbar vs thoracic spine"),
    (("816094009",), ("51185008",), True, "imaging and clinical chest codes are one region"),
]


@pytest.mark.parametrize(("first", "second", "meets", "why"), MEET_CASES, ids=[c[3] for c in MEET_CASES])
def test_meet(first: tuple[str, ...], second: tuple[str, ...], meets: bool, why: str) -> None:
    a, b = RESOLVER.of_codings(snomed(*first)), RESOLVER.of_codings(snomed(*second))
    assert RESOLVER.meet(a, b) is meets
    assert RESOLVER.meet(b, a) is meets


def test_meet_between_an_icd_code_and_a_treated_site() -> None:
    fracture = RESOLVER.of_icd("S82.201A")  # shaft of right tibia
    assert fracture == Site(frozenset({"lower-leg"}), "right")
    assert RESOLVER.meet(fracture, RESOLVER.of_codings(snomed(LOWER_LEG, RIGHT)))
    assert not RESOLVER.meet(fracture, RESOLVER.of_codings(snomed(LOWER_LEG, LEFT)))
    assert not RESOLVER.meet(fracture, RESOLVER.of_codings(snomed(FOREARM)))
    burn = RESOLVER.of_icd("T20.29XA")  # multiple sites of head, face and neck
    assert RESOLVER.meet(burn, RESOLVER.of_codings(snomed(NECK)))
    assert RESOLVER.meet(burn, RESOLVER.of_codings(snomed("69536005")))
    assert not RESOLVER.meet(burn, RESOLVER.of_codings(snomed("51185008")))
