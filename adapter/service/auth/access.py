"""A write on behalf of a Principal: scope and tenant checks per resource, and its AuditEvent.

Handed by a door (``$from-encounter``, transactions, HL7 v2, ...) to the service that writes, so
the checks run inside the write's transaction and the AuditEvent commits with the data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import orjson

from adapter.service.auth.audit import AuditContext, AuditRecorder
from adapter.service.auth.policy import Principal
from adapter.service.fhirhttp import FhirError
from adapter.service.store import PutBatch, Stored, audit_event


@dataclass
class WriteAccess:
    principal: Principal
    context: AuditContext
    recorder: AuditRecorder

    def check_billing(self, billing_npis: Iterable[str | None]) -> None:
        """A tenant client pushes only visits billed by its own Organization (403 before any write)."""
        organization = self.principal.organization
        for npi in billing_npis:
            if not self.principal.may_write_for(npi):
                found = f"NPI {npi}" if npi else "no NPI identifier"
                raise FhirError(
                    403,
                    "foreign-organization",
                    f"client {self.principal.client_id} acts only for the billing Organization with NPI "
                    f"{organization}; this visit's billing Organization (Encounter.serviceProvider) has {found}",
                    "forbidden",
                )

    def guard(self, resource_type: str, exists: bool, existing_tenant: str | None, changes: bool) -> None:
        """Store.put's WriteGuard: another tenant's resource is never touched; writes need c / u."""
        if exists and not self.principal.sees(existing_tenant):
            raise FhirError(
                403,
                "foreign-organization",
                f"a {resource_type} this request would write belongs to another organization; nothing was stored",
                "forbidden",
            )
        if changes:
            self.principal.require(resource_type, "u" if exists else "c")

    def tenant_of(self, resource: dict[str, Any], npi_by_claim: dict[str, str | None]) -> str | None:
        """A tenant client's writes are always its own organization's."""
        return self.principal.organization or tenant_for(resource, npi_by_claim)

    def committed(self, batch: PutBatch, stored: list[Stored], status: int) -> None:
        """Record the AuditEvent in the write's transaction (with the batch's next flush), naming every
        version written; the request counts as audited once that transaction commits.  The context
        itself is left as it was: a retried transaction names only its own versions."""
        written = [f"{s.resource['resourceType']}/{s.resource['id']}/_history/{s.version_id}" for s in stored]
        event_context = replace(self.context, entities=self.context.entities + written)
        batch.add(audit_event, self.recorder.row(event_context, status))


def tenant_for(resource: dict[str, Any], npi_by_claim: dict[str, str | None]) -> str | None:
    """The tenant of a written resource: its Claim's billing NPI (a DetectedIssue or Provenance
    takes the NPI of the Claim it names; an input the visit's NPI when the visit has only one)."""
    if resource["resourceType"] == "Claim":
        return npi_by_claim.get(resource["id"])
    text = orjson.dumps(resource).decode()
    for claim_id, npi in npi_by_claim.items():
        if claim_id in text:
            return npi
    distinct = set(npi_by_claim.values())
    return distinct.pop() if len(distinct) == 1 else None
