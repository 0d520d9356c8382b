"""SMART Backend Services against the double's token endpoint (which verifies the assertion)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import ECKey, RSAKey

from adapter.rules.catalog import Rules
from adapter.source.client import SourceClient, SourceConfig, SourceError
from adapter.sourcing import pull_encounter
from tests.source.conftest import Sleeps
from tests.source.double import Double


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _rsa_pem(tmp_path: Path) -> tuple[Path, RSAKey]:
    key = RSAKey.generate_key(2048)
    path = tmp_path / "client.pem"
    path.write_bytes(key.as_pem(private=True))
    return path, key


def _config(double: Double, key: Path) -> SourceConfig:
    return SourceConfig(base=double.base, client_id=double.client_id, private_key=key, timeout=2.0)


def test_a_pull_with_an_rsa_pem_key_asks_one_token(
    double: Double, rules: Rules, sleeps: Sleeps, tmp_path: Path, visit: tuple[dict[str, Any], str]
) -> None:
    path, key = _rsa_pem(tmp_path)
    double.client_public_key = key
    with SourceClient(_config(double, path), sleep=sleeps) as client:
        bundle, _ = pull_encounter(client, rules, encounter_id=visit[1])
    assert len(bundle["entry"]) > 10
    assert double.count("/token") == 1
    assert double.count(".well-known/smart-configuration") == 1


def test_the_token_is_replaced_shortly_before_it_expires(
    double: Double, sleeps: Sleeps, tmp_path: Path, visit: tuple[dict[str, Any], str]
) -> None:
    path, key = _rsa_pem(tmp_path)
    double.client_public_key, double.token_lifetime = key, 300
    clock = Clock()
    with SourceClient(_config(double, path), sleep=sleeps, clock=clock) as client:
        client.read("Encounter", visit[1])
        clock.now += 200
        client.read("Encounter", visit[1])
        assert double.count("/token") == 1
        clock.now += 50  # 250 s: within the last minute of the token's 300
        client.read("Encounter", visit[1])
        assert double.count("/token") == 2


def test_an_ec_p384_jwk_signs_es384(
    double: Double, sleeps: Sleeps, tmp_path: Path, visit: tuple[dict[str, Any], str]
) -> None:
    key = ECKey.generate_key("P-384")
    path = tmp_path / "client.jwk.json"
    path.write_text(json.dumps({"keys": [key.as_dict(private=True)]}))
    double.client_public_key = key
    with SourceClient(_config(double, path), sleep=sleeps) as client:
        assert client.read("Encounter", visit[1]) is not None


def test_a_rejecting_token_endpoint_is_a_clear_error(
    double: Double, sleeps: Sleeps, tmp_path: Path, visit: tuple[dict[str, Any], str]
) -> None:
    path, key = _rsa_pem(tmp_path)
    double.client_public_key, double.reject_token = key, True
    with SourceClient(_config(double, path), sleep=sleeps) as client, pytest.raises(SourceError) as raised:
        client.read("Encounter", visit[1])
    assert raised.value.reason == "source's token endpoint refused the client (401 invalid_client)"
    assert double.count("/token") == 1  # a refusal is not retried


def test_a_key_the_server_does_not_know_is_refused(
    double: Double, sleeps: Sleeps, tmp_path: Path, visit: tuple[dict[str, Any], str]
) -> None:
    path, _ = _rsa_pem(tmp_path)
    double.client_public_key = RSAKey.generate_key(2048)
    with (
        SourceClient(_config(double, path), sleep=sleeps) as client,
        pytest.raises(SourceError, match="refused the client"),
    ):
        client.read("Encounter", visit[1])


def test_without_a_client_a_protected_source_answers_401(
    double: Double, client: SourceClient, visit: tuple[dict[str, Any], str]
) -> None:
    double.client_public_key = RSAKey.generate_key(2048)
    with pytest.raises(SourceError, match="source answered 401"):
        client.read("Encounter", visit[1])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a key", "no usable RSA or EC private key"),
        (json.dumps(RSAKey.generate_key(2048).as_dict(private=False)).encode(), "public key"),
        (ECKey.generate_key("P-256").as_pem(private=True), "P-384"),
    ],
    ids=["garbage", "public-only", "wrong-curve"],
)
def test_an_unusable_key_file_is_named_without_its_content(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "key"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=message):
        SourceClient(SourceConfig(base="http://127.0.0.1:9/fhir", client_id="c", private_key=path))
