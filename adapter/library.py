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


def as_now(now: datetime | str | None) -> datetime:
    """``now`` for the pipeline: an aware datetime, or an ISO 8601 date-time string with a zone."""
    if now is None:
        return datetime.now(UTC).replace(microsecond=0)
    if isinstance(now, str):
        try:
            parsed = datetime.fromisoformat(now)
        except ValueError:
            raise ValueError(
                f"now must be an ISO 8601 date-time such as 2025-01-15T12:00:00Z, not {now[:40]!r}"
            ) from None
        now = parsed
    elif not isinstance(now, datetime):
        raise TypeError(f"now must be a datetime or an ISO 8601 string, not {type(now).__name__}")
    if now.tzinfo is None:
        raise ValueError("now needs a time zone (e.g. datetime(..., tzinfo=UTC) or '...Z')")
    return now


def process(
    payload: bytes | str | dict[str, Any],
    *,
    payer: str | None = None,
    now: datetime | str | None = None,
    rules: Rules | None = None,
    validation: str | None = None,
) -> Result:
    """Convert a FHIR R4 Bundle (JSON bytes, text or a parsed dict) into the output Bundle.

    ``payer`` forces a payer pack; ``now`` (an aware datetime or an ISO 8601 string with a zone)
    fixes Claim.created and the ids (default: the clock);
    ``validation`` is ``fields`` or ``full`` (default: the THERACLAIM_VALIDATION setting).
    Returns the same Bundle and outcome as ``theraclaim convert``.
    """
    config = settings()
    return run(
        payload,
        rules=rules or default_rules(),
        now=as_now(now),
        payer=payer,
        options=config.claim_options,
        limits=config.limits,
        validation=validation or config.validation,
    )
