"""Real FHIR clients nobody here wrote, against a real uvicorn on loopback (issue 11): fhirpy and
fhirclient (Python), for search, paging, include, conditional create, transaction and operations."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from fhirclient import client as smart_client
from fhirclient.models.claim import Claim as SmartClaim
from fhirclient.models.patient import Patient as SmartPatient
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome, ResourceNotFound

from adapter.rules.catalog import Rules
from adapter.service.api import create_app
from adapter.service.settings import Settings
from tests import bundle_builder as bb
from tests.api.conftest import visit_for
from tests.api.live_server import live_server


@pytest.fixture
def base_url(database_url: str, rules: Rules) -> Iterator[str]:
    app = create_app(Settings(database_url=database_url, page_size=2), rules)
    try:
        with live_server(app) as url:
            yield url
    finally:
        app.state.store.engine.dispose()


def push(fhirpy: SyncFHIRClient, document: dict[str, Any], **headers: str) -> tuple[Any, int]:
    return fhirpy._do_request(  # fhirpy has no call for a type-level operation with headers
        "post", "Claim/$from-encounter", data=document, extra_headers=headers, returning_status=True
    )


def test_fhirpy_search_paging_include_conditional_create_and_transaction(base_url: str) -> None:
    fhir = SyncFHIRClient(base_url)
    for n in range(5):
        # one date each: visits of one patient on one day make the day's one Claim (issue 12)
        _, status = push(
            fhir, visit_for(f"enc-{n}", patient="pat-2" if n == 4 else "pat-1", day=f"2025-01-{n + 1:02d}")
        )
        assert status == 201
    claims = fhir.resources("Claim")
    # fhirpy's count() adds _totalMethod (an Aidbox parameter): refused strictly, ignored leniently
    with pytest.raises(OperationOutcome):
        claims.count()
    lenient = SyncFHIRClient(base_url, extra_headers={"Prefer": "handling=lenient"}).resources("Claim")
    assert lenient.count() == 5
    every = claims.fetch_all()  # follows the next links (page size 2)
    assert len(every) == 5 and len({c.id for c in every}) == 5
    mine = claims.search(patient="pat-1").fetch_all()
    assert len(mine) == 4
    assert lenient.search(patient="Patient/pat-2").count() == 1
    assert lenient.search(status="active,draft").count() == 5
    assert lenient.search(_lastUpdated="ge2000").count() == 5
    with_patient = claims.search(patient="pat-2").include("Claim", "patient").fetch_raw()
    kinds = {e.resource.resourceType for e in with_patient.entry}
    assert kinds == {"Claim", "Patient"}
    patient = fhir.reference("Patient", "pat-1").to_resource()
    assert patient.id == "pat-1"
    claim = every[0]
    assert claim["patient"].to_resource().resourceType == "Patient"  # every stored reference resolves
    # conditional create: If-None-Exist on the operation
    existing, status = push(fhir, visit_for("enc-0", minutes=45), **{"If-None-Exist": "encounter=enc-0"})
    assert status == 200 and existing.resourceType == "Bundle"
    with pytest.raises(OperationOutcome):
        push(fhir, visit_for("enc-9"), **{"If-None-Exist": "bogus=1"})
    # a transaction with urn:uuid POST entries
    transaction = bb.urn_transaction(e["resource"] for e in visit_for("enc-t", patient="pat-3")["entry"])
    answer = fhir.execute("", method="post", data=transaction)
    assert answer.type == "transaction-response"
    assert lenient.count() == 6  # POST entries get server ids: the Claim names the new Patient
    with pytest.raises(ResourceNotFound):
        fhir.reference("Claim", "no-such-claim").to_resource()
    with pytest.raises(OperationOutcome):
        claims.search(subject="pat-1").fetch()


def test_fhirclient_reads_the_capability_statement_searches_and_pages(base_url: str) -> None:
    fhir = SyncFHIRClient(base_url)
    for n in range(3):
        assert push(fhir, visit_for(f"enc-{n}", day=f"2025-01-{n + 1:02d}"))[1] == 201
    smart = smart_client.FHIRClient(settings={"app_id": "theraclaim-tests", "api_base": base_url + "/"})
    smart.prepare()  # reads /metadata into its CapabilityStatement model
    assert smart.server.capabilityStatement.fhirVersion == "4.0.1"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        found = list(SmartClaim.where(struct={"patient": "pat-1"}).perform_resources_iter(smart.server))
    assert len(found) == 3 and all(isinstance(c, SmartClaim) for c in found)  # parsed by its R4 models
    search = SmartClaim.where(struct={"patient": "pat-1"}).include("patient")
    resources = list(search.perform_resources_iter(smart.server))
    assert {type(r).__name__ for r in resources} == {"Claim", "Patient"}
    patient = SmartPatient.read("pat-1", smart.server)
    assert patient.id == "pat-1"
    claim = SmartClaim.read(found[0].id, smart.server)
    assert claim.patient.reference == "Patient/pat-1"
    validated = smart.server.post_json("Claim/$validate", {"resourceType": "Claim", "status": "nonsense"})
    assert validated.json()["resourceType"] == "OperationOutcome"
