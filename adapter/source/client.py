"""SourceClient: every request to the EHR's FHIR server goes through here.

Each call has a timeout; connect errors, timeouts, dropped connections, 429 and 5xx are retried
with exponential backoff and jitter (tenacity), waiting what ``Retry-After`` asks when the
source says; a circuit breaker stops calls to a source that keeps failing; searches follow the
Bundle's ``next`` links (on the source's own origin only, so the token never leaves it).
Nothing here logs or raises with a URL, a query or a body: they can hold patient data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from adapter.source.auth import KeyFileError, TokenCache, load_signing_key, token_request
from adapter.source.breaker import CircuitBreaker

FHIR_JSON = "application/fhir+json"
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)  # safe to retry even for a POST


class SourceError(Exception):
    """The source could not give what was asked; ``reason`` is safe to show (no URL, no data)."""

    def __init__(self, reason: str, status: int | None = None, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retryable = retryable
        self.retry_after: float | None = None


@dataclass(frozen=True)
class SourceConfig:
    base: str
    client_id: str | None = None
    private_key: Path | None = None
    scope: str = "system/*.read"
    timeout: float = 10.0
    attempts: int = 4
    backoff_max: float = 10.0
    retry_after_max: float = 60.0
    breaker_threshold: int = 5
    breaker_reset: float = 30.0
    max_pages: int = 500

    @property
    def root(self) -> str:
        return self.base.rstrip("/")


@dataclass(frozen=True, slots=True)
class Fetched:
    """Where a resource came from: its URL on the source and the version read."""

    resource_type: str
    id: str
    url: str
    version: str | None

    @property
    def versioned_url(self) -> str:
        return f"{self.url}/_history/{self.version}" if self.version else self.url


@dataclass
class Capability:
    includes: dict[str, set[str]] = field(default_factory=dict)
    revincludes: dict[str, set[str]] = field(default_factory=dict)


class SourceClient:
    def __init__(
        self,
        config: SourceConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._http = httpx.Client(
            timeout=httpx.Timeout(config.timeout),
            transport=transport,
            follow_redirects=False,
            headers={"Accept": FHIR_JSON},
        )
        self._sleep = sleep
        self._clock = clock
        self.breaker = CircuitBreaker(config.breaker_threshold, config.breaker_reset)
        self._tokens = TokenCache(clock)
        self._signing = None
        if config.client_id is not None:
            if config.private_key is None:
                raise SourceError("a source client id needs a private key (THERACLAIM_SOURCE_PRIVATE_KEY)")
            try:
                self._signing = load_signing_key(config.private_key)
            except KeyFileError as error:
                raise SourceError(str(error)) from None
        self._backoff = wait_random_exponential(multiplier=0.2, max=config.backoff_max)
        self._token_endpoint: str | None = None
        self._capability: Capability | None = None

    def __enter__(self) -> SourceClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- reads and searches ------------------------------------------------------------------

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        """One resource, or None when the source says 404 / 410."""
        response = self.request("GET", f"{self.config.root}/{resource_type}/{resource_id}", missing_ok=True)
        if response.status_code in (404, 410):
            return None
        resource = _json(response)
        if resource.get("resourceType") != resource_type:
            raise SourceError(f"source answered a {resource.get('resourceType')!r} for a {resource_type} read")
        return resource

    def search(self, resource_type: str, params: dict[str, str] | list[tuple[str, str]]) -> list[dict[str, Any]]:
        """Every resource of every page of a search (matches and includes)."""
        return list(self.search_pages(resource_type, params))

    def search_pages(
        self, resource_type: str, params: dict[str, str] | list[tuple[str, str]]
    ) -> Iterator[dict[str, Any]]:
        url: str | None = f"{self.config.root}/{resource_type}"
        seen: set[str] = set()
        query: Any = params
        for _ in range(self.config.max_pages):
            assert url is not None
            bundle = _json(self.request("GET", url, params=query))
            if bundle.get("resourceType") != "Bundle":
                raise SourceError(f"source answered a {bundle.get('resourceType')!r} to a {resource_type} search")
            for entry in bundle.get("entry") or []:
                resource = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(resource, dict) and resource.get("resourceType") != "OperationOutcome":
                    yield resource
            url = _next_link(bundle)
            if url is None:
                return
            if not self.on_source(url):
                raise SourceError("source's next link points outside the source; paging stopped")
            if url in seen:
                raise SourceError("source's next link repeats a page; paging stopped")
            seen.add(url)
            query = None
        raise SourceError(f"source search of {resource_type} has more than {self.config.max_pages} pages")

    def fetched(self, resource: dict[str, Any]) -> Fetched:
        rtype, rid = resource["resourceType"], str(resource.get("id"))
        meta = resource.get("meta")
        version = meta.get("versionId") if isinstance(meta, dict) else None
        return Fetched(rtype, rid, f"{self.config.root}/{rtype}/{rid}", str(version) if version else None)

    def on_source(self, url: str) -> bool:
        base, other = urlsplit(self.config.root), urlsplit(url)
        return (base.scheme, base.netloc) == (other.scheme, other.netloc) and other.path.startswith(base.path)

    # -- capability ----------------------------------------------------------------------------

    def capability(self) -> Capability:
        if self._capability is None:
            statement = _json(self.request("GET", f"{self.config.root}/metadata"))
            capability = Capability()
            for rest in statement.get("rest") or []:
                for resource in (rest.get("resource") or []) if isinstance(rest, dict) else []:
                    if isinstance(resource, dict) and isinstance(resource.get("type"), str):
                        rtype = resource["type"]
                        capability.includes.setdefault(rtype, set()).update(resource.get("searchInclude") or [])
                        capability.revincludes.setdefault(rtype, set()).update(resource.get("searchRevInclude") or [])
            self._capability = capability
        return self._capability

    def offers_include(self, resource_type: str, include: str) -> bool:
        return include in self.capability().includes.get(resource_type, set())

    def offers_revinclude(self, resource_type: str, revinclude: str) -> bool:
        return revinclude in self.capability().revincludes.get(resource_type, set())

    # -- the one request path --------------------------------------------------------------------

    def request(
        self, method: str, url: str, *, missing_ok: bool = False, authenticate: bool = True, **kwargs: Any
    ) -> httpx.Response:
        """Send with auth (unless ``authenticate`` is false), retries and the breaker; a non-2xx
        answer (but 404/410 when ``missing_ok``) raises SourceError("source answered <status>")."""
        if authenticate and not self.on_source(url):
            raise SourceError("refusing to send the source's credentials to another origin")
        response = self._retrying_send(method, url, authenticate, kwargs)
        if response.status_code == 401 and authenticate and self._signing is not None:  # revoked early: retry once
            self._tokens.forget()
            response = self._retrying_send(method, url, authenticate, kwargs)
        if response.is_success or (missing_ok and response.status_code in (404, 410)):
            return response
        raise SourceError(f"source answered {response.status_code}", response.status_code)

    def _retrying(self) -> Retrying:
        return Retrying(
            stop=stop_after_attempt(self.config.attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, SourceError) and e.retryable),
            sleep=self._sleep,
            reraise=True,
        )

    def _retrying_send(self, method: str, url: str, auth: bool, kwargs: dict[str, Any]) -> httpx.Response:
        idempotent = method in ("GET", "HEAD", "PUT", "DELETE")
        for attempt in self._retrying():
            with attempt:
                return self._send_once(method, url, auth, idempotent, kwargs)
        raise AssertionError("unreachable")

    def download(self, url: str, path: Path, *, authenticate: bool, headers: dict[str, str]) -> tuple[int, int]:
        """Stream a GET into ``path`` (bytes, lines), with the same retries; a failed attempt
        starts the file again.  The body is never held in memory whole."""
        if authenticate and not self.on_source(url):
            raise SourceError("refusing to send the source's credentials to another origin")
        for attempt in self._retrying():
            with attempt:
                return self._download_once(url, path, authenticate, headers)
        raise AssertionError("unreachable")

    def _download_once(self, url: str, path: Path, auth: bool, headers: dict[str, str]) -> tuple[int, int]:
        request_headers = self._headers(auth, headers)
        size = lines = 0
        last = b"\n"
        try:
            with self._http.stream("GET", url, headers=request_headers) as response:
                self._check(response, idempotent=True)
                if not response.is_success:
                    raise SourceError(f"source answered {response.status_code}", response.status_code)
                with path.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
                        size += len(chunk)
                        lines += chunk.count(b"\n")
                        last = chunk[-1:] or last
        except httpx.TransportError as error:
            self.breaker.failure()
            raise SourceError(f"source did not answer ({type(error).__name__})", retryable=True) from None
        return size, lines + (0 if last == b"\n" else 1)

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, SourceError) and error.retry_after is not None:
            return error.retry_after
        backoff: float = self._backoff(state)  # "full jitter": uniform in [0, 0.2 * 2^n], capped
        return backoff

    def _headers(self, auth: bool, extra: dict[str, str] | None) -> dict[str, str]:
        if not self.breaker.allow():
            raise SourceError("source is failing repeatedly (circuit open); not asked")
        headers = dict(extra or {})
        if auth and self._signing is not None:
            headers["Authorization"] = f"Bearer {self._access_token()}"
        return headers

    def _send_once(self, method: str, url: str, auth: bool, idempotent: bool, kwargs: dict[str, Any]) -> httpx.Response:
        headers = self._headers(auth, kwargs.get("headers"))
        try:
            response = self._http.request(method, url, **{**kwargs, "headers": headers})
        except httpx.TransportError as error:
            self.breaker.failure()
            raise SourceError(
                f"source did not answer ({type(error).__name__})",
                retryable=idempotent or isinstance(error, NOT_SENT),
            ) from None
        self._check(response, idempotent)
        return response

    def _check(self, response: httpx.Response, idempotent: bool) -> None:
        """Raise a (retryable) SourceError for 429 and 5xx answers; count them in the breaker."""
        if response.status_code not in RETRIED_STATUSES:
            self.breaker.success()
            return
        if response.status_code != 429:  # 429 is the source pacing us, not failing
            self.breaker.failure()
        refused = SourceError(
            f"source answered {response.status_code}",
            response.status_code,
            retryable=idempotent or response.status_code in (429, 503),
        )
        refused.retry_after = retry_after(response.headers.get("retry-after"), self._clock())
        if refused.retry_after is not None and refused.retry_after > self.config.retry_after_max:
            refused.retryable = False
        response.close()
        raise refused

    # -- SMART Backend Services ------------------------------------------------------------------

    def _access_token(self) -> str:
        return self._tokens.get(self._fetch_token)

    def token_endpoint(self) -> str:
        if self._token_endpoint is None:
            response = self._retrying_send("GET", f"{self.config.root}/.well-known/smart-configuration", False, {})
            if not response.is_success:
                raise SourceError(f"source's smart-configuration answered {response.status_code}", response.status_code)
            endpoint = _json(response).get("token_endpoint")
            if not isinstance(endpoint, str) or urlsplit(endpoint).scheme not in ("https", "http"):
                raise SourceError("source's smart-configuration names no token_endpoint")
            self._token_endpoint = endpoint
        return self._token_endpoint

    def _fetch_token(self) -> tuple[str, int]:
        assert self._signing is not None and self.config.client_id is not None
        endpoint = self.token_endpoint()
        form = token_request(self._signing, self.config.client_id, endpoint, self.config.scope, self._clock())
        response = self._retrying_send("POST", endpoint, False, {"data": form})
        if not response.is_success:
            raise SourceError(
                f"source's token endpoint refused the client ({response.status_code} {_oauth_error(response)})",
                response.status_code,
            )
        body = _json(response)
        token, expires_in = body.get("access_token"), body.get("expires_in", 300)
        if not isinstance(token, str) or not token or not isinstance(expires_in, int):
            raise SourceError("source's token endpoint answered without an access_token")
        return token, expires_in


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP-date)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(parsedate_to_datetime(value).timestamp() - now, 0.0)
    except (TypeError, ValueError):
        return None


def _next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return str(link["url"])
    return None


def _oauth_error(response: httpx.Response) -> str:
    """The OAuth error code (a short token; never a description that might echo input)."""
    try:
        code = orjson.loads(response.content).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return "no error code"
    return code if isinstance(code, str) and code.replace("_", "").isalpha() and len(code) < 40 else "no error code"


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        document = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise SourceError("source answered something that is not JSON") from None
    if not isinstance(document, dict):
        raise SourceError("source answered JSON that is not a resource")
    return document
