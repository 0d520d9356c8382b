"""A Synthea patient (with a synthetic 97124 visit and a Coverage) on the FHIR server double."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from adapter.rules.catalog import Rules
from adapter.source.client import SourceClient, SourceConfig
from tests.source.double import Double, serve
from tests.test_synthea_screening import load, with_massage

PATIENT = "Mafalda_Turcotte"  # anticoagulant and platelet history: the screening has work to do


@pytest.fixture(scope="session")
def visit() -> tuple[dict[str, Any], str]:
    """The complete push (a transaction Bundle) and the id of its massage Encounter."""
    document, encounter = with_massage(load(PATIENT))
    return document, encounter["resource"]["id"]


@pytest.fixture
def double(visit: tuple[dict[str, Any], str]) -> Iterator[Double]:
    made = Double()
    made.seed_transaction(visit[0])
    with serve(made) as running:
        yield running


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(double: Double, sleeps: Sleeps) -> Iterator[SourceClient]:
    with SourceClient(SourceConfig(base=double.base, timeout=2.0), sleep=sleeps) as made:
        yield made


def server_view(double: Double) -> dict[str, Any]:
    """The complete push as the source holds it: every resource, Type/id references."""
    entries = [{"fullUrl": f"{double.base}/{t}/{i}", "resource": r} for (t, i), r in double.resources.items()]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def of_type(bundle: dict[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type]


__all__ = ["Rules", "Sleeps", "of_type", "server_view"]
