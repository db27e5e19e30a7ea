"""The FHIR R4 API at ``/fhir/R4/``: django-ninja routes, each answering FHIR JSON.

Ninja gives the routing and one place for the exception handlers; the routes parse their own
parameters (FHIR search parameters repeat and carry modifiers, which no typed signature states)
and return ``HttpResponse`` objects in ``application/fhir+json`` themselves. Every failure is a
``FhirError`` turned into an ``OperationOutcome`` here; what escapes the routes (an unknown path,
a wrong method) is turned into one by ``middleware.FhirErrorMiddleware``.
"""

import json
from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import HttpError, ValidationError
from ninja.parser import Parser
from ninja.renderers import BaseRenderer

from esante.access.gate import RecordNotFound
from esante.access.services import AccessRefused

from . import capability
from .outcome import FHIR_JSON, FhirError, error_response, fhir_response, invalid, not_found

#: Refusals of the access policy that no other answer can change (403); the others are
#: business rules the caller can satisfy (422: a motif, the accepted conditions).
FORBIDDEN_REFUSALS = {
    "professional_inactive",
    "record_closed",
    "record_opposed",
    "blocked",
    "emergency_not_allowed",
}


class FhirRenderer(BaseRenderer):
    media_type = FHIR_JSON

    def render(self, request: HttpRequest, data: Any, *, response_status: int) -> Any:
        return json.dumps(data, ensure_ascii=False)


class FhirParser(Parser):
    """Bodies are parsed by the routes themselves (``resources.read_json``)."""


api = NinjaAPI(
    title="eSanté eDocuments FHIR R4",
    version="4.0.1",
    urls_namespace="fhir-api",
    renderer=FhirRenderer(),
    parser=FhirParser(),
    docs_url=None,
    openapi_url="/openapi.json",
)


@api.exception_handler(FhirError)
def _fhir_error(request: HttpRequest, error: FhirError) -> HttpResponse:
    return error_response(error)


@api.exception_handler(RecordNotFound)
def _record_not_found(request: HttpRequest, error: RecordNotFound) -> HttpResponse:
    return error_response(not_found())


@api.exception_handler(AccessRefused)
def _access_refused(request: HttpRequest, error: AccessRefused) -> HttpResponse:
    if error.code in FORBIDDEN_REFUSALS:
        return error_response(
            FhirError(403, error.code.replace("_", "-"), error.message, issue_type="forbidden")
        )
    return error_response(
        FhirError(422, error.code.replace("_", "-"), error.message, issue_type="business-rule")
    )


@api.exception_handler(ValidationError)
def _validation_error(request: HttpRequest, error: ValidationError) -> HttpResponse:
    return error_response(invalid("invalid-parameter", "Un paramètre de la requête est invalide."))


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, error: HttpError) -> HttpResponse:
    return error_response(
        FhirError(error.status_code, "http-error", str(error.message), issue_type="processing")
    )


@api.get("/metadata", include_in_schema=True)
def metadata(request: HttpRequest) -> HttpResponse:
    """The CapabilityStatement (no token needed)."""
    return fhir_response(capability.capability_statement(request))


@api.get("/.well-known/smart-configuration")
def smart_configuration(request: HttpRequest) -> HttpResponse:
    """SMART discovery (plain JSON, as SMART App Launch requires)."""
    response = fhir_response(capability.smart_configuration(request))
    response["Content-Type"] = "application/json"
    return response


from .routes import audit, documents, medication, patient, submission  # noqa: E402

# Each resource module has its own router, so the routes import nothing from here (no cycle).
for _module in (patient, documents, medication, submission, audit):
    api.add_router("", _module.router)
