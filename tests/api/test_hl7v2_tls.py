"""MLLP over TLS with client certificates: a peer with a certificate the client CA signed is served,
a peer without one, or with one from another CA, is not (certificates made with openssl here)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from adapter.rules.catalog import Rules
from adapter.service.hl7v2.mllp import certificate_name
from tests.api.auth_support import Client, write_registry
from tests.api.conftest import make_api
from tests.api.test_hl7v2_mllp import port_of
from tests.hl7v2.messages import visit
from tests.hl7v2.peer import Peer, fields, frame


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
    _signed("unregistered", "ca", folder, "extendedKeyUsage=clientAuth\n")
    _signed("tenant", "ca", folder, "extendedKeyUsage=clientAuth\n")
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


def _tls(pki: Path) -> dict[str, object]:
    return {
        "mllp_port": 0,
        "mllp_host": "127.0.0.1",
        "mllp_tls_cert": pki / "server.pem",
        "mllp_tls_key": pki / "server.key",
        "mllp_tls_client_ca": pki / "ca.pem",
    }


def _refused(port: int, context: ssl.SSLContext | None) -> bool:
    try:
        peer = Peer(port, context=context)
    except (ssl.SSLError, OSError):
        return True
    try:
        peer.send(frame(visit("NOT-YOURS")))
        return peer.closed_by_listener()
    except (ssl.SSLError, OSError):
        return True
    finally:
        peer.close()


def test_with_a_client_registry_an_mllp_peer_is_a_registered_client(pki: Path, rules: Rules, tmp_path: Path) -> None:
    """The one auth policy: the certificate's commonName must be a registered client_id; its scopes and
    organization apply as over HTTP, and every message leaves an AuditEvent naming the client."""
    registry = write_registry(
        tmp_path / "clients.yaml",
        [Client.new("engine").entry("system/*.cruds"), Client.new("tenant").entry("system/*.cruds", "1234567893")],
    )
    with make_api(f"sqlite:///{tmp_path / 'registry.sqlite3'}", rules, clients=registry, **_tls(pki)) as api:
        port = port_of(api)
        peer = Peer(port, context=_client(pki, "engine"))
        assert fields(peer.exchange(visit("REG-1")), "MSA")[1:3] == ["AA", "REG-1"]
        assert fields(peer.exchange(visit("REG-1")), "MSA")[1] == "AA"  # the resend: no write, still audited
        peer.close()
        tenant = Peer(port, context=_client(pki, "tenant"))  # a tenant writes only its own organization's visits
        refused = tenant.exchange(visit("REG-2", visit_number="V-REG-2"))
        assert fields(refused, "MSA")[1] == "AE" and "foreign-organization" in refused
        own = visit("REG-3", visit_number="V-REG-3", extra={4: "CLINIC^1234567893^NPI"})  # MSH-4: its billing NPI
        # its own patient and therapist: the ones "engine" stored belong to no tenant, so not to this one
        own = own.replace(b"MRN123", b"MRN777").replace(b"1245319599", b"1679576722")
        accepted = tenant.exchange(own)
        assert fields(accepted, "MSA")[1] == "AA", accepted
        tenant.close()
        assert _refused(port, _client(pki, "unregistered"))  # signed by the CA, but no registered client
        audit = api.rows("audit_event")
        assert [r["agent"] for r in audit].count("engine") == 2 and [r["agent"] for r in audit].count("tenant") == 2
        assert len(api.rows("hl7v2_messages")) == 2


def test_with_a_client_registry_plain_mllp_is_refused(rules: Rules, tmp_path: Path) -> None:
    registry = write_registry(tmp_path / "clients.yaml", [Client.new("engine").entry("system/*.cruds")])
    settings = {"mllp_port": 0, "mllp_host": "127.0.0.1", "clients": registry}
    with make_api(f"sqlite:///{tmp_path / 'plain.sqlite3'}", rules, **settings) as api:
        assert _refused(port_of(api), None)
        assert api.rows("resource_current") == [] and api.rows("hl7v2_messages") == []


def test_a_certificate_names_its_client_by_its_one_common_name() -> None:
    """The shape ssl.getpeercert() returns: the subject's one commonName is the client_id; two
    commonNames are ambiguous, and a subjectAltName alone names no client."""
    one = {"subject": ((("organizationName", "Clinic"),), (("commonName", "engine"),))}
    two = {"subject": ((("commonName", "engine"),), (("commonName", "admin"),))}
    alt_only = {"subject": ((("organizationName", "Clinic"),),), "subjectAltName": (("DNS", "engine"),)}
    assert certificate_name(one) == "engine"
    assert certificate_name(two) is None and certificate_name(alt_only) is None and certificate_name(None) is None
