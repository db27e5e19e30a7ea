"""Certificate login through a real nginx (Debian's package), as deployed (deploy/nginx.conf):
a portal server block and a certificate-origin block with ``ssl_verify_client on`` and a CRL,
proxying to the platform served by a real HTTP server thread, and a real HTTPS client.

Runs once per CI run: on SQLite only (the PostgreSQL pass would exercise the same TLS path
again; its teardown of committed rows is what ``committed_db`` already handles, but nothing more
would be learnt). Skips, saying why, when the nginx binary is absent.
"""

import http.cookiejar
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application
from django.db import connection

from esante.accounts.local_pki import LocalPki
from esante.audit.models import AuditEvent

from .conftest import Pki, make_active
from .test_login import bind

pytestmark = pytest.mark.slow

NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
ORIGIN_PATH = "/professionnel/certificat/tls/"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture
def app_port(committed_db: None) -> Iterator[int]:
    """The platform served over plain HTTP on a free port, in a thread, on the test database."""
    server = ThreadedWSGIServer(("127.0.0.1", 0), _QuietHandler, allow_reuse_address=False)
    server.set_app(get_wsgi_application())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


_CONFIG = """
daemon off;
worker_processes 1;
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
    upstream esante {{ server 127.0.0.1:{app}; }}
    server {{
        listen 127.0.0.1:{portal} ssl;
        server_name localhost;
        ssl_certificate {server_cert}; ssl_certificate_key {server_key};
        location = {origin_path} {{ return 404; }}
        location / {{
            proxy_pass http://esante;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-SSL-Client-Cert "";
        }}
    }}
    server {{
        listen 127.0.0.1:{origin} ssl;
        server_name localhost;
        ssl_certificate {server_cert}; ssl_certificate_key {server_key};
        ssl_client_certificate {client_ca}; ssl_crl {crl};
        ssl_verify_client on; ssl_verify_depth 3;
        ssl_session_tickets off; ssl_session_cache off;
        error_page 495 496 = @no_certificate;
        location = {origin_path} {{
            limit_except GET {{ deny all; }}
            proxy_pass http://esante;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;
        }}
        location @no_certificate {{
            rewrite ^ {origin_path} break;
            proxy_pass http://esante;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-SSL-Client-Cert "";
        }}
        location / {{ return 404; }}
    }}
}}
"""


@dataclass
class Nginx:
    portal: str
    origin: str
    server_ca: Path


@pytest.fixture
def nginx(tmp_path: Path, pki: Pki, app_port: int, settings: Any) -> Iterator[Nginx]:
    if NGINX is None:
        pytest.skip("nginx is not installed (Debian package `nginx`; .ci/run installs it)")
    if connection.vendor != "sqlite":
        pytest.skip("the nginx test runs once per CI run, in its SQLite pass")
    directory = tmp_path / "nginx"
    directory.mkdir()
    server_pki = LocalPki(tmp_path / "server-pki")  # the server certificate: localhost, 127.0.0.1
    server_cert, server_key = server_pki.server_certificate()
    portal_port, origin_port = _free_port(), _free_port()
    user = "user root;" if os.geteuid() == 0 else ""  # root's workers would run as nobody
    config = directory / "nginx.conf"
    config.write_text(
        _CONFIG.format(
            user=user,
            dir=directory,
            app=app_port,
            portal=portal_port,
            origin=origin_port,
            server_cert=server_cert,
            server_key=server_key,
            client_ca=tmp_path / "ca.pem",
            crl=tmp_path / "ca.crl",
            origin_path=ORIGIN_PATH,
        )
    )
    settings.ESANTE_TRUSTED_PROXIES = ["127.0.0.1"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.ESANTE_CERTIFICATE_ORIGIN = f"https://localhost:{origin_port}"
    process = subprocess.Popen(
        [NGINX, "-p", str(directory), "-c", str(config), "-e", str(directory / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"nginx did not start: {process.stderr.read().decode() if process.stderr else ''}"
                )
            try:
                socket.create_connection(("127.0.0.1", origin_port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield Nginx(
            f"https://localhost:{portal_port}", f"https://localhost:{origin_port}", server_pki.ca_path
        )
    finally:
        process.terminate()
        process.wait(timeout=10)


class Browser:
    """A real HTTPS client with cookies, following redirects, optionally holding a certificate."""

    def __init__(self, server_ca: Path, client_pem: Path | None = None) -> None:
        context = ssl.create_default_context(cafile=str(server_ca))
        if client_pem is not None:
            context.load_cert_chain(client_pem)
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context),
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
        )

    def open(self, url: str, data: dict[str, str] | None = None, **headers: str) -> tuple[str, str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310 - https only
        with self.opener.open(request, timeout=20) as response:
            return response.geturl(), response.read().decode()

    def connexion(self, portal: str) -> tuple[str, str]:
        """The login page's "Connexion" (certificate) button, with its CSRF token."""
        _, page = self.open(f"{portal}/professionnel/connexion/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token
        return self.open(
            f"{portal}/professionnel/connexion/certificat/",
            {"csrfmiddlewaretoken": token[1]},
            Referer=f"{portal}/professionnel/connexion/",
        )


def _client_pem(pki: Pki, cert: x509.Certificate, path: Path) -> Path:
    key = pki.keys[cert.serial_number]
    path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


def test_certificate_login_through_nginx(nginx: Nginx, pki: Pki, tmp_path: Path) -> None:
    professional = make_active(
        matricule="19800101002", last_name="Schmit", first_name="Luc", email="luc.schmit@pharma.lu"
    )
    cert = bind(pki, professional)
    browser = Browser(nginx.server_ca, _client_pem(pki, cert, tmp_path / "client.pem"))

    final_url, _ = browser.connexion(nginx.portal)

    # /edocuments/ needs a logged-in professional: anyone else is sent to the login page.
    assert final_url == f"{nginx.portal}/edocuments/"
    assert browser.open(f"{nginx.portal}/edocuments/")[0] == f"{nginx.portal}/edocuments/"
    actions = list(
        AuditEvent.objects.filter(action__startswith="accounts.")
        .order_by("sequence")
        .values_list("action", "outcome", "client_address")
    )
    assert actions[-2:] == [
        ("accounts.certificate.present", "success", "127.0.0.1"),
        ("accounts.login.certificate", "success", "127.0.0.1"),
    ]


def test_through_nginx_no_or_revoked_certificate_goes_back_with_a_message(
    nginx: Nginx, pki: Pki, tmp_path: Path
) -> None:
    professional = make_active(
        matricule="19800101002", last_name="Schmit", first_name="Luc", email="luc.schmit@pharma.lu"
    )
    final_url, page = Browser(nginx.server_ca).connexion(nginx.portal)
    assert final_url == f"{nginx.portal}/professionnel/connexion/"
    assert "Aucun certificat LuxTrust n&#x27;a été présenté" in page

    cert = bind(pki, professional)
    pki.revoke(cert)  # nginx reads the CRL at start: reload it, as an operator would
    subprocess.run([str(NGINX), "-p", str(tmp_path / "nginx"), "-c", str(tmp_path / "nginx" / "nginx.conf"),
                    "-s", "reload"], check=True, capture_output=True)  # fmt: skip
    time.sleep(0.5)
    final_url, page = Browser(nginx.server_ca, _client_pem(pki, cert, tmp_path / "c.pem")).connexion(
        nginx.portal
    )
    assert final_url == f"{nginx.portal}/professionnel/connexion/"
    assert "Aucun certificat LuxTrust n&#x27;a été présenté" in page  # refused by nginx already
    assert [e.details["reason"] for e in AuditEvent.objects.filter(action="accounts.login.certificate")] == [
        "no_certificate",
        "no_certificate",
    ]


def test_the_portal_block_does_not_serve_the_origin_path(nginx: Nginx) -> None:
    forged = {"X-SSL-Client-Cert": "-----BEGIN%20CERTIFICATE-----"}
    with pytest.raises(urllib.error.HTTPError) as refused:
        Browser(nginx.server_ca).open(f"{nginx.portal}{ORIGIN_PATH}?demande=x", **forged)
    assert refused.value.code == 404


@pytest.mark.django_db
def test_deploy_configuration_has_the_certificate_origin() -> None:
    """Also makes this module runnable alone: pytest-django sets up the test database only when a
    collected test is marked ``django_db``, and ``committed_db`` relies on that set-up."""
    text = (Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf").read_text()
    for directive in (
        "ssl_verify_client on;",
        "ssl_client_certificate ",
        "ssl_crl ",
        "proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;",
        'proxy_set_header X-SSL-Client-Cert "";',
        f"location = {ORIGIN_PATH}",
        "error_page 495 496 = @no_certificate;",
    ):
        assert directive in text, directive
