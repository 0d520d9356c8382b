"""837P test support: validators, a segment reader, and the demographics the golden inputs lack.

What an 837P needs and the golden inputs do not carry: addresses, tax id, gender, member id.

The golden cases test the claim rules, so their Bundles name patients and providers only as far
as the FHIR Claim needs; the 837P tests add these invented demographics to a copy.
"""

from __future__ import annotations

import copy
import io
import logging
import subprocess
from pathlib import Path
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
                "address",
                [{"line": ["12 Elm St", "Apt 3"], "city": "Springfield", "state": "IL", "postalCode": "62701"}],
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


def validate_x12(paths: list[Path]) -> None:
    """Run ../shared/tools/validate-x12 (pyx12 + implementation-guide checks) on files; fail with its report."""
    from tests.conftest import shared_path  # pytest's; the benchmark imports this module without it

    tool = shared_path("tools", "validate-x12")
    completed = subprocess.run(
        [str(tool), "--quiet", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert completed.returncode == 0, f"validate-x12 rejected the output:\n{completed.stdout}\n{completed.stderr}"


def pyx12_accepts(path: Path) -> tuple[bool, str]:
    """pyx12 (the test extra) on one file: its verdict and the 999 it writes."""
    import pyx12.params
    import pyx12.x12n_document

    logger = logging.getLogger("pyx12")
    logger.propagate = False
    ack = io.StringIO()
    ok = pyx12.x12n_document.x12n_document(
        param=pyx12.params.params(), src_file=str(path), fd_997=ack, fd_html=None, fd_xmldoc=None
    )
    return bool(ok), ack.getvalue()


def segments(content: bytes) -> list[list[str]]:
    """The segments of an interchange this project wrote (``*`` elements, ``~`` terminators)."""
    return [s.strip().split("*") for s in content.decode("ascii").split("~") if s.strip()]
