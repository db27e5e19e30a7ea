import logging
import re
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

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


# The session key holding the time (whole seconds since the epoch) of the session's last recorded
# activity.
LAST_ACTIVITY_SESSION_KEY = "_esante_last_activity"


class SessionIdleMiddleware:
    """Ends a session idle for longer than ``ESANTE_SESSION_IDLE_SECONDS``, saving it only when
    it changes.

    The session keeps the time of its last recorded activity. A request renews it only when the
    session is saved anyway, or when the recorded time is at least ``ESANTE_SESSION_TOUCH_SECONDS``
    old: a page read within that interval writes nothing. A request arriving after the idle limit
    finds the session flushed before anything reads it, exactly as an expired session: the user is
    anonymous and the login page follows. The recorded time lags the true last activity by less
    than the touch interval, so a session may end up to that much early, never late. The stored
    session row outlives the limit by the touch interval (``SESSION_COOKIE_AGE``), so it is this
    middleware, not the row's expiry, that ends an idle session.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session = request.session
        now = int(timezone.now().timestamp())
        recorded = session.get(LAST_ACTIVITY_SESSION_KEY)
        if recorded is not None and now - recorded > settings.ESANTE_SESSION_IDLE_SECONDS:
            session.flush()
        response = self.get_response(request)
        if session.keys():
            recorded = session.get(LAST_ACTIVITY_SESSION_KEY)
            if (
                session.modified
                or recorded is None
                or now - recorded >= settings.ESANTE_SESSION_TOUCH_SECONDS
            ):
                session[LAST_ACTIVITY_SESSION_KEY] = now
        return response
