"""« Mon dossier »: the patient's documents and prescriptions, a document, its bytes, hiding it."""

import uuid
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_http_methods

from esante.audit.catalogue import AuditAction
from esante.core.http import client_address
from esante.core.storage import StoredContentAltered, altered_page, verified_response
from esante.documents import cda
from esante.documents.models import MediaType
from esante.documents.views import stored_bytes, stored_response

from .. import selectors, services
from ..http import not_found_page, patient_required
from ..models import PatientAccount

# --- « Mon dossier » --------------------------------------------------------------------------


@never_cache
@require_GET
@patient_required
def record(request: HttpRequest, account: PatientAccount) -> HttpResponse:
    documents = list(selectors.own_documents(account.patient))
    prescriptions = selectors.own_prescriptions(account.patient)
    services.patient_trace(
        account,
        AuditAction.ESPACE_RECORD_VIEW,
        client_address=client_address(request),
        documents=len(documents),
    )
    return render(
        request,
        "espace/record.html",
        {"tab": "record", "account": account, "documents": documents, "prescriptions": prescriptions},
    )


def _own_document(request: HttpRequest, account: PatientAccount, document_id: uuid.UUID) -> Any:
    document = selectors.own_document(account.patient, document_id)
    if document is None:
        services.patient_not_found(
            account, what="document", object_id=str(document_id), client_address=client_address(request)
        )
    return document


@never_cache
@require_GET
@patient_required
def document(request: HttpRequest, account: PatientAccount, document_id: uuid.UUID) -> HttpResponse:
    found = _own_document(request, account, document_id)
    if found is None:
        return not_found_page(request)
    services.patient_trace(
        account,
        AuditAction.ESPACE_DOCUMENT_READ,
        client_address=client_address(request),
        object_type="document",
        object_id=str(found.public_id),
    )
    context: dict[str, Any] = {"tab": "record", "account": account, "document": found}
    try:
        if found.media_type == MediaType.CDA:
            context["cda_html"] = cda.render_html(cda.parse(stored_bytes(found)))
        elif found.media_type == MediaType.TEXT:
            context["text"] = stored_bytes(found).decode("utf-8")
    except StoredContentAltered:
        return altered_page(request)
    return render(request, "espace/document.html", context)


@never_cache
@require_GET
@xframe_options_sameorigin
@patient_required
def document_content(
    request: HttpRequest, account: PatientAccount, document_id: uuid.UUID
) -> HttpResponse | StreamingHttpResponse:
    """The bytes, under the professionals' viewer's policy (nothing in a document runs)."""
    from esante.documents.views import CONTENT_CSP, PDF_CSP

    found = _own_document(request, account, document_id)
    if found is None:
        return not_found_page(request)
    services.patient_trace(
        account,
        AuditAction.ESPACE_DOCUMENT_READ,
        client_address=client_address(request),
        object_type="document",
        object_id=str(found.public_id),
        content=True,
    )
    media = MediaType(found.media_type)
    content_type = {
        MediaType.PDF: "application/pdf",
        MediaType.CDA: "application/xml; charset=utf-8",
        MediaType.TEXT: "text/plain; charset=utf-8",
    }[media]
    try:
        response = stored_response(found, content_type=content_type)
    except StoredContentAltered:
        return altered_page(request)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = PDF_CSP if media == MediaType.PDF else CONTENT_CSP
    extension = {MediaType.PDF: "pdf", MediaType.CDA: "xml", MediaType.TEXT: "txt"}[media]
    disposition = "inline" if media == MediaType.PDF else "attachment"
    response["Content-Disposition"] = f'{disposition}; filename="document-{found.public_id}.{extension}"'
    response["Cache-Control"] = "no-store"
    return response


@never_cache
@require_http_methods(["GET", "POST"])
@patient_required
def document_visibility(
    request: HttpRequest, account: PatientAccount, document_id: uuid.UUID, hide: bool
) -> HttpResponse:
    """« Masquer » / « Afficher »: a confirmation page saying what it does, then the choice."""
    found = _own_document(request, account, document_id)
    if found is None:
        return not_found_page(request)
    if request.method == "POST":
        services.document_visibility_set(
            account=account, document=found, hidden=hide, client_address=client_address(request)
        )
        messages.success(
            request,
            gettext("Le document est masqué aux professionnels.")
            if hide
            else gettext(
                "Le document est de nouveau visible des professionnels qui ont accès à votre dossier."
            ),
        )
        return redirect("espace:choices")
    return render(
        request, "espace/confirm_document.html", {"tab": "choices", "document": found, "hide": hide}
    )


@never_cache
@require_GET
@xframe_options_sameorigin
@patient_required
def certified_copy(
    request: HttpRequest, account: PatientAccount, dispensation_id: uuid.UUID
) -> HttpResponse | StreamingHttpResponse:
    """The current certified copy of one of the patient's dispensations, as the pharmacist prints it."""
    from esante.documents.views import PDF_CSP

    copy = selectors.own_certified_copy(account.patient, dispensation_id)
    if copy is None:
        services.patient_not_found(
            account,
            what="certified_copy",
            object_id=str(dispensation_id),
            client_address=client_address(request),
        )
        return not_found_page(request)
    services.patient_trace(
        account,
        AuditAction.ESPACE_DOCUMENT_READ,
        client_address=client_address(request),
        object_type="CertifiedCopy",
        object_id=str(copy.public_id),
    )
    try:
        response = verified_response(
            copy.pdf.name, sha256=copy.pdf_sha256, size=None, content_type="application/pdf"
        )
    except StoredContentAltered:
        return altered_page(request)
    response["Content-Disposition"] = f'inline; filename="copie-certifiee-{copy.created_at:%Y%m%d-%H%M}.pdf"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = PDF_CSP
    response["Cache-Control"] = "no-store"
    return response
