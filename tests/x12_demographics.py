"""What an 837P needs and the golden inputs do not carry: addresses, tax id, gender, member id.

The golden cases test the claim rules, so their Bundles name patients and providers only as far
as the FHIR Claim needs; the 837P tests add these invented demographics to a copy.
"""

from __future__ import annotations

import copy
from typing import Any

EIN = "urn:oid:2.16.840.1.113883.4.4"
NUCC = "http://nucc.org/provider-taxonomy"


def with_demographics(bundle: dict[str, Any]) -> dict[str, Any]:
    found = copy.deepcopy(bundle)
    for entry in found.get("entry", []):
        resource = entry["resource"]
        kind = resource["resourceType"]
        if kind == "Patient":
            resource.setdefault("gender", "female")
            resource.setdefault("birthDate", "1950-02-03")
            resource.setdefault(
                "address", [{"line": ["12 Elm St", "Apt 3"], "city": "Springfield", "state": "IL", "postalCode": "62701"}]
            )
        elif kind == "Organization" and any("npi" in i.get("system", "") for i in resource.get("identifier", [])):
            resource["identifier"] = [*resource["identifier"], {"system": EIN, "value": "12-3456789"}]
            resource.setdefault(
                "address", [{"line": ["100 Main St"], "city": "Springfield", "state": "IL", "postalCode": "62701-1234"}]
            )
            resource.setdefault("type", [{"coding": [{"system": NUCC, "code": "261QP2000X"}]}])
        elif kind == "Coverage":
            resource.setdefault("subscriberId", "1EG4TE5MK72")
    return found
