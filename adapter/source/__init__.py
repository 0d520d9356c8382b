"""The one httpx seam to the EHR's FHIR server: SMART Backend Services auth, retries, paging.

It returns Bundles (dicts) and never imports the rules: what it fetches goes through intake
exactly as a push would.
"""

from adapter.source.client import SourceClient, SourceConfig, SourceError

__all__ = ["SourceClient", "SourceConfig", "SourceError"]
