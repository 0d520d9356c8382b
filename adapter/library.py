"""The embedding API: ``process()`` with the packaged rule data and the THERACLAIM_ settings."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from adapter.pipeline import Result, run
from adapter.rules.catalog import Rules, load_rules
from adapter.service.settings import Settings


@cache
def settings() -> Settings:
    return Settings()


@cache
def default_rules() -> Rules:
    return load_rules(settings().mappings_dir)


def process(
    payload: bytes | str | dict[str, Any],
    *,
    payer: str | None = None,
    now: datetime | None = None,
    rules: Rules | None = None,
    validation: str | None = None,
) -> Result:
    """Convert a FHIR R4 Bundle (JSON bytes, text or a parsed dict) into the output Bundle.

    ``payer`` forces a payer pack; ``now`` fixes Claim.created and the ids (default: the clock);
    ``validation`` is ``fields`` or ``full`` (default: the THERACLAIM_VALIDATION setting).
    Returns the same Bundle and outcome as ``theraclaim convert``.
    """
    config = settings()
    return run(
        payload,
        rules=rules or default_rules(),
        now=now or datetime.now(UTC).replace(microsecond=0),
        payer=payer,
        options=config.claim_options,
        limits=config.limits,
        validation=validation or config.validation,
    )
