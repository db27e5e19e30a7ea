"""What the platform believes about a request's origin: the client address and the client
certificate, taken from the TLS-terminating proxy's headers only when the request comes from one
of ``ESANTE_TRUSTED_PROXIES`` — or, for the certificate, from the platform's own mutual-TLS
server (``tls_origin``), which puts the peer certificate under a WSGI key no HTTP header can set."""

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def _from_trusted_proxy(request: HttpRequest) -> bool:
    remote = request.META.get("REMOTE_ADDR", "")
    return bool(remote) and remote in settings.ESANTE_TRUSTED_PROXIES


def client_address(request: HttpRequest) -> str | None:
    """The client's IP address: the last ``X-Forwarded-For`` hop when a trusted proxy added it."""
    address = request.META.get("REMOTE_ADDR", "")
    if _from_trusted_proxy(request):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            address = hops[-1]
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


# Set by ``esante.accounts.tls_origin`` from the TLS connection itself. WSGI puts HTTP headers
# under ``HTTP_*`` keys only, so a client cannot forge this one.
TLS_PEER_CERTIFICATE_KEY = "esante.tls_peer_certificate"


def forwarded_certificate(request: HttpRequest) -> str:
    """The client certificate presented on the certificate origin, or ``""``.

    URL-escaped PEM forwarded by a trusted proxy (nginx's ``$ssl_client_escaped_cert``), or the PEM
    the platform's own mutual-TLS server read from the connection. Never verified here.
    """
    own_tls = request.META.get(TLS_PEER_CERTIFICATE_KEY)
    if own_tls:
        return str(own_tls)
    if not _from_trusted_proxy(request):
        return ""
    return str(request.META.get(settings.ESANTE_CLIENT_CERT_HEADER, ""))
