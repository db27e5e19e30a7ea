"""The certificate origin served by the platform itself (``esante demo``, ``esante serve`` with
``ESANTE_CERTIFICATE_PORT``): gunicorn over HTTPS asking for a client certificate.

Why gunicorn and not a hand-made TLS server: gunicorn already does TLS with client-certificate
verification (``ca_certs``, ``cert_reqs``), with real workers, timeouts and keep-alive, and hands
the TLS socket to the application as ``environ["gunicorn.socket"]``. This wrapper reads the peer
certificate from that socket and passes it to Django under a WSGI key that no HTTP header can set
(``http.TLS_PEER_CERTIFICATE_KEY``); it drops the proxy headers a client could forge, since here
there is no proxy, and it serves the origin's one path and nothing else, like the nginx block.

The origin runs as its own gunicorn master in a child process (a master owns its process's
signals), started and stopped by ``esante.demo.serving.run``.

``cert_reqs`` is ``CERT_OPTIONAL``: a certificate the browser presents must chain to a trusted CA
or the handshake fails, and a browser that presents none reaches the application, which sends it
back to the portal with « Aucun certificat LuxTrust n'a été présenté » instead of leaving it on a
bare TLS error page — what nginx's ``ssl_verify_client on`` with ``error_page 495 496`` does in
production (deploy/nginx.conf). Either way the application verifies the certificate again.
"""

import os
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .http import TLS_PEER_CERTIFICATE_KEY

ORIGIN_PATH = "/professionnel/certificat/tls/"

StartResponse = Callable[..., Any]


@dataclass(frozen=True)
class CertificateOrigin:
    """What the origin's gunicorn needs: where to listen, its certificate, the client CAs."""

    host: str
    port: int
    certfile: str
    keyfile: str
    client_ca_file: str

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"


def certificate_origin_config(*, host: str, port: int) -> CertificateOrigin:
    """The origin's configuration from settings; the demo generates what is missing.

    Client CAs: ``ESANTE_TRUSTED_CA`` and, in the demo, the local CA, written together into
    ``<data dir>/certificats/clients-ca.pem`` (gunicorn takes one file). Raises
    ``ImproperlyConfigured`` with the missing setting's name.
    """
    directory = Path(settings.DATA_DIR) / "certificats"
    certfile, keyfile = settings.ESANTE_CERTIFICATE_TLS_CERT, settings.ESANTE_CERTIFICATE_TLS_KEY
    bundles = [Path(settings.ESANTE_TRUSTED_CA)] if settings.ESANTE_TRUSTED_CA else []
    if settings.ESANTE_LOCAL_CA:
        from .local_pki import LocalPki

        pki = LocalPki(directory)
        bundles.append(pki.ca_path)
        if not (certfile and keyfile):
            cert_path, key_path = pki.server_certificate()
            certfile, keyfile = str(cert_path), str(key_path)
    if not (certfile and keyfile):
        raise ImproperlyConfigured(
            "ESANTE_CERTIFICATE_TLS_CERT and ESANTE_CERTIFICATE_TLS_KEY must name the certificate "
            "origin's server certificate and key (or leave ESANTE_CERTIFICATE_PORT at 0 and use nginx)."
        )
    if not bundles:
        raise ImproperlyConfigured("ESANTE_TRUSTED_CA must name the CAs of the professionals' certificates.")
    directory.mkdir(parents=True, exist_ok=True)
    client_ca = directory / "clients-ca.pem"
    client_ca.write_bytes(b"".join(path.read_bytes().rstrip(b"\n") + b"\n" for path in bundles))
    return CertificateOrigin(host, port, certfile, keyfile, str(client_ca))


def _forbidden_header(key: str) -> bool:
    return key == settings.ESANTE_CLIENT_CERT_HEADER or key in (
        "HTTP_X_FORWARDED_FOR",
        "HTTP_X_FORWARDED_PROTO",
    )


def _not_found(start_response: StartResponse) -> Iterable[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
    return [b"Not found\n"]


def _django() -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "esante.settings")
    from esante.wsgi import application as django_application

    return django_application


def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """WSGI entry point of the origin (``gunicorn esante.accounts.tls_origin:application``)."""
    django_application = _django()
    if environ.get("PATH_INFO") != ORIGIN_PATH:
        return _not_found(start_response)
    for key in [k for k in environ if _forbidden_header(k)]:
        del environ[key]
    environ.pop(TLS_PEER_CERTIFICATE_KEY, None)
    sock = environ.get("gunicorn.socket")
    if isinstance(sock, ssl.SSLSocket):
        der = sock.getpeercert(binary_form=True)
        if der:
            environ[TLS_PEER_CERTIFICATE_KEY] = ssl.DER_cert_to_PEM_cert(der)
    return django_application(environ, start_response)
