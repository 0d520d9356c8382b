"""One settings object for every shell; environment variables use the prefix THERACLAIM_."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapter.intake.wire import Limits
from adapter.rules.claim import ClaimOptions


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="THERACLAIM_", extra="ignore")

    default_payer: str = Field("commercial", description="payer pack used when no pack matches the Coverage")
    place_of_service: str = Field("11", pattern=r"^\d{2}$", description="CMS place-of-service code for every line")
    validation: Literal["fields", "full"] = Field(
        "fields", description="fields: check the elements the rules read; full: fhir.resources on every element"
    )
    mappings_dir: Path | None = Field(None, description="rule data folder (default: the packaged mappings/)")
    max_bytes: int = Field(20 * 1024 * 1024, gt=0, description="largest accepted document, in bytes")
    max_depth: int = Field(64, gt=0, description="deepest accepted JSON nesting")
    max_entries: int = Field(20_000, gt=0, description="most Bundle entries accepted")
    database_url: str = Field(
        "sqlite:///theraclaim.sqlite3",
        description="SQLAlchemy or plain postgresql:// URL; the default is a SQLite file in the working directory",
    )
    host: str = Field("127.0.0.1", description="address `theraclaim serve` listens on")
    port: int = Field(8080, gt=0, lt=65536, description="port `theraclaim serve` listens on")
    workers: int = Field(1, gt=0, description="uvicorn worker processes for `theraclaim serve`")
    request_timeout_seconds: float = Field(
        60.0, gt=0, description="a request still working after this long answers 503 (timeout) and is stopped"
    )
    shutdown_seconds: int = Field(
        5, ge=1, description="at SIGTERM, how long requests in flight may finish before they are stopped (503)"
    )
    page_size: int = Field(50, gt=0, le=1000, description="default _count of a search page")
    public_base_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s?#]+$",
        description="the FHIR base URL clients reach (links, fullUrls, Location); default: the request's own",
    )
    # HL7 v2 door (MLLP listener and POST /hl7v2), issue 13
    mllp_port: int | None = Field(None, ge=0, lt=65536, description="MLLP listener port; unset: no listener")
    mllp_host: str | None = Field(None, description="MLLP listen address (default: the HTTP host)")
    mllp_allow: str = Field(
        "127.0.0.0/8,::1/128", description="comma-separated source networks allowed to connect to the MLLP listener"
    )
    mllp_max_bytes: int = Field(1024 * 1024, gt=0, description="largest accepted HL7 v2 message, in bytes")
    mllp_idle_seconds: float = Field(300.0, gt=0, description="an MLLP connection silent this long is closed")
    mllp_max_connections: int = Field(1000, gt=0, description="most MLLP connections open at once")
    mllp_tls_cert: Path | None = Field(None, description="PEM certificate chain: MLLP over TLS when set")
    mllp_tls_key: Path | None = Field(None, description="PEM private key of mllp_tls_cert")
    mllp_tls_client_ca: Path | None = Field(None, description="PEM CAs: MLLP peers must present a client certificate")
    hl7v2_timezone: str = Field("UTC", description="IANA time zone of HL7 v2 times sent without an offset")
    clients: Path | None = Field(
        None, description="client registry (YAML or JSON); without one, authentication is off and only loopback binds"
    )
    token_lifetime: int = Field(300, gt=0, le=3600, description="lifetime of an access token, in seconds")
    trusted_proxies: str = Field(
        "", description="comma-separated proxy addresses whose X-Forwarded-* headers are honoured (default: none)"
    )
    cors_origins: str = Field("", description="comma-separated origins allowed by CORS (default: CORS off)")
    ssl_certfile: Path | None = Field(None, description="TLS certificate (PEM) for `theraclaim serve`")
    ssl_keyfile: Path | None = Field(None, description="TLS private key (PEM) for `theraclaim serve`")
    ssl_ca_certs: Path | None = Field(None, description="CA bundle to verify client certificates (mutual TLS)")
    # the pull from the EHR (adapter/source/, issue 14)
    source_fhir_base: str | None = Field(None, pattern=r"^https?://", description="the EHR's FHIR base URL")
    source_client_id: str | None = Field(None, description="SMART Backend Services client id at the source")
    source_private_key: Path | None = Field(None, description="PEM or JWK file of the client's private key")
    source_scope: str = Field("system/*.read", description="scopes asked of the source's token endpoint")
    source_timeout: float = Field(10.0, gt=0, description="seconds each request to the source may take")
    source_workers: int = Field(1, ge=0, description="threads per server process working the queue of pulls")
    source_events: str = Field(
        "backport",
        pattern=r"^(backport|azure|google)(,(backport|azure|google))*$",
        description="notification shapes POST /subscriptions/notify accepts: backport, azure, google (comma-separated)",
    )
    source_fill: Literal["never", "missing", "always"] = Field(
        "missing", description="fetch from the source what a pushed Bundle lacks: never, missing categories, always"
    )

    # delivery downstream (adapter/service/delivery/)
    destinations: Path | None = Field(None, description="YAML file of delivery destinations (none: no delivery)")
    delivery_workers: int | None = Field(
        None, ge=0, description="delivery workers `theraclaim serve` runs (default: 1 with destinations; 0: none)"
    )
    delivery_max_attempts: int = Field(10, gt=0, description="sends of one delivery before it is a dead letter")
    delivery_lease_seconds: float = Field(
        120, gt=0, description="how long a claimed delivery stays leased to a worker before another may take it"
    )
    delivery_batch_size: int = Field(8, gt=0, le=1000, description="deliveries a worker leases at once")
    delivery_poll_seconds: float = Field(0.25, gt=0, description="how often an idle delivery worker looks for work")
    max_procedure_minutes: int = Field(
        180, gt=0, le=24 * 60, description="a timed Procedure longer than this holds the Claim for review"
    )

    @property
    def claim_options(self) -> ClaimOptions:
        return ClaimOptions(
            default_payer=self.default_payer,
            place_of_service=self.place_of_service,
            max_procedure_minutes=self.max_procedure_minutes,
        )

    @property
    def limits(self) -> Limits:
        return Limits(max_bytes=self.max_bytes, max_depth=self.max_depth, max_entries=self.max_entries)
