"""The demo's local CA and PKCS#12 files, and the platform's own mutual-TLS certificate origin."""

import io
import os
import socket
import ssl
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from django.urls import reverse

from esante.accounts import certificates, tls_origin
from esante.accounts.demo import demo_certificates_load, demo_professionals_load
from esante.accounts.local_pki import P12_PASSWORD, LocalPki
from esante.accounts.models import Certificate
from esante.audit.models import AuditEvent
from esante.demo.serving import origin_start, origin_stop

from .conftest import ORIGIN_PATH, to_origin


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_origin_path_matches_the_url_configuration() -> None:
    assert reverse("accounts:certificate_origin") == ORIGIN_PATH == tls_origin.ORIGIN_PATH


@pytest.mark.django_db
def test_demo_certificates(tmp_path: Path, settings: Any, client: Client) -> None:
    demo_professionals_load()
    shown, password = demo_certificates_load(tmp_path)
    assert password == P12_PASSWORD
    assert [c.bound for c in shown] == [True, True, True, False]
    assert Certificate.objects.count() == 3
    first = pkcs12.load_pkcs12(shown[0].p12_path.read_bytes(), password.encode())
    assert first.key is not None and first.cert is not None
    assert (shown[0].p12_path.stat().st_mode & 0o777) == 0o600
    assert (tmp_path / "ca-key.pem").stat().st_mode & 0o077 == 0
    # Idempotent: the same files, nothing bound twice.
    again, _ = demo_certificates_load(tmp_path)
    assert [c.p12_path.read_bytes() for c in again] == [c.p12_path.read_bytes() for c in shown]
    assert Certificate.objects.count() == 3
    assert AuditEvent.objects.filter(action="accounts.demo.certificate").count() == 3
    # The local CA is trusted only where ESANTE_LOCAL_CA names it (the demo).
    pem = first.cert.certificate.public_bytes(serialization.Encoding.PEM).decode()
    settings.ESANTE_TRUSTED_CA, settings.ESANTE_CRL, settings.ESANTE_LOCAL_CA = "", [], ""
    with pytest.raises(certificates.CertificateRefused):
        certificates.certificate_verify(pem)
    settings.ESANTE_LOCAL_CA = str(tmp_path / "ca.pem")
    verified = certificates.certificate_verify(pem)
    assert verified.surname == "Kremer" and verified.serial_number_attribute.endswith(shown[0].matricule)


def test_origin_config_adds_the_local_ca_to_the_trusted_bundle(
    tmp_path: Path, settings: Any, pki: Any
) -> None:
    settings.DATA_DIR = tmp_path
    settings.ESANTE_LOCAL_CA = str(tmp_path / "certificats" / "ca.pem")
    origin = tls_origin.certificate_origin_config(host="127.0.0.1", port=8443)
    assert origin.url == "https://127.0.0.1:8443"
    bundle = x509.load_pem_x509_certificates(Path(origin.client_ca_file).read_bytes())
    assert [ca.subject for ca in bundle] == [
        pki.ca.cert.subject,
        LocalPki(tmp_path / "certificats").ca.cert.subject,
    ]
    server = x509.load_pem_x509_certificate(Path(origin.certfile).read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)


def test_origin_outside_the_demo_needs_its_configuration(settings: Any, tmp_path: Path) -> None:
    from django.core.exceptions import ImproperlyConfigured

    settings.DATA_DIR, settings.ESANTE_LOCAL_CA = tmp_path, ""
    settings.ESANTE_CERTIFICATE_TLS_CERT = settings.ESANTE_CERTIFICATE_TLS_KEY = ""
    with pytest.raises(ImproperlyConfigured, match="ESANTE_CERTIFICATE_TLS_CERT"):
        tls_origin.certificate_origin_config(host="127.0.0.1", port=8443)


def _tls_pair(pki: LocalPki, client_p12: Path | None) -> tuple[ssl.SSLSocket, ssl.SSLSocket]:
    """A real TLS connection over a socket pair: (server side, client side)."""
    cert_file, key_file = pki.server_certificate()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca_path))
    server_ctx.load_cert_chain(cert_file, key_file)
    server_ctx.verify_mode = ssl.CERT_OPTIONAL
    client_ctx = ssl.create_default_context(cafile=str(pki.ca_path))
    if client_p12 is not None:
        loaded = pkcs12.load_pkcs12(client_p12.read_bytes(), P12_PASSWORD.encode())
        assert loaded.key is not None and loaded.cert is not None
        pem_path = client_p12.with_suffix(".pem")
        pem_path.write_bytes(
            loaded.cert.certificate.public_bytes(serialization.Encoding.PEM)
            + loaded.key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        client_ctx.load_cert_chain(pem_path)
    left, right = socket.socketpair()
    server = server_ctx.wrap_socket(left, server_side=True, do_handshake_on_connect=False)
    client = client_ctx.wrap_socket(right, server_hostname="localhost", do_handshake_on_connect=False)
    thread = threading.Thread(target=client.do_handshake)
    thread.start()
    server.do_handshake()
    thread.join()
    return server, client


@pytest.fixture
def demo_pki(tmp_path: Path, settings: Any, db: Any) -> Iterator[LocalPki]:
    settings.ESANTE_TRUSTED_CA, settings.ESANTE_CRL = "", []
    settings.ESANTE_LOCAL_CA = str(tmp_path / "ca.pem")
    settings.ESANTE_TRUSTED_PROXIES = ["127.0.0.1"]
    yield LocalPki(tmp_path)
    certificates._configured.cache_clear()


def _call_origin(environ: dict[str, Any]) -> tuple[str, dict[str, str]]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], *args: Any) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    # As Django's test client does: the request must not close the test's database connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        b"".join(tls_origin.application(environ, start_response))
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return seen["status"], seen["headers"]


def _environ(path: str, query: str, sock: Any, **extra: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8443",
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "gunicorn.socket": sock,
        **extra,
    }


@pytest.mark.django_db
def test_own_tls_origin_reads_the_certificate_from_the_connection(
    demo_pki: LocalPki, tmp_path: Path, client: Client
) -> None:
    demo_professionals_load()
    shown, _ = demo_certificates_load(tmp_path)
    server, peer = _tls_pair(demo_pki, shown[0].p12_path)
    try:
        query = urllib.parse.urlsplit(to_origin(client, "/professionnel/connexion/certificat/")).query
        status, headers = _call_origin(_environ(ORIGIN_PATH, query, server))
    finally:
        server.close()
        peer.close()
    assert status.startswith("302")
    client.get(headers["Location"])
    assert client.session["_auth_user_id"] == str(
        Certificate.objects.filter(professional__matricule=shown[0].matricule).get().professional.user_id
    )


@pytest.mark.django_db
def test_own_tls_origin_ignores_forged_headers_and_serves_one_path(
    demo_pki: LocalPki, tmp_path: Path, client: Client
) -> None:
    demo_professionals_load()
    shown, _ = demo_certificates_load(tmp_path)
    forged = pkcs12.load_pkcs12(shown[0].p12_path.read_bytes(), P12_PASSWORD.encode()).cert
    assert forged is not None
    header = urllib.parse.quote(forged.certificate.public_bytes(serialization.Encoding.PEM).decode())
    server, peer = _tls_pair(demo_pki, None)  # no client certificate on the connection
    try:
        query = urllib.parse.urlsplit(to_origin(client, "/professionnel/connexion/certificat/")).query
        status, headers = _call_origin(
            _environ(
                ORIGIN_PATH, query, server, HTTP_X_SSL_CLIENT_CERT=header, HTTP_X_FORWARDED_FOR="10.9.9.9"
            )
        )
        assert _call_origin(_environ("/edocuments/", "", server))[0].startswith("404")
    finally:
        server.close()
        peer.close()
    client.get(headers["Location"])
    assert "_auth_user_id" not in client.session
    event = AuditEvent.objects.get(action="accounts.login.certificate")
    assert (event.details["reason"], event.client_address) == ("no_certificate", "127.0.0.1")


@pytest.mark.slow
def test_origin_process_asks_for_and_checks_client_certificates(tmp_path: Path, settings: Any) -> None:
    """The demo's origin as it runs: gunicorn over TLS in a child process."""
    settings.DATA_DIR = tmp_path
    settings.ESANTE_TRUSTED_CA = ""
    settings.ESANTE_LOCAL_CA = str(tmp_path / "certificats" / "ca.pem")
    port = _free_port()
    origin = tls_origin.certificate_origin_config(host="127.0.0.1", port=port)
    pki = LocalPki(tmp_path / "certificats")
    p12, _ = pki.professional_p12(matricule="19780412101", last_name="Kremer", first_name="Claudine")
    stranger = LocalPki(tmp_path / "ailleurs")
    other_p12, _ = stranger.professional_p12(
        matricule="19780412101", last_name="Kremer", first_name="Claudine"
    )
    env_backup = dict(os.environ)
    os.environ.update(ESANTE_DATA_DIR=str(tmp_path / "origin-data"), ESANTE_DEBUG="1")
    try:
        process = origin_start(origin)
    finally:
        os.environ.clear()
        os.environ.update(env_backup)

    def get(client_p12: Path | None) -> str:
        context = ssl.create_default_context(cafile=str(pki.ca_path))
        if client_p12 is not None:
            loaded = pkcs12.load_pkcs12(client_p12.read_bytes(), P12_PASSWORD.encode())
            assert loaded.key is not None and loaded.cert is not None
            pem = client_p12.with_suffix(".pem")
            pem.write_bytes(
                loaded.cert.certificate.public_bytes(serialization.Encoding.PEM)
                + loaded.key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            context.load_cert_chain(pem)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET /ailleurs/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                return tls.recv(200).decode(errors="replace")

    try:
        assert get(p12).startswith("HTTP/1.1 404")  # handshake accepted; only the origin path is served
        assert get(None).startswith("HTTP/1.1 404")  # no certificate: the application will say so
        with pytest.raises((ssl.SSLError, ConnectionError)):
            get(other_p12)  # a certificate of another CA: the handshake fails
    finally:
        origin_stop(process)
    assert process.returncode is not None
