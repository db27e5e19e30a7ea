"""Portal pages of dispensing: "Marquer comme dispensé", withdrawal, the certified copy, and the
public verification page of certified copies (``/verifier/<code>/``)."""

import uuid
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from esante.access.gate import RecordNotFound
from esante.access.http import active_professional, client_address, not_found_page, professional_required
from esante.accounts.models import Professional
from esante.audit.catalogue import AuditAction
from esante.core.storage import StoredContentAltered, altered_page, verified_response
from esante.documents.models import Prescription
from esante.documents.views import PDF_CSP

from . import certification, services, withdrawal
from .forms import DispenseForm, WithdrawForm
from .gate import DispensingGate
from .models import CertifiedCopy
from .selectors import (
    certified_copy_by_code,
    copy_is_current,
    last_active_dispensation,
    normalise_code,
    prescription_line_states,
)


def _public_url(request: HttpRequest) -> str:
    return str(getattr(settings, "ESANTE_PUBLIC_URL", "") or request.build_absolute_uri("/"))


def _viewer_url(public_id: uuid.UUID, document_id: uuid.UUID) -> str:
    return reverse("documents:viewer", kwargs={"public_id": public_id, "document_id": document_id})


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
    gate = DispensingGate.for_portal(request, professional)
    try:
        if request.method == "GET":
            access = gate.dispense_page(public_id, document_id)
        else:
            access = gate.prescription(public_id, document_id, action=AuditAction.PRESCRIPTION_DISPENSE)
    except RecordNotFound:
        return not_found_page(request)
    except services.DispensationRefused as refusal:
        return _message(request, gettext("Action réservée aux pharmaciens"), refusal.message, 403)
    patient, grant, document, prescription = (
        access.patient,
        access.grant,
        access.document,
        access.prescription,
    )
    states = prescription_line_states(prescription)
    context = _form_context(patient=patient, grant=grant, document=document, prescription=prescription)
    if request.method == "GET":
        form = DispenseForm(
            initial={"kind": "full", "state_version": prescription.state_version}, line_states=states
        )
        return render(request, "dispensing/mark.html", {**context, "form": form, "line_states": states})

    form = DispenseForm(request.POST, line_states=states)
    # A non-pharmacist's attempt goes to the service whatever the form says: it is refused and traced.
    if gate.may_post_dispensation() and not form.is_valid():
        gate.dispense_form_refused(access, fields=sorted(form.errors))
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
            checked_access=(patient, grant),
        )
    except services.DispensationRefused as refusal:
        if refusal.status == 404:
            return not_found_page(request)
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
    else:
        text += " " + gettext(
            "Copie certifiée en préparation… Elle apparaît ci-dessous dès qu'elle est prête."
        )
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
    action = AuditAction.DISPENSATION_WITHDRAW if request.method == "POST" else AuditAction.DOCUMENT_READ
    gate = DispensingGate.for_portal(request, professional)
    try:
        access = gate.prescription(public_id, document_id, action=action)
        dispensation = gate.dispensation(access, dispensation_id, action=action)
    except RecordNotFound:
        return not_found_page(request)
    context = {
        "patient": access.patient,
        "grant": access.grant,
        "document": access.document,
        "dispensation": dispensation,
    }
    if request.method == "GET":
        try:
            gate.withdraw_page(access, dispensation)
        except services.DispensationRefused as refusal:
            return _message(request, gettext("Retrait impossible"), refusal.message, 403)
        return render(request, "dispensing/withdraw.html", {**context, "form": WithdrawForm()})
    form = WithdrawForm(request.POST)
    reason = request.POST.get("reason", "")
    try:
        withdrawal.dispensation_withdraw(
            dispensation=dispensation,
            pharmacist=professional,
            reason=reason,
            client_address=client_address(request),
            public_url=_public_url(request),
        )
    except services.DispensationRefused as refusal:
        if refusal.status == 404:
            return not_found_page(request)
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
) -> HttpResponse | StreamingHttpResponse:
    """The latest certified copy of a dispensation, as a PDF (inline, for printing)."""
    try:
        copy = DispensingGate.for_portal(request, professional).certified_copy(
            public_id, document_id, dispensation_id
        )
    except RecordNotFound:
        return not_found_page(request)
    try:
        response = verified_response(
            copy.pdf.name, sha256=copy.pdf_sha256, size=None, content_type="application/pdf"
        )
    except StoredContentAltered:
        return altered_page(request)
    response["Content-Disposition"] = f'inline; filename="copie-certifiee-{copy.created_at:%Y%m%d-%H%M}.pdf"'
    response["X-Content-Type-Options"] = "nosniff"
    # Our own WeasyPrint output, but a stored document all the same: served like every other one.
    response["Content-Security-Policy"] = PDF_CSP
    response["Cache-Control"] = "no-store"
    return response


@never_cache
@require_GET
@professional_required
def certified_copy_state(
    request: HttpRequest,
    professional: Professional,
    public_id: uuid.UUID,
    document_id: uuid.UUID,
    dispensation_id: uuid.UUID,
) -> HttpResponse:
    """The viewer's « Copie certifiée en préparation… », asked again (htmx) until the link to the
    copy replaces it. Says only whether the copy is ready: a refusal is traced, an answer is not
    (the viewer's page traced the read)."""
    gate = DispensingGate.for_portal(request, professional)
    try:
        access = gate.prescription(public_id, document_id, action=AuditAction.DOCUMENT_READ)
        dispensation = gate.dispensation(access, dispensation_id, action=AuditAction.DOCUMENT_READ)
    except RecordNotFound:
        return not_found_page(request)
    copies = list(dispensation.certified_copies.order_by("-created_at", "-id"))
    latest = last_active_dispensation(access.prescription)
    pending = latest is not None and latest.pk == dispensation.pk and not copy_is_current(dispensation)
    context = {
        "patient": access.patient,
        "document": access.document,
        "dispensation": dispensation,
        "copy": copies[0] if copies else None,
        "pending": pending,
    }
    return render(request, "dispensing/_copy_state.html", context)


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
    readable = (
        DispensingGate(actor=professional, client_address=address).readable_prescription(document)
        if professional is not None
        else None
    )
    if readable is not None:
        context["line_states"] = prescription_line_states(readable.prescription)
        context["viewer_url"] = _viewer_url(readable.patient.public_id, document.public_id)
    return render(request, "dispensing/verify.html", context)
