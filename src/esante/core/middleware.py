import logging
import re
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger("esante.request")


# Paths that carry a secret in a segment: the verification code of a certified copy.
_SECRET_SEGMENT = re.compile(r"^(/verifier/)[^/]+")


def loggable_path(path: str) -> str:
    """The request path as logged: secret path segments masked."""
    return _SECRET_SEGMENT.sub(r"\1[code]", path)


class RequestLogMiddleware:
    """One log line per request: method, path, status, duration, user id.

    The query string and the body are never logged: they may carry codes, passwords or search
    criteria; patient pages are addressed by opaque identifiers only.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed_ms = (time.perf_counter() - started) * 1000
        user = getattr(request, "user", None)
        user_id = user.pk if user is not None and user.is_authenticated else "-"
        logger.info(
            "%s %s %s %.1fms user=%s",
            request.method,
            loggable_path(request.path),
            response.status_code,
            elapsed_ms,
            user_id,
        )
        return response


PORTAL_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'{certificate_origin}; frame-ancestors 'none'"
)


def portal_csp() -> str:
    """The portal's policy. Forms may post to the portal only, and to the certificate origin (the
    "Connexion" buttons lead there; browsers apply ``form-action`` to the redirect as well)."""
    origin = getattr(settings, "ESANTE_CERTIFICATE_ORIGIN", "")
    return PORTAL_CSP.format(certificate_origin=f" {origin}" if origin else "")


class ContentSecurityPolicyMiddleware:
    """A restrictive Content-Security-Policy on every response that does not set its own.

    No inline script anywhere in the portal: even if a document's text reached a page
    unescaped, the browser would not run it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = portal_csp()
        return response
