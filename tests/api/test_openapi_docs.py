"""The OpenAPI document describes FHIR JSON, the error responses and the search parameters; /docs
serves an API page whose assets come from this server (issue 11)."""

from __future__ import annotations

import re

from tests.api.conftest import Api


def test_openapi_documents_fhir_json_errors_and_search_parameters(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    fhir_operations = [
        (path, method, operation)
        for path, operations in document["paths"].items()
        # $export-x12 answers X12; SMART discovery is plain JSON by its spec
        if path.startswith("/fhir") and not path.endswith("$export-x12") and "/.well-known/" not in path
        for method, operation in operations.items()
    ]
    assert fhir_operations
    for path, method, operation in fhir_operations:
        responses = operation["responses"]
        assert "application/fhir+json" in responses["200"]["content"], (path, method)
        assert "application/json" not in str(responses), (path, method)
        assert any(code.startswith("4") for code in responses), (path, method)
        body = operation.get("requestBody", {}).get("content", {})
        assert not body or set(body) <= {"application/fhir+json", "application/x-www-form-urlencoded"}, (path, body)
    search = document["paths"]["/fhir/{resource_type}"]["get"]
    names = {p["name"] for p in search["parameters"] if p["in"] == "query"}
    assert {"patient", "encounter", "status", "_lastUpdated", "_include", "_revinclude", "_sort"} <= names
    assert search["x-fhir-interaction"] == "search-type" and search["x-smart-scope"] == "s"
    assert "HTTPValidationError" not in str(document)
    x12 = document["paths"]["/fhir/Claim/{claim_id}/$export-x12"]["get"]  # answers X12; its errors are FHIR
    assert list(x12["responses"]["200"]["content"]) == ["application/EDI-X12"] and x12["x-smart-scope"] == "r"
    assert all("application/fhir+json" in r["content"] for code, r in x12["responses"].items() if code != "200")


def test_the_api_page_uses_packaged_assets_only(api: Api) -> None:
    page = api.client.get("/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    urls = re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]+)['"]""", page.text) + re.findall(
        r"""url:\s*['"]([^'"]+)['"]""", page.text
    )
    assert urls
    assert all(u.startswith("/") for u in urls), f"every asset is served here: {urls}"
    for url in urls:
        assert api.client.get(url).status_code == 200, url
