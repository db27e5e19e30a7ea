"""Every failure of the API as an ``OperationOutcome``: one exception, stable codes, French text.

A view (or the OAuth layer, or the gate's refusals mapped by ``api``) raises ``FhirError``; the
API's exception handler turns it into the response. ``code`` is the stable machine code (in
``issue.details.coding``, system ``ERROR_SYSTEM``), ``issue_type`` the FHIR IssueType, and
``diagnostics`` the French sentence for the person behind the software.
"""

import json
import re
from typing import Any

from django.http import HttpResponse

FHIR_JSON = "application/fhir+json"
ERROR_SYSTEM = "urn:esante:fhir:error"
#: What a FHIR ``string`` may not hold: control characters other than tab, CR and LF. A
#: diagnostic that quotes the caller's input (an unknown parameter's name) replaces them.
_NOT_IN_STRING = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


class FhirError(Exception):
    """A refusal of the API: an HTTP status, a stable code and a French diagnostic."""

    def __init__(
        self,
        status: int,
        code: str,
        diagnostics: str,
        *,
        issue_type: str = "processing",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        self.issue_type = issue_type
        self.headers = headers or {}
        super().__init__(diagnostics)


def invalid(code: str, diagnostics: str) -> FhirError:
    """400: a parameter or a resource the API cannot accept."""
    return FhirError(400, code, diagnostics, issue_type="invalid")


def not_found(
    diagnostics: str = "La ressource demandée est introuvable ou vous n'y avez pas accès.",
) -> FhirError:
    """404: missing, or not for this caller (deliberately the same answer)."""
    return FhirError(404, "not-found", diagnostics, issue_type="not-found")


def rate_limited(diagnostics: str, retry_after: int | str) -> FhirError:
    """429: too many requests; ``retry_after`` seconds go in the ``Retry-After`` header."""
    return FhirError(
        429, "rate-limited", diagnostics, issue_type="throttled", headers={"Retry-After": str(retry_after)}
    )


def operation_outcome(
    *, code: str, diagnostics: str, issue_type: str, severity: str = "error"
) -> dict[str, Any]:
    """The OperationOutcome resource of one issue."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": severity,
                "code": issue_type,
                "details": {"coding": [{"system": ERROR_SYSTEM, "code": code}]},
                "diagnostics": _NOT_IN_STRING.sub("\ufffd", diagnostics),
            }
        ],
    }


def fhir_response(
    resource: dict[str, Any], *, status: int = 200, headers: dict[str, str] | None = None
) -> HttpResponse:
    """A FHIR JSON response, never cached (patient data and tokens)."""
    response = HttpResponse(
        json.dumps(resource, ensure_ascii=False, separators=(",", ":")),
        status=status,
        content_type=f"{FHIR_JSON}; charset=utf-8",
    )
    response["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def error_response(error: FhirError) -> HttpResponse:
    """The response of a ``FhirError``."""
    return fhir_response(
        operation_outcome(code=error.code, diagnostics=error.diagnostics, issue_type=error.issue_type),
        status=error.status,
        headers=error.headers,
    )


#: The answer to an HTTP status that reached the API's edge without a FhirError (an unknown
#: path, a method the route does not take, a body too large for Django).
STATUS_ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("bad-request", "invalid", "La requête est invalide."),
    403: ("forbidden", "forbidden", "Accès refusé."),
    404: ("not-found", "not-found", "La ressource demandée est introuvable ou vous n'y avez pas accès."),
    405: ("method-not-allowed", "not-supported", "Cette méthode HTTP n'est pas prise en charge ici."),
    406: ("not-acceptable", "not-supported", "Seul le format application/fhir+json est servi."),
    413: ("too-large", "too-costly", "La requête est trop volumineuse."),
    415: ("unsupported-media-type", "not-supported", "Le corps doit être en application/fhir+json."),
    500: ("server-error", "exception", "Erreur interne du serveur : l'incident est enregistré."),
}
