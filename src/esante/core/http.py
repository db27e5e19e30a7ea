"""Where a request comes from, as the platform believes it: one implementation for every app.

A forwarded header is believed only when the request comes from one of
``ESANTE_TRUSTED_PROXIES`` (the TLS-terminating nginx); from anyone else it is ignored.
"""

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def from_trusted_proxy(request: HttpRequest) -> bool:
    """True when the request's peer is one of ``ESANTE_TRUSTED_PROXIES``."""
    remote = request.META.get("REMOTE_ADDR", "")
    return bool(remote) and remote in settings.ESANTE_TRUSTED_PROXIES


def client_address(request: HttpRequest) -> str | None:
    """The client's IP address: ``REMOTE_ADDR``, or the last ``X-Forwarded-For`` hop when a
    trusted proxy added it (the hop that proxy saw; earlier hops are the client's own claims).
    None when the address is missing or not an IP address."""
    address = request.META.get("REMOTE_ADDR", "")
    if from_trusted_proxy(request):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            address = hops[-1]
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None
