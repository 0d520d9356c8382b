"""One check of a whole Bundle: msgspec Structs generated from the slim models (intake/slim.py).

At the ``fields`` level the per-entry checks (pydantic, one call per resource) cost more than
the rest of the intake; most Bundles have nothing wrong.  So the intake first converts the whole
document once into Structs that check the same elements (types, required elements, bounds,
FHIR ids and dates; the resource types by a tag on ``resourceType``) and reads the entries
unchecked when that finds nothing; any error, or anything it cannot decide, sends the Bundle
through the per-entry checks, which report exactly what and where.

It is sound only if each Struct accepts no value its pydantic model refuses.  That holds for
documents of plain JSON types (the survey says which: a dict subclass or a Mapping would pass
msgspec where the entry checks refuse it), by each translation below being as strict or stricter:
msgspec's str, int and bool take only those types, its float takes int and float only (pydantic's
lax float takes more), and a dateTime must match a pattern that admits only real calendar dates
(a leap day or a leap second falls back).  tests/test_one_pass.py holds the two verdicts side by side.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterable
from typing import Annotated, Any, Union, get_args, get_origin

import msgspec
from annotated_types import Ge, Gt, Le, MinLen
from pydantic import AfterValidator, BaseModel, Strict
from pydantic.fields import FieldInfo
from pydantic.types import AllowInfNan

from adapter.intake import slim
from adapter.intake.r4_types import R4_RESOURCE_TYPES

# [0-9], not \d: \d takes any Unicode digit, which fromisoformat then refuses
_MONTH_DAY = r"(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
_TIME = r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?(?:Z|[+-](?:(?:0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
# A FHIR dateTime slim._date_time accepts, without year 0, 29 February or a leap second.
REAL_DATE_TIME = re.compile(rf"^(?!0000)[0-9]{{4}}(?:-(?:0[1-9]|1[0-2])|-{_MONTH_DAY}(?:{_TIME})?)?\Z")
_PATTERNS = {slim._date_time: REAL_DATE_TIME.pattern, slim._fhir_id: slim.FHIR_ID.pattern}
_FINITE = {"ge": -sys.float_info.max, "le": sys.float_info.max}  # msgspec refuses nan against these bounds


def _constraints(base: Any, metadata: Iterable[Any]) -> dict[str, Any]:
    """msgspec.Meta arguments for pydantic's metadata of a ``base`` value; one it does not know is an error."""
    meta: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, FieldInfo):  # Field(...) inside Annotated
            meta |= _constraints(base, item.metadata)
        elif isinstance(item, Strict):
            if not item.strict and base is not float:  # msgspec's float takes int and float: fewer than lax
                raise TypeError(f"no strict msgspec form for lax {base!r}")
        elif isinstance(item, AllowInfNan):
            if not item.allow_inf_nan:
                meta = _FINITE | meta
        elif isinstance(item, Ge | Le | Gt | MinLen):
            meta |= {name: getattr(item, name) for name in ("ge", "le", "gt", "min_length") if hasattr(item, name)}
        elif isinstance(item, AfterValidator) and item.func in _PATTERNS:
            meta["pattern"] = _PATTERNS[item.func]
        else:
            raise TypeError(f"no msgspec form for {item!r}")
    return meta


def _type(annotation: Any, metadata: Iterable[Any] = ()) -> Any:
    """The msgspec type of a slim model's field; a nested model by its Struct's name (resolved lazily,
    so Extension can hold Extensions)."""
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *extra = get_args(annotation)
        return _type(base, [*metadata, *extra])
    meta = _constraints(annotation if origin is None else origin, metadata)
    if origin is Union or origin is types.UnionType:
        found: Any = Union[tuple(_type(arg) for arg in get_args(annotation))]  # noqa: UP007
    elif origin is tuple:
        found = tuple[_type(get_args(annotation)[0]), ...]  # type: ignore[misc]
    elif annotation is type(None) or annotation in (str, int, float, bool):
        found = annotation
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found = _struct(annotation)
    else:
        raise TypeError(f"no msgspec form for {annotation!r}")
    return Annotated[found, msgspec.Meta(**meta)] if meta else found


def _fields(model: type[BaseModel]) -> list[tuple[str, Any, Any]]:
    """(name, type, default) of a model's fields; ``resourceType`` is the Structs' tag instead."""
    hooks = model.__pydantic_decorators__
    if (
        model.model_config.get("extra") != "ignore"
        or hooks.validators
        or hooks.field_validators
        or hooks.model_validators
    ):
        raise TypeError(f"{model.__name__} checks more than its fields' types: no msgspec form")
    found = []
    for name, field in model.model_fields.items():
        if name == "resourceType":
            continue
        default = (
            msgspec.field(name=field.alias)
            if field.is_required()
            else msgspec.field(default=field.default, name=field.alias)
        )
        found.append((name, _type(field.annotation, field.metadata), default))
    return found


def _struct(model: type[BaseModel]) -> str:
    """The name (in this module) of the Struct of an element model, made on first use."""
    name = f"_{model.__name__}"
    if name not in globals():
        globals()[name] = None  # a model holding itself (Extension) refers to the name being made
        globals()[name] = msgspec.defstruct(name, _fields(model), module=__name__, gc=False, kw_only=True)
    return name


def _resource(resource_type: str, model: type[BaseModel]) -> Any:
    return msgspec.defstruct(
        f"_{resource_type}Resource",
        _fields(model),
        module=__name__,
        gc=False,
        kw_only=True,
        tag_field="resourceType",
        tag=resource_type,
    )


_ANY_RESOURCE: Any = Union[  # noqa: UP007
    tuple(_resource(t, slim.MODELS.get(t, slim._Resource)) for t in sorted(R4_RESOURCE_TYPES))
]
_ENTRY = msgspec.defstruct(
    "_Entry", [("fullUrl", str | None, None), ("resource", _ANY_RESOURCE | None, None)], module=__name__, gc=False
)
_DOCUMENT = msgspec.defstruct(
    "_Document",
    [*_fields(slim._Resource), ("type", slim.BundleType), ("entry", tuple[_ENTRY, ...], ())],  # type: ignore[valid-type]
    module=__name__,
    gc=False,
    kw_only=True,
)


def document_is_clean(document: dict[str, Any]) -> bool:
    """Whether one conversion of a whole Bundle of plain JSON types finds nothing wrong in the elements
    read: the Bundle shell, each entry's fullUrl and resource, Bundle.type (what intake/fhir.py's
    per-entry checks check).  False sends the Bundle through those checks."""
    try:
        msgspec.convert(document, _DOCUMENT)
    except msgspec.ValidationError:
        return False
    return True
