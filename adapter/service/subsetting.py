"""``_summary`` and ``_elements``: the element sets of each type, from the fhir.resources (R4B) models."""

from __future__ import annotations

from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}


@cache
def _elements(resource_type: str) -> dict[str, dict[str, Any]]:
    """Each element's metadata by JSON name; ``required`` marks the mandatory ones (min 1)."""
    fields = get_fhir_model_class(resource_type).model_fields
    found: dict[str, dict[str, Any]] = {}
    for field in fields.values():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get("element_property") and field.alias:
            found[str(field.alias)] = dict(extra) | {"required": field.is_required() or extra.get("element_required")}
    return found


def _stem(resource_type: str, name: str) -> str:
    """``identifiedDateTime`` -> ``identified`` for a choice element, else the name itself."""
    extra = _elements(resource_type).get(name, {})
    return str(extra.get("one_of_many") or name)


def element_names(resource_type: str) -> set[str]:
    """The names ``_elements`` accepts: every element, a choice element also by its stem."""
    names = set(_elements(resource_type))
    return names | {_stem(resource_type, n) for n in names}


def _mandatory(resource_type: str) -> set[str]:
    found = _elements(resource_type).items()
    return {n for n, extra in found if extra["required"]} | {
        str(extra["one_of_many"]) for _, extra in found if extra.get("one_of_many_required")
    }


def _summary(resource_type: str) -> set[str]:
    return {n for n, extra in _elements(resource_type).items() if extra.get("summary_element_property")}


def _tagged(resource: dict[str, Any]) -> dict[str, Any]:
    meta = dict(resource.get("meta", {}))
    meta["tag"] = [*meta.get("tag", []), SUBSETTED]
    return resource | {"meta": meta}


def _keep(resource: dict[str, Any], names: set[str]) -> dict[str, Any]:
    rtype = str(resource["resourceType"])
    kept = {
        key: value
        for key, value in resource.items()
        if key in ("resourceType", "id", "meta") or {key.lstrip("_"), _stem(rtype, key.lstrip("_"))} & names
    }
    return _tagged(kept)


def subset(resource: dict[str, Any], summary: str | None, elements: list[str] | None) -> dict[str, Any]:
    """The resource as ``_summary`` (true / data) or ``_elements`` asks, tagged SUBSETTED when cut.

    Mandatory elements stay in either case (R4 search §3.1.1.5.8/9), so the result is still valid.
    """
    rtype = str(resource["resourceType"])
    if elements is not None:
        return _keep(resource, set(elements) | _mandatory(rtype))
    if summary == "true":
        return _keep(resource, _summary(rtype) | _mandatory(rtype))
    if summary == "data" and "text" in resource:
        return _tagged({k: v for k, v in resource.items() if k != "text"})
    return resource
