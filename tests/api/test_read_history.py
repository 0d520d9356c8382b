"""Conditional read (304), history at type and instance level with _since and _count, FHIR JSON
aliases in _format, no redirect on a trailing slash, links from the configured public base (issue 11)."""

from __future__ import annotations

from datetime import datetime, timedelta
from email.utils import format_datetime

import pytest

from adapter.rules.catalog import Rules
from tests.api.conftest import Api, assert_outcome, entries, make_api, visit_for
from tests.api.test_rest import create


def test_conditional_read_answers_304(api: Api) -> None:
    claim = create(api, "enc-a")
    path = f"/fhir/Claim/{claim['id']}"
    read = api.client.get(path)
    etag, modified = read.headers["etag"], read.headers["last-modified"]
    for headers in ({"If-None-Match": etag}, {"If-None-Match": '"1"'}, {"If-Modified-Since": modified}):
        response = api.client.get(path, headers=headers)
        assert response.status_code == 304, headers
        assert response.content == b"" and response.headers["etag"] == etag
    assert api.client.get(path, headers={"If-None-Match": 'W/"7"'}).status_code == 200
    earlier = format_datetime(datetime.fromisoformat(claim["meta"]["lastUpdated"]) - timedelta(days=1), usegmt=True)
    assert api.client.get(path, headers={"If-Modified-Since": earlier}).status_code == 200
    assert api.client.get(path, headers={"If-Modified-Since": "not a date"}).status_code == 200
    assert api.client.get(f"{path}/_history/1", headers={"If-None-Match": etag}).status_code == 304


def test_history_at_type_and_instance_level_with_since_and_count(api: Api) -> None:
    a = create(api, "enc-a")
    b = create(api, "enc-b", day="2025-01-10")  # (on the same day it would join enc-a's Claim)
    assert api.push(visit_for("enc-a", minutes=45)).status_code == 201
    every = api.client.get("/fhir/Claim/_history").json()
    assert every["type"] == "history"
    versions = [(e["resource"]["id"], e["resource"]["meta"]["versionId"]) for e in every["entry"]]
    assert versions == [(a["id"], "2"), (b["id"], "1"), (a["id"], "1")]
    assert len(api.client.get("/fhir/Claim/_history", params={"_count": 1}).json()["entry"]) == 1
    since = b["meta"]["lastUpdated"]
    recent = api.client.get("/fhir/Claim/_history", params={"_since": since}).json()
    assert [(e["resource"]["id"], e["resource"]["meta"]["versionId"]) for e in recent["entry"]] == versions[:2]
    one = api.client.get(f"/fhir/Claim/{a['id']}/_history", params={"_since": since}).json()
    assert [e["resource"]["meta"]["versionId"] for e in one["entry"]] == ["2"]
    future = api.client.get("/fhir/Claim/_history", params={"_since": "2999-01-01T00:00:00Z"}).json()
    assert "entry" not in future
    for params in ({"_since": "2025"}, {"_count": "x"}, {"bogus": "1"}):
        assert_outcome(api.client.get("/fhir/Claim/_history", params=params), 400)


@pytest.mark.parametrize(
    "alias", ["json", "application/json", "application/fhir+json", "application/json+fhir", "text/json"]
)
def test_every_fhir_json_alias_in_format(api: Api, alias: str) -> None:
    assert api.client.get("/fhir/metadata", params={"_format": alias}).status_code == 200
    if "/" in alias:  # "json" is a _format shorthand, not a media type
        assert api.client.get("/fhir/metadata", headers={"Accept": alias}).status_code == 200


def test_a_trailing_slash_is_the_same_resource_not_a_redirect(api: Api) -> None:
    claim = create(api, "enc-a")
    for path in ("/fhir/metadata/", "/fhir/Claim/", f"/fhir/Claim/{claim['id']}/"):
        response = api.client.get(path, follow_redirects=False)
        assert response.status_code == 200, path


def test_links_use_the_configured_public_base(database_url: str, rules: Rules) -> None:
    base = "https://claims.example.org/fhir"
    with make_api(database_url, rules, public_base_url=base) as api:
        response = api.push(visit_for("enc-a"))
        assert response.headers["location"].startswith(f"{base}/Claim/")
        bundle = api.client.get("/fhir/Claim", params={"_count": 1}).json()
        assert all(link["url"].startswith(f"{base}/Claim") for link in bundle["link"])
        assert all(e["fullUrl"].startswith(f"{base}/Claim/") for e in bundle["entry"])
        assert entries(bundle, "Claim")
