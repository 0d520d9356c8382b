"""The pull door of ``$from-encounter``: Parameters ``encounter`` fetches the visit from the source;
a pushed Bundle gets what it lacks filled (``THERACLAIM_SOURCE_FILL``)."""

from __future__ import annotations

import threading
from typing import Any

from adapter.rules.catalog import Rules
from adapter.service.fhirhttp import FhirError
from adapter.service.settings import Settings
from adapter.sourcing import (
    NotOnSource,
    SourceClient,
    SourceError,
    SourceReport,
    fill,
    parse_encounter_url,
    pull_encounter,
    source_config,
)


class PullService:
    def __init__(self, settings: Settings, rules: Rules) -> None:
        self.settings = settings
        self.rules = rules
        self._client: SourceClient | None = None
        self._lock = threading.Lock()

    @property
    def configured(self) -> bool:
        return self.settings.source_fhir_base is not None

    @property
    def fills(self) -> bool:
        """Whether a pushed Bundle is filled from the source (else ``prepare`` returns it as it is)."""
        return self.configured and self.settings.source_fill != "never"

    def client(self) -> SourceClient:
        with self._lock:
            if self._client is None:
                config = source_config(self.settings)
                if config is None:
                    raise FhirError(
                        400,
                        "no-source",
                        "no source FHIR server is configured (THERACLAIM_SOURCE_FHIR_BASE)",
                        "not-supported",
                    )
                try:
                    self._client = SourceClient(config)
                except SourceError as error:
                    raise FhirError(503, "source-misconfigured", error.reason, "exception") from None
            return self._client

    def close(self) -> None:
        """Close the client's connections (the app's shutdown)."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def prepare(
        self, bundle: dict[str, Any] | None, encounter: tuple[int, dict[str, Any]] | None
    ) -> tuple[dict[str, Any], SourceReport | None]:
        """The Bundle to convert and what the source contributed (None: nothing asked of it)."""
        if bundle is not None:
            if not self.fills:
                return bundle, None
            return fill(self.client(), self.rules, bundle, self.settings.source_fill)
        assert encounter is not None
        index, parameter = encounter
        where = f"Parameters.parameter[{index}]"
        encounter_id, identifier = self._target(parameter, where)
        try:
            return pull_encounter(self.client(), self.rules, encounter_id=encounter_id, identifier=identifier)
        except NotOnSource as error:
            raise FhirError(422, "encounter-not-on-source", str(error), "not-found", where) from None
        except SourceError as error:
            raise FhirError(
                503, "source-unavailable", f"the Encounter could not be fetched: {error.reason}", "transient"
            ) from None

    def _target(self, parameter: dict[str, Any], where: str) -> tuple[str | None, str | None]:
        reference = parameter.get("valueReference")
        identifier = parameter.get("valueIdentifier")
        if isinstance(reference, dict) and isinstance(reference.get("reference"), str):
            value = reference["reference"]
            absolute = parse_encounter_url(value)
            if absolute is not None:
                base = (self.settings.source_fhir_base or "").rstrip("/")
                if absolute[0] != base:
                    raise FhirError(
                        422,
                        "encounter-not-on-source",
                        "the Encounter is not on the configured source",
                        "invalid",
                        where,
                    )
                return absolute[1], None
            if value.startswith("Encounter/") and parse_encounter_url(f"http://x/{value}") is not None:
                return value.removeprefix("Encounter/").split("/")[0], None
        if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
            system = identifier.get("system")
            return None, f"{system}|{identifier['value']}" if isinstance(system, str) else identifier["value"]
        raise FhirError(
            400,
            "invalid-parameter",
            "encounter must be a valueReference to Encounter/<id> on the source or a valueIdentifier",
            "invalid",
            where,
        )
