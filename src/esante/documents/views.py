"""The patient record page (guide p.14): "Vue 360", "Vue documentaire", filters, search, viewer."""

import datetime
import uuid
from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET

from esante.access.gate import RecordNotFound
from esante.access.http import not_found_page, professional_required
from esante.accounts.models import Professional
from esante.audit.catalogue import AuditAction
from esante.core.replica import lag_tolerant
from esante.core.storage import StoredContentAltered, altered_page, open_verified, verified_response

from . import cda
from .gate import DocumentGate
from .models import Document, MediaType
from .selectors import (
    DocumentFilters,
    document_tree,
    filter_choices,
    filtered,
    filtered_summary,
    latest_per_class,
)
from .types import Binder

# The document's bytes never run in the portal: no script, no plugin, no form, nothing embedded.
# Every stored document is served with ``sandbox`` (an opaque origin: whatever a browser makes of
# the bytes cannot reach the portal's pages, cookies or storage) and ``nosniff`` (the declared
# type is the only one a browser may use).
CONTENT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"
# Tried in Chromium 156 (headless, the e2e browser), with the viewer's <iframe> and opened alone:
# its built-in PDF viewer renders a PDF served with this policy, ``sandbox`` included, as it did
# without. The same viewer still ran a test PDF's /OpenAction JavaScript (``app.alert``) under
# ``sandbox``: the header confines the viewer, it does not switch PDF scripts off. So PDFs with
# active content are refused at ingestion (``esante.documents.pdf``); the header is the second
# line. The ``sandbox`` *attribute* on the <iframe> is not usable: Chromium then refuses to load
# the PDF viewer at all (an error page in the frame).
PDF_CSP = "default-src 'none'; object-src 'self'; frame-ancestors 'self'; sandbox"


def _age(birth_date: datetime.date, today: datetime.date) -> int:
    return today.year - birth_date.year - ((today.month, today.day) < (birth_date.month, birth_date.day))


def _filters(request: HttpRequest, previous_visit: datetime.datetime | None) -> DocumentFilters:
    get = request.GET
    return DocumentFilters(
        type_code=get.get("type", "")[:16],
        class_code=get.get("classe", "")[:32],
        binder=get.get("classeur", "") if get.get("classeur", "") in Binder.values else "",
        author=get.get("auteur", "")[:200],
        date_from=parse_date(get.get("du", "") or "") if _valid_date(get.get("du")) else None,
        date_to=parse_date(get.get("au", "") or "") if _valid_date(get.get("au")) else None,
        new_since=previous_visit if get.get("nouveaux") == "1" else None,
        words=get.get("mots", "")[:200],
    )


def _valid_date(value: str | None) -> bool:
    try:
        return bool(value) and parse_date(value or "") is not None
    except ValueError:
        return False


@never_cache
@require_GET
@professional_required
def record(request: HttpRequest, professional: Professional, public_id: uuid.UUID) -> HttpResponse:
    """The patient's record. A full page load is an opening (``record.open``); the filters'
    partial updates (htmx) re-read the same record and a keyword search is traced on its own."""
    gate = DocumentGate.for_portal(request, professional)
    partial = bool(request.headers.get("HX-Request"))
    try:
        access = gate.open_record(public_id, reread=partial)
    except RecordNotFound:
        return not_found_page(request)
    patient, grant, previous_visit = access.patient, access.grant, access.previous_visit
    documents = gate.documents(access)
    filters = _filters(request, previous_visit)
    shown = filtered(documents, filters)
    # The record opens on "Vue 360"; the guide then clicks the "Vue documentaire" tab.
    view = "documentaire" if request.GET.get("vue") == "documentaire" else "360"
    context: dict[str, Any] = {
        "patient": patient,
        "grant": grant,
        "age": _age(patient.birth_date, timezone.localdate()),
        "view": view,
        "filters": filters,
        "previous_visit": previous_visit,
        "binders": Binder.choices,
        # Reversed once, not once per listed document: {{ viewer_prefix }}<document id>/
        "viewer_prefix": _viewer_prefix(patient.public_id),
        # The dispense icon of the documentary view: pharmacists holding a care or emergency access.
        "can_dispense": gate.may_dispense(grant),
    }

    def lists() -> dict[str, Any]:
        found: dict[str, Any] = {}
        if view == "360":
            found["latest"] = latest_per_class(shown)
            found["prescriptions"] = list(
                shown.filter(prescription__isnull=False)
                .select_related("prescription")
                .order_by("-clinical_at")[:20]
            )
        else:
            # One type chosen: show more of it; otherwise the newest 20 of each type. The counts
            # and the choices from the record's summary rows (the counts from the documents when
            # a date, "Nouveaux" or words narrow them).
            summary = gate.summary(access)
            found["tree"] = document_tree(
                shown, per_type=500 if filters.type_code else 20, summary=filtered_summary(summary, filters)
            )
            found["choices"] = filter_choices(summary)
        if filters.words:
            found["result_count"] = shown.count()
        return found

    # The access was decided on the primary above; the lists it opens may come from the hot
    # standby (``esante.core.replica``: at most ESANTE_REPLICA_MAX_LAG_SECONDS behind, and never
    # behind this session's own writes).
    context.update(lag_tolerant("record_documents", lists))
    if partial and not filters.words:
        # Every read of the record is traced: a filter or tab change re-reads it without reloading.
        gate.record_viewed(
            access,
            view=view,
            filters={key: str(value)[:100] for key, value in request.GET.items() if key != "vue" and value},
        )
    if filters.words:
        gate.record_searched(access, words=filters.words, results=context["result_count"])
    template = "documents/_documents.html" if partial else "documents/record.html"
    return render(request, template, context)


@never_cache
@require_GET
@professional_required
def viewer(
    request: HttpRequest, professional: Professional, public_id: uuid.UUID, document_id: uuid.UUID
) -> HttpResponse:
    """One document: metadata, then the content (PDF inline, CDA as readable HTML, text)."""
    try:
        access = DocumentGate.for_portal(request, professional).read_document(public_id, document_id)
    except RecordNotFound:
        return not_found_page(request)
    patient, grant, document = access.patient, access.grant, access.document
    context: dict[str, Any] = {
        "patient": patient,
        "grant": grant,
        "document": document,
        "age": _age(patient.birth_date, timezone.localdate()),
    }
    try:
        if document.media_type == MediaType.CDA:
            context["cda_html"] = cda.render_html(cda.parse(stored_bytes(document)))
        elif document.media_type == MediaType.TEXT:
            context["text"] = stored_bytes(document).decode("utf-8")
    except StoredContentAltered:
        return altered_page(request)
    if hasattr(document, "prescription"):
        context["prescription"] = document.prescription
        context["lines"] = list(document.prescription.lines.all())
    return render(request, "documents/viewer.html", context)


@never_cache
@require_GET
@xframe_options_sameorigin
@professional_required
def content(
    request: HttpRequest, professional: Professional, public_id: uuid.UUID, document_id: uuid.UUID
) -> HttpResponse | StreamingHttpResponse:
    """The document's bytes, with its own content type and a policy that lets nothing run."""
    gate = DocumentGate.for_portal(request, professional)
    try:
        document = gate.read_document(public_id, document_id, action=AuditAction.DOCUMENT_CONTENT).document
    except RecordNotFound:
        return not_found_page(request)
    content_type = {
        MediaType.PDF: "application/pdf",
        MediaType.CDA: "application/xml; charset=utf-8",
        MediaType.TEXT: "text/plain; charset=utf-8",
    }[MediaType(document.media_type)]
    try:
        response = stored_response(document, content_type=content_type)
    except StoredContentAltered:
        return altered_page(request)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = PDF_CSP if document.media_type == MediaType.PDF else CONTENT_CSP
    disposition = "inline" if document.media_type == MediaType.PDF else "attachment"
    extension = {MediaType.PDF: "pdf", MediaType.CDA: "xml", MediaType.TEXT: "txt"}[
        MediaType(document.media_type)
    ]
    response["Content-Disposition"] = f'{disposition}; filename="document-{document.public_id}.{extension}"'
    response["Cache-Control"] = "no-store"
    return response


def stored_bytes(document: Document) -> bytes:
    """The document's whole content (a CDA or a text to render), checked against its SHA-256."""
    return open_verified(document.content.name, sha256=document.sha256, size=document.size).read()


def stored_response(document: Document, *, content_type: str) -> StreamingHttpResponse:
    """The document's bytes streamed, checked against its SHA-256 (raises StoredContentAltered)."""
    return verified_response(
        document.content.name, sha256=document.sha256, size=document.size, content_type=content_type
    )


def _viewer_prefix(public_id: uuid.UUID) -> str:
    placeholder = uuid.UUID(int=0)
    url = reverse("documents:viewer", kwargs={"public_id": public_id, "document_id": placeholder})
    return url.removesuffix(f"{placeholder}/")
