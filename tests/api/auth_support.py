"""Real keys, registries, client assertions and live servers for the authentication tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Client:
    client_id: str
    key: ECKey | RSAKey
    alg: str

    @classmethod
    def new(cls, client_id: str, alg: str = "ES384") -> Client:
        parameters: Any = {"kid": f"{client_id}-key"}
        key: ECKey | RSAKey = (
            ECKey.generate_key("P-384", parameters=parameters)
            if alg == "ES384"
            else RSAKey.generate_key(2048, parameters=parameters)
        )
        return cls(client_id, key, alg)

    @property
    def kid(self) -> str:
        return str(self.key.kid)

    def public_jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False)]}

    def entry(self, scope: str, organization: str | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {"client_id": self.client_id, "jwks": self.public_jwks(), "scope": scope}
        if organization:
            entry["organization"] = organization
        return entry

    def assertion(self, token_url: str, header: dict[str, Any] | None = None, **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": token_url,
            "exp": now + 240,
            "jti": str(uuid.uuid4()),
        } | claims
        body = {k: v for k, v in body.items() if v is not None}
        protected = {"alg": self.alg, "kid": self.kid, "typ": "JWT"} | (header or {})
        return jwt.encode(protected, body, self.key, algorithms=[self.alg])


def write_registry(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"clients": entries}), encoding="utf-8")
    return path


def token_form(assertion: str, scope: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LiveServer:
    base: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def token_url(self) -> str:
        return f"{self.base}/auth/token"

    def token(self, client: Client, scope: str) -> str:
        response = httpx.post(self.token_url, data=token_form(client.assertion(self.token_url), scope))
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def logs(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextmanager
def live_server(tmp_path: Path, database_url: str, registry: Path | None, **env: str) -> Iterator[LiveServer]:
    """``theraclaim serve`` in a process of its own, on a free loopback port, its log in a file."""
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    environment = {
        **os.environ,
        "THERACLAIM_DATABASE_URL": database_url,
        "THERACLAIM_HOST": "127.0.0.1",
        "THERACLAIM_PORT": str(port),
        **env,
    }
    environment.pop("THERACLAIM_CLIENTS", None)
    if registry is not None:
        environment["THERACLAIM_CLIENTS"] = str(registry)
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "adapter.cli", "serve"], cwd=ROOT, env=environment, stdout=sink, stderr=sink
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base, process, log)
        yield LiveServer(base, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_up(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"the server did not come up: {log.read_text()[-2000:]}")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}


def dumps(document: Any) -> str:
    return json.dumps(document)
