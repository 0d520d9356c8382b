"""The HL7 v2 field mappings as data: ``mappings/hl7v2/*.yaml`` (documented field by field there)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import ValidationError

from adapter.errors import Problem, RuleDataError
from adapter.rules.catalog import default_mappings_dir
from adapter.rules.rulefile import RuleFile

MAPPING_DIR = "hl7v2"


class Hl7v2Mapping(RuleFile):
    kind: Literal["hl7v2-mapping"]
    source: str
    messages: list[str]
    versions: list[str]
    processing_ids: list[str]
    charsets: dict[str, str]
    identifier_system_base: str
    visit_number_system: str
    insurance_company_system: str
    default_procedure_system: str
    charge_types: list[str]
    coding_systems: dict[str, str]
    provider_types: dict[str, tuple[int, int]]  # segment -> (person XCN field, provider type CWE field)
    patient_class: dict[str, str]
    sex: dict[str, str]
    diagnosis_type: dict[str, str]
    plan_type: dict[str, str]


def load_mapping(mappings_dir: Path | None = None) -> Hl7v2Mapping:
    """``mappings/hl7v2/dft.yaml`` under ``mappings_dir`` (default: the packaged data), checked."""
    path = (mappings_dir or default_mappings_dir()) / MAPPING_DIR / "dft.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return Hl7v2Mapping.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise RuleDataError([Problem("rule-data-invalid", f"{path}: {exc}", str(path), "exception")]) from exc
    except ValidationError as exc:
        problems = [
            Problem("rule-data-invalid", f"{path}: {'.'.join(map(str, e['loc']))}: {e['msg']}", str(path), "exception")
            for e in exc.errors()
        ]
        raise RuleDataError(problems) from exc


@cache
def packaged_mapping() -> Hl7v2Mapping:
    return load_mapping()


def export_schema(target: Path) -> Path:
    path = target / "hl7v2-mapping.schema.json"
    path.write_text(json.dumps(Hl7v2Mapping.model_json_schema(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
