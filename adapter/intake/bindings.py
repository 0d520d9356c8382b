"""Required code bindings of every element, from the fhir.resources (R4B) models.

fhir.resources declares each ``code`` element's required value set (``enum_values``) but does
not enforce it; this walks a resource along its model (backbone and data types included, contained
resources by their own type) and reports every code outside its value set at its FHIRPath.
"""

from __future__ import annotations

import typing
from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class

from adapter.errors import Problem

# (JSON name, allowed codes or None, the element's model class or None)
_Field = tuple[str, frozenset[str] | None, Any]


def _model_of(annotation: Any) -> Any:
    """The FHIR model class behind a field annotation (Optional[List[XType]] -> X), if any."""
    for arg in (annotation, *typing.get_args(annotation)):
        getter = getattr(arg, "get_model_klass", None)
        if getter is not None:
            return getter()
        inner = typing.get_args(arg)
        if inner and inner != (annotation,):
            found = _model_of(arg) if arg is not annotation else None
            if found is not None:
                return found
    return None


@cache
def _fields(model: Any) -> tuple[_Field, ...]:
    found = []
    for field in model.model_fields.values():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if not extra.get("element_property") or not field.alias:
            continue
        enum = extra.get("enum_values")
        if enum and any(not isinstance(code, str) or not code.strip("-").replace("-", "").isalnum() for code in enum):
            enum = None  # a list the generator could not read fully (R4B Encounter.status holds "+"): not used
        child = _model_of(field.annotation)
        if child is not None and getattr(child, "__resource_type__", None) == "Resource":
            child = "resource"  # contained / Bundle.entry.resource: dispatch on the value's resourceType
        if enum or child is not None:
            found.append((str(field.alias), frozenset(enum) if enum else None, child))
    return tuple(found)


def _model_for(resource_type: Any) -> Any:
    try:
        return get_fhir_model_class(resource_type) if isinstance(resource_type, str) else None
    except (KeyError, ValueError):
        return None


def _walk(node: Any, model: Any, path: str, problems: list[Problem], depth: int) -> None:
    if not isinstance(node, dict) or depth > 64:
        return
    for name, allowed, child in _fields(model):
        if name not in node:
            continue
        value = node[name]
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            where = f"{path}.{name}[{i}]" if isinstance(value, list) else f"{path}.{name}"
            if allowed is not None:
                if isinstance(item, str) and item not in allowed:
                    problems.append(
                        Problem(
                            "invalid-code",
                            f"{item[:64]!r} is not in the required value set ({', '.join(sorted(allowed))})",
                            where,
                            "code-invalid",
                        )
                    )
            elif child == "resource":
                inner = _model_for(item.get("resourceType")) if isinstance(item, dict) else None
                if inner is not None:
                    _walk(item, inner, where, problems, depth + 1)
            else:
                _walk(item, child, where, problems, depth + 1)


def code_binding_problems(resource: dict[str, Any], path: str) -> list[Problem]:
    """Every ``code`` of the resource (at any depth) outside its required value set."""
    model = _model_for(resource.get("resourceType"))
    problems: list[Problem] = []
    if model is not None:
        _walk(resource, model, path, problems, 0)
    return problems
