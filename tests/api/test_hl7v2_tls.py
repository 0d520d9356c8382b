"""MLLP over TLS with client certificates: a peer with a certificate the client CA signed is served,
a peer without one, or with one from another CA, is not (certificates made with openssl here)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from adapter.rules.catalog import Rules
from tests.api.conftest import make_api
from tests.api.test_hl7v2_mllp import port_of
from tests.hl7v2.messages import visit
from tests.hl7v2.peer import Peer, fields


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(name: str, folder: Path) -> None:
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.pem",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        cwd=folder,
    )


def _signed(name: str, ca: str, folder: Path, extension: str) -> None:
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        f"/CN={name}",
        cwd=folder,
    )
    (folder / f"{name}.ext").write_text(extension)
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        f"{ca}.pem",
        "-CAkey",
        f"{ca}.key",
        "-CAcreateserial",
        "-out",
        f"{name}.pem",
        "-days",
        "2",
        "-extfile",
        f"{name}.ext",
        cwd=folder,
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: the TLS test makes its certificates with it")
    folder = tmp_path_factory.mktemp("pki")
    _ca("ca", folder)
    _ca("other-ca", folder)
    _signed("server", "ca", folder, "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _signed("engine", "ca", folder, "extendedKeyUsage=clientAuth\n")
    _signed("stranger", "other-ca", folder, "extendedKeyUsage=clientAuth\n")
    return folder


def _client(pki: Path, certificate: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if certificate:
        context.load_cert_chain(pki / f"{certificate}.pem", pki / f"{certificate}.key")
    return context


def test_mllp_over_tls_needs_a_client_certificate_of_the_configured_ca(pki: Path, rules: Rules, tmp_path: Path) -> None:
    settings = {
        "mllp_port": 0,
        "mllp_host": "127.0.0.1",
        "mllp_tls_cert": pki / "server.pem",
        "mllp_tls_key": pki / "server.key",
        "mllp_tls_client_ca": pki / "ca.pem",
    }
    with make_api(f"sqlite:///{tmp_path / 'tls.sqlite3'}", rules, **settings) as api:
        port = port_of(api)
        peer = Peer(port, context=_client(pki, "engine"))
        assert fields(peer.exchange(visit("TLS-1")), "MSA")[1:3] == ["AA", "TLS-1"]
        peer.close()
        for certificate in (None, "stranger"):
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                refused = Peer(port, context=_client(pki, certificate))
                try:
                    refused.exchange(visit("TLS-2"))
                finally:
                    refused.close()
        assert len([r for r in api.rows("hl7v2_messages")]) == 1
