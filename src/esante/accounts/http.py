"""What the platform believes about a request's origin: the client address and the client
certificate, taken from the TLS-terminating proxy's headers only when the request comes from one
of ``ESANTE_TRUSTED_PROXIES`` — or, for the certificate, from the platform's own mutual-TLS
server (``tls_origin``), which puts the peer certificate under a WSGI key no HTTP header can set.

The client address is ``esante.core.http.client_address``, shared by every app."""

from django.conf import settings
from django.http import HttpRequest

from esante.core.http import from_trusted_proxy

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
    if not from_trusted_proxy(request):
        return ""
    return str(request.META.get(settings.ESANTE_CLIENT_CERT_HEADER, ""))
