"""Who calls the API: the bearer token checked on every request, its scopes enforced.

``caller(request, resource_type=..., permission=...)`` validates the token with Authlib's
resource protector (digest lookup, expiry, revocation — including the professional's withdrawal
on the portal), then the SMART scope, then that a ``user`` token still acts for an active
professional. A refusal is traced (``api.request``, refused) and raised as a ``FhirError`` with
``WWW-Authenticate: Bearer error=...`` (RFC 6750).
"""

from dataclasses import dataclass
from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import MissingAuthorizationError
from django.http import HttpRequest

from esante.accounts.models import Professional
from esante.audit.catalogue import AuditAction, AuditOutcome
from esante.audit.services import audit_record
from esante.core.http import client_address
from esante.espace.http import active_patient_account, is_patient_user

from . import throttling
from .models import ApiThrottle, SoftwareClient, Token
from .oauth import require_oauth
from .outcome import FhirError, rate_limited
from .scopes import scopes_allow

REALM = "esante-fhir"


@dataclass(frozen=True)
class ApiCaller:
    """A checked token: the software, and the professional it acts for (None for a backend)."""

    token: Token
    client: SoftwareClient
    professional: Professional | None
    # A ``patient`` token: the active patient account it acts for (its own record only).
    patient_account: Any = None

    @property
    def audit_details(self) -> dict[str, str]:
        """What every event written for this request says about the software."""
        return {"channel": "api", "client": self.client.client_id, "client_name": self.client.name}


def _trace_refusal(request: HttpRequest, *, reason: str, token: Token | None) -> None:
    audit_record(
        action=AuditAction.API_REQUEST,
        outcome=AuditOutcome.REFUSED,
        actor=token.user if token is not None else None,
        object_type="SoftwareClient" if token is not None else "",
        object_id=token.client.client_id if token is not None else "",
        client_address=client_address(request),
        details={
            "method": request.method or "",
            "path": request.path[:200],
            "reason": reason,
            **({"client": token.client.client_id} if token is not None else {}),
        },
    )


def _refuse(
    request: HttpRequest,
    *,
    status: int,
    error: str,
    diagnostics: str,
    token: Token | None = None,
    scope: str = "",
) -> FhirError:
    if token is None:
        # No valid token: counted per client network; beyond the limit, 429, and one trace a
        # window instead of one event per request (``throttling``).
        hit = throttling.hit(ApiThrottle.Scope.REFUSAL, client_address(request))
        if not hit.allowed:
            if hit.trace:
                _trace_refusal(request, reason="rate_limited", token=None)
            return rate_limited(
                "Trop de requêtes refusées depuis votre adresse : réessayez plus tard.", hit.retry_after
            )
    _trace_refusal(request, reason=error, token=token)
    header = f'Bearer realm="{REALM}"'
    if error != "missing_token":
        header += f', error="{error}"'
    if scope:
        header += f', scope="{scope}"'
    issue_type = "forbidden" if status == 403 else "login"
    return FhirError(
        status,
        error.replace("_", "-"),
        diagnostics,
        issue_type=issue_type,
        headers={"WWW-Authenticate": header},
    )


def caller(
    request: HttpRequest,
    *,
    resource_type: str,
    permission: str,
    context: str = "user",
    patient_allowed: bool = False,
) -> ApiCaller:
    """The checked caller of a request needing ``context/resource_type.permission``.

    401 without a token or with an invalid, expired or revoked one; 403 when its scopes do not
    cover the request or its professional is no longer active. With ``patient_allowed``, a token
    a patient consented to is checked in the ``patient`` context instead, for an active patient
    account (``esante.espace``).
    """
    try:
        token: Token = require_oauth.acquire_token(request)
    except MissingAuthorizationError:
        raise _refuse(
            request,
            status=401,
            error="missing_token",
            diagnostics="Jeton d'accès requis (Authorization: Bearer).",
        ) from None
    except OAuth2Error:
        raise _refuse(
            request,
            status=401,
            error="invalid_token",
            diagnostics="Jeton d'accès invalide, expiré ou révoqué.",
        ) from None
    patient_account = None
    if patient_allowed and context == "user" and token.user is not None and is_patient_user(token.user):
        context = "patient"
        patient_account = active_patient_account(token.user)
        if patient_account is None:
            raise _refuse(
                request,
                status=403,
                error="insufficient_scope",
                diagnostics="Le compte patient pour lequel agit ce jeton n'est pas actif.",
                token=token,
                scope=f"patient/{resource_type}.{permission}",
            )
    needed = f"{context}/{resource_type}.{permission}"
    if not scopes_allow(token.scope, context=context, resource_type=resource_type, permission=permission):
        raise _refuse(
            request,
            status=403,
            error="insufficient_scope",
            diagnostics=f"Le jeton ne permet pas cette action (scope requis : {needed}).",
            token=token,
            scope=needed,
        )
    professional = None
    if context == "user":
        professional = getattr(token.user, "professional", None) if token.user is not None else None
        if professional is None or professional.state != Professional.State.ACTIVE:
            raise _refuse(
                request,
                status=403,
                error="insufficient_scope",
                diagnostics="Le compte professionnel pour lequel agit ce jeton n'est pas actif.",
                token=token,
                scope=needed,
            )
    return ApiCaller(
        token=token, client=token.client, professional=professional, patient_account=patient_account
    )
