"""The authorization server's HTTP side: the consent page, the token and revocation endpoints,
and the portal page "Logiciels autorisés". HTTP only: Authlib (``oauth.server``) does OAuth."""

import json

from authlib.oauth2 import OAuth2Error
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from esante.access.http import active_professional, client_address, professional_required
from esante.accounts.models import Professional
from esante.audit.catalogue import AuditAction, AuditOutcome
from esante.audit.services import audit_record
from esante.espace.http import active_patient_account

from . import services, throttling
from .models import ApiThrottle, SoftwareAuthorisation
from .oauth import server, token_refused
from .scopes import scope_contexts

#: What each scope lets the software do, as the consent page says it.
SCOPE_LABELS = {
    "user/Patient.rs": _("Rechercher des patients et lire leur identité"),
    "user/DocumentReference.rs": _("Rechercher et lire les documents des dossiers auxquels vous avez accès"),
    "user/MedicationRequest.rs": _("Lire les prescriptions des dossiers auxquels vous avez accès"),
    "user/MedicationDispense.cu": _("Enregistrer des dispensations en votre nom"),
    "user/Binary.r": _(
        "Télécharger les copies certifiées des dispensations des dossiers auxquels vous avez accès"
    ),
    "user/AuditEvent.rs": _("Lire les traces de vos propres actions"),
    "patient/AuditEvent.rs": _("Lire votre journal d'accès"),
    "patient/DocumentReference.rs": _("Rechercher et lire les documents de votre dossier"),
    "offline_access": _("Rester connecté sans vous redemander votre accord (jetons renouvelables)"),
}


def _throttled(request: HttpRequest) -> HttpResponse | None:
    """At most ``ESANTE_FHIR_TOKEN_RATE_LIMIT`` token requests per client network and window."""
    hit = throttling.hit(ApiThrottle.Scope.TOKEN, client_address(request))
    if hit.allowed:
        return None
    if hit.trace:
        token_refused(request, reason="rate_limited", client_id=str(request.POST.get("client_id", "")))
    response = JsonResponse(
        {"error": "invalid_request", "error_description": "Trop de demandes de jeton : réessayez plus tard."},
        status=429,
    )
    response["Retry-After"] = str(hit.retry_after)
    response["Cache-Control"] = "no-store"
    return response


@never_cache
@require_http_methods(["GET", "POST"])
def authorize(request: HttpRequest) -> HttpResponse:
    """SMART standalone launch: the professional logs in on the portal (same rules as the
    portal), sees which software asks for which scopes, and answers "Autoriser" or "Refuser"."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
    professional = active_professional(request)
    patient_account = None if professional is not None else active_patient_account(request.user)
    if professional is None and patient_account is None:
        return render(request, "access/forbidden.html", status=403)
    # A patient consents to patient/ scopes only; a professional never to them.
    contexts = scope_contexts(request.GET.get("scope", ""))
    if (patient_account is not None and contexts != {"patient"}) or (
        professional is not None and "patient" in contexts
    ):
        forbidden = "espace/forbidden.html" if patient_account is not None else "access/forbidden.html"
        return render(request, forbidden, status=403)
    try:
        grant = server.get_consent_grant(request, end_user=request.user)
    except OAuth2Error as error:
        if getattr(error, "redirect_uri", None):
            return server.handle_error_response(server.create_oauth2_request(request), error)
        return render(
            request,
            "fhir/authorize_error.html",
            {"description": error.description or error.error},
            status=400,
        )
    client = grant.client
    scopes = client.get_allowed_scope(grant.request.payload.scope or "").split()
    if request.method == "POST":
        if request.POST.get("decision") == "allow":
            return server.create_authorization_response(request, grant_user=request.user, grant=grant)
        audit_record(
            action=AuditAction.API_AUTHORISE,
            outcome=AuditOutcome.REFUSED,
            actor=request.user,
            object_type="SoftwareClient",
            object_id=client.client_id,
            client_address=client_address(request),
            details={"client": client.client_id, "reason": "refused_by_professional"},
        )
        return server.create_authorization_response(request, grant_user=None, grant=grant)
    context = {
        "client": client,
        "scopes": [(scope, SCOPE_LABELS.get(scope, scope)) for scope in scopes],
        "professional": professional,
    }
    return render(request, "fhir/consent.html", context)


@csrf_exempt
@never_cache
@require_POST
def token(request: HttpRequest) -> HttpResponse:
    """The token endpoint (authorization code, refresh token, client credentials)."""
    throttled = _throttled(request)
    if throttled is not None:
        return throttled
    response = server.create_token_response(request)
    if response.status_code >= 400:
        try:
            reason = json.loads(response.content).get("error", "error")
        except ValueError:
            reason = "error"
        token_refused(request, reason=reason, client_id=str(request.POST.get("client_id", "")))
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    response["Content-Type"] = "application/json"
    return response


@csrf_exempt
@never_cache
@require_POST
def revoke(request: HttpRequest) -> HttpResponse:
    """RFC 7009 revocation by the client."""
    response = server.create_endpoint_response("revocation", request)
    response["Content-Type"] = "application/json"
    return response


@never_cache
@require_http_methods(["GET"])
@professional_required
def authorised_software(request: HttpRequest, professional: Professional) -> HttpResponse:
    """ "Logiciels autorisés": the software the professional let act for them, and when."""
    authorisations = (
        SoftwareAuthorisation.objects.filter(user=professional.user, revoked_at__isnull=True)
        .select_related("client")
        .order_by("-granted_at")[:200]
    )
    rows = [(a, [SCOPE_LABELS.get(s, s) for s in a.scope.split()]) for a in authorisations]
    return render(request, "fhir/authorised_software.html", {"rows": rows})


@never_cache
@require_POST
@professional_required
def authorised_software_revoke(request: HttpRequest, professional: Professional, pk: int) -> HttpResponse:
    """ "Retirer l'autorisation": the software is cut off at once (every token)."""
    authorisation = get_object_or_404(SoftwareAuthorisation, pk=pk, user=professional.user)
    services.software_authorisation_revoke(
        authorisation=authorisation, user=request.user, client_address=client_address(request)
    )
    return redirect("fhir-portal:authorised_software")
