"""The ``fields`` validation level: typed checks of exactly the elements theraclaim reads.

fhir.resources validates every element of every resource and costs ~100x the adapter's own
work (issue 6).  Like HAPI FHIR's lenient parsing, the default level checks only what the rules
read, strictly: types, required elements, date and date-time formats (and real calendar dates),
and the required code bindings.  Everything else in a resource is carried, not validated;
``full`` (fhir.resources) remains available on demand.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import cache
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, TypeAdapter

from adapter.intake.r4_types import R4_RESOURCE_TYPES

# [0-9], not \d (any Unicode digit), and \Z, not $ (which also matches before a final newline)
_DATE_TIME = re.compile(
    r"^[0-9]{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)"
    r"(\.[0-9]{1,9})?(Z|[+-]((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?\Z"
)
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}\Z")
BundleType = Literal["batch", "collection", "message", "searchset", "transaction"]
BUNDLE_TYPES: tuple[str, ...] = get_args(BundleType)


def _date_time(value: str) -> str:
    """A FHIR dateTime: the R4 pattern, and a real calendar date (2025-02-30 is not one)."""
    if not _DATE_TIME.match(value):
        raise ValueError("not a FHIR dateTime (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+zz:zz)")
    try:
        if "T" in value:
            datetime.fromisoformat(value.replace(":60", ":59"))
        elif len(value) == 10:
            date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"not a real date: {exc}") from exc
    return value


def _fhir_id(value: str) -> str:
    if not FHIR_ID.match(value):
        raise ValueError("not a FHIR id ([A-Za-z0-9-.]{1,64})")
    return value


DateTime = Annotated[StrictStr, AfterValidator(_date_time)]
Id = Annotated[StrictStr, AfterValidator(_fhir_id)]
Decimal = Annotated[float, Field(strict=False, allow_inf_nan=False)]
# An amount in cents must stay an exact, finite number: no therapy amount is anywhere near 10^12 USD.
Amount = Annotated[float, Field(strict=False, allow_inf_nan=False, ge=-1e12, le=1e12)]


class _Element(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Coding(_Element):
    system: StrictStr | None = None
    code: StrictStr | None = None
    display: StrictStr | None = None


class CodeableConcept(_Element):
    coding: tuple[Coding, ...] = ()
    text: StrictStr | None = None


class Identifier(_Element):
    system: StrictStr | None = None
    value: StrictStr | None = None


class Reference(_Element):
    reference: StrictStr | None = None
    identifier: Identifier | None = None
    display: StrictStr | None = None


class Period(_Element):
    start: DateTime | None = None
    end: DateTime | None = None


class Quantity(_Element):
    value: Decimal | None = None
    unit: StrictStr | None = None
    system: StrictStr | None = None
    code: StrictStr | None = None


class Money(_Element):
    value: Amount | None = None
    currency: StrictStr | None = None


class Extension(_Element):
    url: StrictStr
    valueCode: StrictStr | None = None
    valueString: StrictStr | None = None
    valueMoney: Money | None = None
    valueCodeableConcept: CodeableConcept | None = None
    extension: tuple[Extension, ...] = ()


class _Resource(_Element):
    resourceType: StrictStr
    id: Id | None = None
    extension: tuple[Extension, ...] = ()


class Performer(_Element):
    actor: Reference


class FocalDevice(_Element):
    manipulated: Reference


class Procedure(_Resource):
    status: StrictStr  # its required binding is checked in validation.py for both levels
    statusReason: CodeableConcept | None = None
    code: CodeableConcept | None = None
    subject: Reference
    encounter: Reference | None = None
    performedDateTime: DateTime | None = None
    performedPeriod: Period | None = None
    performer: tuple[Performer, ...] = ()
    reasonReference: tuple[Reference, ...] = ()
    bodySite: tuple[CodeableConcept, ...] = ()
    basedOn: tuple[Reference, ...] = ()
    usedCode: tuple[CodeableConcept, ...] = ()
    focalDevice: tuple[FocalDevice, ...] = ()


class EncounterDiagnosis(_Element):
    condition: Reference
    rank: Annotated[StrictInt, Field(gt=0)] | None = None


class Encounter(_Resource):
    status: StrictStr  # its required binding is checked in validation.py for both levels
    class_: Coding = Field(alias="class")  # 1..1 in R4; not read, but its absence makes the Encounter invalid
    identifier: tuple[Identifier, ...] = ()
    period: Period | None = None
    subject: Reference | None = None
    serviceProvider: Reference | None = None
    diagnosis: tuple[EncounterDiagnosis, ...] = ()
    reasonReference: tuple[Reference, ...] = ()
    basedOn: tuple[Reference, ...] = ()


class Condition(_Resource):
    clinicalStatus: CodeableConcept | None = None
    verificationStatus: CodeableConcept | None = None
    category: tuple[CodeableConcept, ...] = ()
    code: CodeableConcept | None = None
    bodySite: tuple[CodeableConcept, ...] = ()
    subject: Reference
    onsetDateTime: DateTime | None = None
    onsetPeriod: Period | None = None
    abatementDateTime: DateTime | None = None
    abatementPeriod: Period | None = None


class Coverage(_Resource):
    status: StrictStr  # its required binding is checked in validation.py for both levels
    type: CodeableConcept | None = None
    beneficiary: Reference
    payor: Annotated[tuple[Reference, ...], Field(min_length=1)]
    order: Annotated[StrictInt, Field(gt=0)] | None = None


class _MedicationUse(_Resource):
    subject: Reference
    medicationCodeableConcept: CodeableConcept | None = None
    medicationReference: Reference | None = None


class MedicationStatement(_MedicationUse):
    status: StrictStr  # its required binding is checked in validation.py for both levels
    effectiveDateTime: DateTime | None = None
    effectivePeriod: Period | None = None


class MedicationRequest(_MedicationUse):
    status: StrictStr  # its required binding is checked in validation.py for both levels
    authoredOn: DateTime | None = None


class Ingredient(_Element):
    itemCodeableConcept: CodeableConcept | None = None


class Medication(_Resource):
    code: CodeableConcept | None = None
    ingredient: tuple[Ingredient, ...] = ()


class Observation(_Resource):
    status: StrictStr  # its required binding is checked in validation.py for both levels
    code: CodeableConcept
    subject: Reference | None = None
    effectiveDateTime: DateTime | None = None
    effectivePeriod: Period | None = None
    effectiveInstant: DateTime | None = None
    valueQuantity: Quantity | None = None


class Qualification(_Element):
    code: CodeableConcept


class Practitioner(_Resource):
    identifier: tuple[Identifier, ...] = ()
    qualification: tuple[Qualification, ...] = ()


class PractitionerRole(_Resource):
    practitioner: Reference | None = None
    code: tuple[CodeableConcept, ...] = ()
    specialty: tuple[CodeableConcept, ...] = ()


class ServiceRequest(_Resource):
    status: StrictStr  # its required binding is checked in validation.py for both levels
    intent: StrictStr
    category: tuple[CodeableConcept, ...] = ()
    subject: Reference
    occurrenceDateTime: DateTime | None = None
    occurrencePeriod: Period | None = None


class CarePlan(_Resource):
    status: StrictStr  # its required binding is checked in validation.py for both levels
    intent: StrictStr
    category: tuple[CodeableConcept, ...] = ()
    subject: Reference
    period: Period | None = None


class Device(_Resource):
    type: CodeableConcept | None = None


class Organization(_Resource):
    identifier: tuple[Identifier, ...] = ()
    active: StrictBool | None = None


MODELS: dict[str, type[_Resource]] = {
    model.__name__: model
    for model in (
        Procedure,
        Encounter,
        Condition,
        Coverage,
        MedicationStatement,
        MedicationRequest,
        Medication,
        Observation,
        Practitioner,
        PractitionerRole,
        ServiceRequest,
        CarePlan,
        Device,
        Organization,
    )
}


@cache
def adapter_for(resource_type: str) -> TypeAdapter[Any]:
    return TypeAdapter(MODELS.get(resource_type, _Resource))


def slim_errors(resource: dict[str, Any]) -> list[tuple[tuple[int | str, ...], str]] | None:
    """(location, message) of every problem in the elements read; None for an unknown resource type."""
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or resource_type not in R4_RESOURCE_TYPES:
        return None
    try:
        adapter_for(resource_type).validate_python(resource)
    except ValueError as exc:  # pydantic.ValidationError
        return [(tuple(e["loc"]), e["msg"]) for e in exc.errors()]  # type: ignore[attr-defined]
    return []
