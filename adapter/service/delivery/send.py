"""One attempt to deliver one Claim version to a FHIR destination, and what its answer means.

The request is idempotent, so sending it again (after a timeout, a dropped connection or a worker
that died mid-send) has the effect of sending it once: ``PUT [base]/Claim/<id>`` carries the whole
version, and ``POST [base]/Claim/$submit`` carries an ``Idempotency-Key`` that is the same for every
send of the same Claim version to the same destination.

Answers: 2xx completes the delivery; 408, 409, 429, 5xx and transport failures (refused,
timed out, connection dropped before the answer) are retried with exponential backoff plus a
random jitter of up to one initial step (tenacity's ``wait_exponential + wait_random``), so
workers that failed together do not retry together, and never sooner than a ``Retry-After``; any other
status is a dead letter, with the response's OperationOutcome kept as the Task's output.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import orjson
from tenacity import RetryCallState, Retrying, wait_exponential, wait_random

from adapter.digest import name_uuid
from adapter.service.delivery.config import FhirDestination
from adapter.service.delivery.outbox import COMPLETED, FAILED, REQUESTED, Claimed, Verdict
from adapter.service.delivery.smart import TokenRefused, TokenSource

RETRYABLE = frozenset({408, 409, 429})
KEY_NAMESPACE = uuid.UUID("6f1c1f64-8a59-4c55-9f5e-2f6f3c1a7d16").bytes
MAX_RESPONSE = 64 * 1024  # an answer larger than this is summarised, not stored
FHIR_JSON = "application/fhir+json"


def idempotency_key(destination: str, claim_id: str, claim_version: int) -> str:
    """The same for every send of one Claim version to one destination."""
    return name_uuid(KEY_NAMESPACE, f"{destination}/Claim/{claim_id}/_history/{claim_version}")


def backoff(destination: FhirDestination, attempt: int) -> float:
    """Seconds before attempt ``attempt + 1``: exponential from initial_seconds, capped, with jitter."""
    policy = destination.retry
    wait = wait_exponential(multiplier=policy.initial_seconds, max=policy.max_seconds) + wait_random(
        0, policy.initial_seconds
    )
    state = RetryCallState(Retrying(), None, (), {})
    state.attempt_number = attempt
    return float(wait(state))


def retry_after(value: str | None, now: datetime) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from now."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class FhirSender:
    """Sends Claim versions to one FHIR destination over one keep-alive HTTP client."""

    def __init__(self, destination: FhirDestination, max_attempts: int) -> None:
        self.destination = destination
        self.max_attempts = destination.retry.max_attempts or max_attempts
        timeout = httpx.Timeout(destination.timeout.read, connect=destination.timeout.connect)
        self.client = httpx.Client(timeout=timeout, follow_redirects=False)
        # a token fetch and the request itself, each at most connect + read
        self.longest_send = timedelta(seconds=2 * (destination.timeout.connect + destination.timeout.read))
        self.tokens = TokenSource(destination.auth, self.client) if destination.auth.kind == "smart" else None

    def close(self) -> None:
        self.client.close()

    def send(self, claimed: Claimed, claim: dict[str, Any]) -> Verdict:
        now = datetime.now(UTC)
        try:
            response = self._request(claimed, claim)
        except httpx.TransportError as error:  # refused, timed out, dropped before the answer: the class only
            return self.later(claimed, now, None, f"no answer: {type(error).__name__}", None)
        except TokenRefused as refused:
            return self.later(claimed, now, None, str(refused), None)
        answer = _answer(response)
        if response.is_success:
            return Verdict(COMPLETED, response.status_code, None, answer)
        reason = f"HTTP {response.status_code}"
        if response.status_code == 401 and self.tokens is not None:
            self.tokens.forget()  # an expired or revoked token: fetch a new one on the next attempt
            return self.later(claimed, now, 401, reason, answer)
        if response.status_code in RETRYABLE or response.status_code >= 500:
            asked = retry_after(response.headers.get("retry-after"), now)
            return self.later(claimed, now, response.status_code, reason, answer, asked)
        return Verdict(FAILED, response.status_code, f"{reason}: refused by the destination", answer)

    def _request(self, claimed: Claimed, claim: dict[str, Any]) -> httpx.Response:
        key = idempotency_key(self.destination.id, claimed.claim_id, claimed.claim_version)
        headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON, "X-Request-Id": key}
        if self.tokens is not None:
            headers["Authorization"] = f"Bearer {self.tokens.token()}"
        body = orjson.dumps(claim)
        base = self.destination.base_url
        if self.destination.method == "put":
            return self.client.put(f"{base}/Claim/{claimed.claim_id}", content=body, headers=headers)
        headers["Idempotency-Key"] = key
        return self.client.post(f"{base}/Claim/$submit", content=body, headers=headers)

    def later(
        self,
        claimed: Claimed,
        now: datetime,
        status: int | None,
        reason: str,
        answer: str | None,
        at_least: float | None = None,
    ) -> Verdict:
        """Retry after the backoff (at least ``at_least`` seconds), or a dead letter when out of attempts."""
        if claimed.attempts >= self.max_attempts:
            return Verdict(FAILED, status, f"{reason}; gave up after {claimed.attempts} attempts", answer)
        delay = max(backoff(self.destination, claimed.attempts), at_least or 0.0)
        return Verdict(REQUESTED, status, reason, answer, now + timedelta(seconds=delay))


def _answer(response: httpx.Response) -> str | None:
    """The response body as JSON text when it is a JSON object of bounded size (the Task's output)."""
    content = response.content
    if not content or len(content) > MAX_RESPONSE:
        return None
    try:
        document = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    return orjson.dumps(document).decode() if isinstance(document, dict) else None
