"""« Mes choix »: refusing professionals, closing the record, acting for a represented patient,
notifications."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from esante.accounts.models import Professional
from esante.audit.catalogue import AuditAction
from esante.core.http import client_address

from .. import selectors, services
from ..forms import NotificationsForm, ProfessionalSearchForm
from ..http import ACTING_FOR_KEY, not_found_page, patient_required
from ..models import PatientAccount, PatientCertificate

# --- « Mes choix » ----------------------------------------------------------------------------


@never_cache
@require_GET
@patient_required
def choices(request: HttpRequest, account: PatientAccount) -> HttpResponse:
    search = ProfessionalSearchForm(request.GET or None)
    found: list[Professional] = []
    if request.GET and search.is_valid():
        found = selectors.professionals_named(search.cleaned_data["nom"])
        services.patient_trace(
            account,
            AuditAction.ESPACE_PROFESSIONAL_SEARCH,
            client_address=client_address(request),
            results=len(found),
        )
    blocked = {block.professional_id for block in selectors.active_blocks(account.patient)}
    return render(
        request,
        "espace/choices.html",
        {
            "tab": "choices",
            "account": account,
            "search": search,
            "found": [(p, p.pk in blocked) for p in found],
            "blocks": selectors.active_blocks(account.patient),
            "documents": selectors.own_documents(account.patient),
            "notifications": NotificationsForm(initial={"channel": account.notify_channel}),
            "certificates": PatientCertificate.objects.filter(account=account).order_by("bound_at"),
        },
    )


@never_cache
@require_http_methods(["GET", "POST"])
@patient_required
def block(request: HttpRequest, account: PatientAccount, professional_id: int) -> HttpResponse:
    professional = Professional.objects.filter(pk=professional_id).first()
    if professional is None:
        services.patient_not_found(
            account,
            what="professional",
            object_id=str(professional_id),
            client_address=client_address(request),
        )
        return not_found_page(request)
    if request.method == "POST":
        services.professional_block(
            account=account, professional=professional, client_address=client_address(request)
        )
        messages.success(request, gettext("Ce professionnel ne peut plus accéder à votre dossier."))
        return redirect("espace:choices")
    return render(request, "espace/confirm_block.html", {"tab": "choices", "professional": professional})


@never_cache
@require_http_methods(["GET", "POST"])
@patient_required
def unblock(request: HttpRequest, account: PatientAccount, block_id: int) -> HttpResponse:
    found = selectors.active_blocks(account.patient).filter(pk=block_id).first()
    if found is None:
        services.patient_not_found(
            account, what="block", object_id=str(block_id), client_address=client_address(request)
        )
        return not_found_page(request)
    if request.method == "POST":
        services.professional_unblock(account=account, block=found)
        messages.success(request, gettext("Le refus est levé."))
        return redirect("espace:choices")
    return render(request, "espace/confirm_unblock.html", {"tab": "choices", "block": found})


@never_cache
@require_http_methods(["GET", "POST"])
@patient_required
def opposition(request: HttpRequest, account: PatientAccount, opposed: bool) -> HttpResponse:
    """« Fermer mon dossier » / « Rouvrir mon dossier »."""
    if request.method == "POST":
        try:
            services.record_opposition_set(
                account=account, opposed=opposed, client_address=client_address(request)
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(
                request,
                gettext("Votre dossier est fermé : aucun professionnel ne peut plus y accéder.")
                if opposed
                else gettext("Votre dossier est rouvert."),
            )
        return redirect("espace:choices")
    return render(request, "espace/confirm_opposition.html", {"tab": "choices", "opposed": opposed})


@require_POST
@patient_required
def acting_for(request: HttpRequest, account: PatientAccount) -> HttpResponse:
    """« Agir pour »: a representative switches between their own record and a represented one."""
    chosen = request.POST.get("patient", "")
    if chosen in ("", "moi"):
        request.session.pop(ACTING_FOR_KEY, None)
        return redirect("espace:record")
    representation = next((r for r in account.represented if str(r.patient.public_id) == chosen), None)
    if representation is None:
        services.patient_not_found(
            account, what="representation", object_id=chosen, client_address=client_address(request)
        )
        return not_found_page(request)
    services.acting_for_choose(
        account=account, representation=representation, client_address=client_address(request)
    )
    request.session[ACTING_FOR_KEY] = chosen
    return redirect("espace:record")


@require_POST
@patient_required
def notifications(request: HttpRequest, account: PatientAccount) -> HttpResponse:
    if account.acting_for is not None:
        messages.error(request, gettext("Les notifications se choisissent pour votre propre dossier."))
        return redirect("espace:choices")
    form = NotificationsForm(request.POST)
    if form.is_valid():
        try:
            services.notifications_set(
                account=account,
                channel=form.cleaned_data["channel"] or "",
                client_address=client_address(request),
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, gettext("Votre choix de notifications est enregistré."))
    return redirect("espace:choices")
