"""Search under a tenant (issue 9): matches, _include and
_revinclude only ever hold that organization's resources; without one (an operator), all."""

from __future__ import annotations

from sqlalchemy import update

from adapter.service.search import run_search
from adapter.service.store import resource_current
from tests.api.conftest import Api, entries
from tests.api.test_rest import create


def test_a_tenant_sees_only_its_own_resources_and_includes(api: Api) -> None:
    mine = create(api, "enc-a")
    create(api, "enc-b", patient="pat-2")
    with api.store.transaction() as connection:
        for rtype, rid in (("Claim", mine["id"]), ("Patient", "pat-1")):
            connection.execute(
                update(resource_current)
                .where(resource_current.c.resource_type == rtype, resource_current.c.id == rid)
                .values(tenant="1000000004")
            )

    def search(tenant: str | None, *params: tuple[str, str]) -> dict[str, object]:
        return run_search(api.store, "Claim", list(params), base="", lenient=False, page_size=50, tenant=tenant)

    everything = search(None)
    assert everything["total"] == 2
    own = search(
        "1000000004",
        ("_include", "Claim:patient"),
        ("_include", "Claim:encounter"),
        ("_revinclude", "Provenance:target"),
    )
    assert own["total"] == 1
    assert {(r["resourceType"], r["id"]) for r in entries(own)} == {("Claim", mine["id"]), ("Patient", "pat-1")}
    assert search("9999999999")["total"] == 0 and "entry" not in search("9999999999")
