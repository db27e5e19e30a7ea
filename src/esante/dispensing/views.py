"""Portal pages of dispensing: "Marquer comme dispensé", withdrawal, the certified copy, and the
public verification page of certified copies (``/verifier/<code>/``)."""

import uuid
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.files.storage import default_storage
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from esante.access import policy
from esante.access.http import active_professional, client_address, professional_required
from esante.access.selectors import RecordNotFound
from esante.access.services import access_refusal_record
from esante.accounts.models import Professional
from esante.documents.models import Prescription
from esante.documents.services import document_read_record
from esante.documents.views import PDF_CSP

from . import certification, services
from .forms import DispenseForm, WithdrawForm
from .models import CertifiedCopy
from .selectors import (
    access_prescription,
    certified_copy_by_code,
    dispensation_of,
    normalise_code,
    prescription_line_states,
)


def _public_url(request: HttpRequest) -> str:
    return str(getattr(settings, "ESANTE_PUBLIC_URL", "") or request.build_absolute_uri("/"))


def _viewer_url(public_id: uuid.UUID, document_id: uuid.UUID) -> str:
    return reverse("documents:viewer", kwargs={"public_id": public_id, "document_id": document_id})


def _not_found(request: HttpRequest) -> HttpResponse:
    return render(request, "access/not_found.html", {"message": RecordNotFound.message}, status=404)


def _refused_read(
    request: HttpRequest, professional: Professional, public_id: uuid.UUID, error: RecordNotFound, action: str
) -> HttpResponse:
    access_refusal_record(
        action=action,
        professional=professional,
        patient=error.patient,
        object_id=str(public_id),
        reason=error.reason,
        client_address=client_address(request),
    )
    return _not_found(request)


def _message(request: HttpRequest, title: str, message: str, status: int) -> HttpResponse:
    return render(request, "dispensing/message.html", {"title": title, "message": message}, status=status)


def _form_context(**values: Any) -> dict[str, Any]:
    return {"legend": gettext("Status (rouge: dispensé entièrement)"), **values}


@never_cache
@require_http_methods(["GET", "POST"])
@professional_required
def dispense(
    request: HttpRequest, professional: Professional, public_id: uuid.UUID, document_id: uuid.UUID
) -> HttpResponse:
    """ "Marquer comme dispensé": the status choice, the grid for a partial dispensation, Valider."""
    action = services.ACTION_DISPENSE if request.method == "POST" else "document.read"
    try:
        patient, grant, document, prescription = access_prescription(professional, public_id, document_id)
    except RecordNotFound as error:
        return _refused_read(request, professional, public_id, error, action)
    states = prescription_line_states(prescription)
    context = _form_context(patient=patient, grant=grant, document=document, prescription=prescription)
    if request.method == "GET":
        if not policy.may_dispense(professional.profession):
            services.dispensation_refusal_record(
                action="document.read",
                code="not_pharmacist",
                pharmacist=professional,
                patient=patient,
                object_id=str(document.public_id),
                client_address=client_address(request),
                details={"page": "dispense"},
            )
            return _message(
                request,
                gettext("Action réservée aux pharmaciens"),
                str(services.MESSAGES["not_pharmacist"]),
                403,
            )
        document_read_record(
            professional=professional, document=document, client_address=client_address(request)
        )
        form = DispenseForm(
            initial={"kind": "full", "state_version": prescription.state_version}, line_states=states
        )
        return render(request, "dispensing/mark.html", {**context, "form": form, "line_states": states})

    form = DispenseForm(request.POST, line_states=states)
    # A non-pharmacist's attempt goes to the service whatever the form says: it is refused and traced.
    if policy.may_dispense(professional.profession) and not form.is_valid():
        services.dispensation_refusal_record(
            action=services.ACTION_DISPENSE,
            code="invalid_form",
            pharmacist=professional,
            patient=patient,
            object_id=str(document.public_id),
            client_address=client_address(request),
            details={"fields": sorted(form.errors)},
        )
        return render(
            request, "dispensing/mark.html", {**context, "form": form, "line_states": states}, status=400
        )
    data: dict[str, Any] = getattr(form, "cleaned_data", {})
    try:
        dispensation = services.prescription_mark_dispensed(
            prescription=prescription,
            pharmacist=professional,
            kind=data.get("kind", ""),
            based_on_version=data.get("state_version", -1),
            lines=form.delivered() if data else {},
            client_address=client_address(request),
            public_url=_public_url(request),
        )
    except services.DispensationRefused as refusal:
        if refusal.status == 404:
            return _not_found(request)
        if refusal.status == 403:
            return _message(request, gettext("Action réservée aux pharmaciens"), refusal.message, 403)
        fresh = Prescription.objects.get(pk=prescription.pk)
        states = prescription_line_states(fresh)
        initial = {"kind": data.get("kind", "full"), "state_version": fresh.state_version}
        initial.update(
            {DispenseForm.line_field(s): request.POST.get(DispenseForm.line_field(s)) for s in states}
        )
        form = DispenseForm(initial=initial, line_states=states)
        return render(
            request,
            "dispensing/mark.html",
            {
                **context,
                "prescription": fresh,
                "form": form,
                "line_states": states,
                "refusal": refusal.message,
            },
            status=refusal.status,
        )
    text = (
        gettext("Prescription marquée comme dispensée entièrement.")
        if dispensation.kind == "full"
        else gettext("Prescription marquée comme dispensée partiellement.")
    )
    if dispensation.certified_copy is not None:
        text += " " + gettext("La copie certifiée conforme est prête à être imprimée.")
    messages.success(request, text)
    return HttpResponseRedirect(_viewer_url(public_id, document_id), status=303)


@never_cache
@require_http_methods(["GET", "POST"])
@professional_required
def withdraw(
    request: HttpRequest,
    professional: Professional,
    public_id: uuid.UUID,
    document_id: uuid.UUID,
    dispensation_id: uuid.UUID,
) -> HttpResponse:
    """Withdrawal of a dispensation by the pharmacist who recorded it, with a reason."""
    action = services.ACTION_WITHDRAW if request.method == "POST" else "document.read"
    try:
        patient, grant, document, prescription = access_prescription(professional, public_id, document_id)
    except RecordNotFound as error:
        return _refused_read(request, professional, public_id, error, action)
    dispensation = dispensation_of(prescription, dispensation_id)
    if dispensation is None:
        return _refused_read(request, professional, public_id, RecordNotFound("unknown", patient), action)
    context = {"patient": patient, "grant": grant, "document": document, "dispensation": dispensation}
    if request.method == "GET":
        refusal_code = services.withdrawal_refusal(dispensation, professional)
        if refusal_code is not None:
            services.dispensation_refusal_record(
                action="document.read",
                code=refusal_code,
                pharmacist=professional,
                patient=patient,
                object_id=str(dispensation.public_id),
                client_address=client_address(request),
                details={"page": "withdraw"},
            )
            return _message(
                request,
                gettext("Retrait impossible"),
                str(
                    services.MESSAGES.get(
                        refusal_code, gettext("Cette dispensation ne peut plus être retirée.")
                    )
                ),
                403,
            )
        document_read_record(
            professional=professional, document=document, client_address=client_address(request)
        )
        return render(request, "dispensing/withdraw.html", {**context, "form": WithdrawForm()})
    form = WithdrawForm(request.POST)
    reason = request.POST.get("reason", "")
    try:
        services.dispensation_withdraw(
            dispensation=dispensation,
            pharmacist=professional,
            reason=reason,
            client_address=client_address(request),
            public_url=_public_url(request),
        )
    except services.DispensationRefused as refusal:
        if refusal.status == 404:
            return _not_found(request)
        return render(
            request,
            "dispensing/withdraw.html",
            {**context, "form": form, "refusal": refusal.message},
            status=refusal.status,
        )
    messages.success(
        request, gettext("La dispensation a été retirée ; elle reste visible, marquée « retirée ».")
    )
    return HttpResponseRedirect(_viewer_url(public_id, document_id), status=303)


@never_cache
@require_GET
@professional_required
def certified_copy(
    request: HttpRequest,
    professional: Professional,
    public_id: uuid.UUID,
    document_id: uuid.UUID,
    dispensation_id: uuid.UUID,
) -> HttpResponse:
    """The latest certified copy of a dispensation, as a PDF (inline, for printing)."""
    try:
        patient, _, _, prescription = access_prescription(professional, public_id, document_id)
    except RecordNotFound as error:
        return _refused_read(request, professional, public_id, error, certification.ACTION_COPY_DOWNLOAD)
    dispensation = dispensation_of(prescription, dispensation_id)
    copy = dispensation.certified_copy if dispensation is not None else None
    if copy is None:
        missing = RecordNotFound("unknown", patient)
        return _refused_read(request, professional, public_id, missing, certification.ACTION_COPY_DOWNLOAD)
    certification.certified_copy_download_record(
        professional=professional, copy=copy, client_address=client_address(request)
    )
    with default_storage.open(copy.pdf.name, "rb") as fh:
        data = fh.read()
    response = HttpResponse(data, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="copie-certifiee-{copy.created_at:%Y%m%d-%H%M}.pdf"'
    response["X-Content-Type-Options"] = "nosniff"
    # Our own WeasyPrint output, but a stored document all the same: served like every other one.
    response["Content-Security-Policy"] = PDF_CSP
    response["Cache-Control"] = "no-store"
    return response


@never_cache
@require_GET
def verify_form(request: HttpRequest) -> HttpResponse:
    """ "Vérifier une copie certifiée": the code typed by hand leads to its verification page."""
    code = normalise_code(request.GET.get("code", ""))
    if code:
        return redirect("verification:verify", code=code)
    error = gettext("Code de vérification mal formé.") if request.GET.get("code") else ""
    return render(request, "dispensing/verify_form.html", {"error": error}, status=400 if error else 200)


@never_cache
@require_GET
def verify(request: HttpRequest, code: str) -> HttpResponse:
    """Public: is this certified copy genuine, and is it still the current copy?

    Shows the prescription identifier, the copy's date and the PDF's fingerprint, never clinical
    content. A logged-in pharmacist with a current access to the record also sees what remains owed.
    """
    address = client_address(request)
    if certification.verification_throttled(address):
        response = _message(
            request,
            gettext("Trop de vérifications"),
            gettext("Trop de vérifications depuis votre adresse : réessayez dans quelques minutes."),
            429,
        )
        response["Retry-After"] = str(getattr(settings, "ESANTE_VERIFY_RATE_WINDOW_SECONDS", 600))
        return response
    copy = certified_copy_by_code(code[:64])
    professional = active_professional(request)
    certification.certified_copy_verify_record(copy=copy, professional=professional, client_address=address)
    if copy is None:
        return render(request, "dispensing/verify.html", {"copy": None}, status=404)
    dispensation = copy.dispensation
    document = dispensation.prescription.document
    context: dict[str, Any] = {"copy": copy, "document": document, "current": copy.is_current}
    if not copy.is_current:
        latest = (
            CertifiedCopy.objects.filter(dispensation__prescription=dispensation.prescription)
            .order_by("-created_at", "-id")
            .first()
        )
        context["latest"] = latest if latest is not None and latest.pk != copy.pk else None
    if professional is not None and policy.may_dispense(professional.profession):
        try:
            patient, _, _, prescription = access_prescription(
                professional, document.patient.public_id, document.public_id
            )
        except RecordNotFound:
            pass
        else:
            context["line_states"] = prescription_line_states(prescription)
            context["viewer_url"] = _viewer_url(patient.public_id, document.public_id)
    return render(request, "dispensing/verify.html", context)
