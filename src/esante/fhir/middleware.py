"""Errors that reach the API's edge without a FhirError become OperationOutcomes too."""

import logging
import re
from collections.abc import Callable

from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse

from . import formats
from .outcome import FHIR_JSON, STATUS_ERRORS, FhirError, error_response

logger = logging.getLogger("esante.fhir")

PREFIX = "/fhir/"
#: The authorization server's pages and endpoints answer as OAuth says (HTML pages, JSON errors).
OAUTH_PREFIX = "/fhir/R4/auth/"


def _in_api(request: HttpRequest) -> bool:
    return request.path.startswith(PREFIX) and not request.path.startswith(OAUTH_PREFIX)


#: Addresses that answer in their own media type (the document's bytes, a certified copy, the
#: SMART discovery document), which negotiate it themselves.
_OWN_MEDIA_TYPE = re.compile(r"^/fhir/R4/(DocumentReference/[^/]+/content|Binary/[^/]+|\.well-known/.*)$")
NOT_ACCEPTABLE = (
    "not-acceptable",
    "Format non servi ici : application/fhir+json partout, application/fhir+xml pour Patient, "
    "DocumentReference, metadata et les lots ITI-65.",
)
XML_FAILED = ("not-acceptable", "Cette réponse n'existe qu'en application/fhir+json.")


def _negotiated(request: HttpRequest) -> bool:
    return _OWN_MEDIA_TYPE.match(request.path) is None


def _has_nul(request: HttpRequest) -> bool:
    query = request.META.get("QUERY_STRING", "").lower()
    return "\x00" in request.path or "%00" in query or "\x00" in query


class FhirErrorMiddleware:
    """Under ``/fhir/``: an error response that is not FHIR (Django's 404 page, ninja's 405, a
    400 for a bad host) and an unexpected exception (500) answer an ``OperationOutcome``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _in_api(request) and _has_nul(request):
            # No database stores a NUL character (PostgreSQL refuses it in text and JSON): such a
            # request is bad input, refused before any view, search or audit event sees it.
            return error_response(
                FhirError(
                    400, "invalid-characters", "La requête contient un caractère nul.", issue_type="invalid"
                )
            )
        encoding = formats.JSON
        if _in_api(request) and _negotiated(request):
            try:
                encoding = formats.wanted(request)
            except formats.NotAcceptable:
                # Refused before the view runs: nothing read, nothing written, nothing traced.
                return error_response(FhirError(406, *NOT_ACCEPTABLE, issue_type="not-supported"))
        response = self._fhir(request, self.get_response(request))
        if encoding == formats.XML and response.get("Content-Type", "").startswith(FHIR_JSON):
            try:
                return formats.as_xml(response)
            except (ValueError, KeyError, TypeError):
                # Our own resource that fhir.resources cannot write: a bug, logged; the caller
                # is told plainly that this answer exists in JSON only.
                logger.exception("FHIR XML serialisation failed on %s %s", request.method, request.path)
                return error_response(FhirError(406, *XML_FAILED, issue_type="not-supported"))
        return response

    def _fhir(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if not _in_api(request) or response.status_code < 400:
            return response
        if response.get("Content-Type", "").startswith((FHIR_JSON, "application/json")):
            return response
        code, issue_type, text = STATUS_ERRORS.get(response.status_code, STATUS_ERRORS[400])
        replaced = error_response(FhirError(response.status_code, code, text, issue_type=issue_type))
        for header in ("Allow", "Retry-After", "WWW-Authenticate"):
            if header in response:
                replaced[header] = response[header]
        return replaced

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not _in_api(request):
            return None
        status = 500
        if isinstance(exception, Http404):
            status = 404
        elif isinstance(exception, PermissionDenied):
            status = 403
        elif isinstance(exception, BadRequest | SuspiciousOperation | UnicodeError):
            # Bad input never answers 500 (a body Django cannot decode, a malformed header).
            status = 400
        else:
            logger.exception("FHIR API error on %s %s", request.method, request.path)
        code, issue_type, text = STATUS_ERRORS[status]
        return error_response(FhirError(status, code, text, issue_type=issue_type))
