"""Clearinghouse profiles: who sends and receives the 837P, as data in mappings/clearinghouses/.

A profile names the interchange's sender and receiver (ISA05-08, GS02-03), the 1000A submitter
and 1000B receiver, the usage indicator ISA15 (``T`` test, ``P`` production), and the payer ids
the clearinghouse uses (2010BB NM109) for each payer pack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, ValidationError

from adapter.errors import Problem, RuleDataError
from adapter.rules.catalog import default_mappings_dir
from adapter.rules.rulefile import RuleFile, Strict

# upper-case X12 text without the delimiters * : ^ ~ (see text.py)
X12_ID = r"^[A-Z0-9 !\"&'()+,\-./;?=%@\[\]_{}\\|<>#$]+$"
Id15 = Annotated[str, Field(min_length=1, max_length=15, pattern=X12_ID)]
Name60 = Annotated[str, Field(min_length=1, max_length=60, pattern=X12_ID)]
Id80 = Annotated[str, Field(min_length=1, max_length=80, pattern=X12_ID)]


class Interchange(Strict):
    sender_qualifier: Literal["01", "14", "20", "27", "28", "29", "30", "33", "ZZ"]
    sender_id: Id15
    receiver_qualifier: Literal["01", "14", "20", "27", "28", "29", "30", "33", "ZZ"]
    receiver_id: Id15
    acknowledgment_requested: Literal["0", "1"] = Field(description="ISA14: 1 asks for a TA1")
    application_sender: Id15
    application_receiver: Id15


class Submitter(Strict):
    name: Name60
    id: Id80
    contact: Name60
    phone: Annotated[str, Field(pattern=r"^\d{10}$")]


class Receiver(Strict):
    name: Name60
    id: Id80


class PayerId(Strict):
    name: Name60
    id: Id80


class ClearinghouseProfile(RuleFile):
    kind: Literal["clearinghouse-profile"]
    name: str
    usage_indicator: Literal["T", "P"] = Field(description="ISA15: T test data, P production data")
    interchange: Interchange
    submitter: Submitter
    receiver: Receiver
    payers: dict[str, PayerId] = Field(default_factory=dict, description="payer pack id -> 2010BB payer")


def profiles_dir(mappings_dir: Path | None = None) -> Path:
    return (mappings_dir or default_mappings_dir()) / "clearinghouses"


def load_profiles(mappings_dir: Path | None = None) -> dict[str, ClearinghouseProfile]:
    """Every profile under mappings/clearinghouses/, checked; RuleDataError names the broken file."""
    found: dict[str, ClearinghouseProfile] = {}
    for path in sorted(profiles_dir(mappings_dir).glob("*.yaml")):
        where = str(path)
        try:
            profile = ClearinghouseProfile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError) as exc:
            raise RuleDataError([Problem("rule-data-unreadable", f"{where}: {exc}", where, "exception")]) from exc
        except ValidationError as exc:
            raise RuleDataError(
                [
                    Problem(
                        "rule-data-invalid", f"{where}: {'.'.join(map(str, e['loc']))}: {e['msg']}", where, "exception"
                    )
                    for e in exc.errors()
                ]
            ) from exc
        if profile.id in found:
            raise RuleDataError([Problem("rule-data-invalid", f"clearinghouse profile {profile.id} defined twice")])
        found[profile.id] = profile
    return found


def load_profile(profile_id: str | None = None, mappings_dir: Path | None = None) -> ClearinghouseProfile:
    """One profile by id; without an id, the only one there is."""
    profiles = load_profiles(mappings_dir)
    if profile_id is None and len(profiles) == 1:
        return next(iter(profiles.values()))
    if profile_id not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        wanted = "a --profile" if profile_id is None else f"profile {profile_id!r}"
        raise RuleDataError([Problem("unknown-profile", f"{wanted} is needed; clearinghouse profiles: {known}")])
    return profiles[profile_id]
