"""DocumentReference (IHE MHD ITI-67 find, ITI-68 retrieve)."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from ninja import Router

from esante.access.selectors import RecordNotFound
from esante.audit.catalogue import AuditAction
from esante.audit.services import audit_via
from esante.core.http import client_address
from esante.core.storage import ALTERED_MESSAGE, StoredContentAltered
from esante.documents.gate import DocumentGate
from esante.documents.models import Document, MediaType
from esante.documents.views import CONTENT_CSP, PDF_CSP, stored_response
from esante.espace.selectors import own_document, own_documents
from esante.espace.services import patient_not_found, patient_trace
from esante.patients.models import Patient
from esante.patients.selectors import patient_public_id_by_matricule

from .. import document_reference, patient
from ..auth import ApiCaller, caller
from ..bundle import searchset
from ..capability import base_url
from ..outcome import FhirError, fhir_response
from .common import search_body

router = Router()


def document_gate(request: HttpRequest, who: ApiCaller) -> DocumentGate:
    assert who.professional is not None  # noqa: S101  (user context checked by ``caller``)
    return DocumentGate.for_api(request, who.professional)


def document_patient(document_id: str) -> str:
    """The patient id of a document id, for the gate to decide on (a fresh random id, which
    the gate traces as unknown, when there is no such document)."""
    try:
        parsed = uuid.UUID(document_id)
    except ValueError:
        return str(uuid.uuid4())
    found = Document.objects.filter(public_id=parsed).values_list("patient__public_id", flat=True).first()
    return str(found or uuid.uuid4())


def named_patient(matricule: str) -> str:
    """The patient id of a matricule, for the gate to decide on (a fresh random id, which the gate
    traces as unknown, when no patient has it)."""
    return str(patient_public_id_by_matricule(matricule) or uuid.uuid4())


@router.get("/DocumentReference")
def document_reference_search(request: HttpRequest) -> HttpResponse:
    """ITI-67: a patient's documents the caller may read (confidentiality, hidden documents)."""
    return _document_search(request, lambda: request.GET)


@router.post("/DocumentReference/_search")
def document_reference_search_post(request: HttpRequest) -> HttpResponse:
    """ITI-67 by POST."""
    return _document_search(request, lambda: search_body(request))


def _document_search(request: HttpRequest, read_params: Callable[[], QueryDict]) -> HttpResponse:
    who = caller(request, resource_type="DocumentReference", permission="s", patient_allowed=True)
    params = read_params()
    if who.patient_account is not None:
        return _own_documents_search(request, who, params)
    with audit_via(who.audit_details):
        subject = document_reference.patient_id(params) or named_patient(
            document_reference.patient_matricule(params)
        )
        gate = document_gate(request, who)
        access = gate.record(subject, action=AuditAction.DOCUMENT_SEARCH)
        documents, traced = document_reference.search(gate.documents(access), params)
        page = _documents_page(documents, params, access.patient)
        gate.documents_searched(access, filters=traced, results=page.total)
        return _documents_bundle(request, params, page)


@dataclass(frozen=True)
class _Page:
    rows: list[Document]
    total: int
    page: int
    count: int


def _documents_page(documents: QuerySet[Document], params: QueryDict, owner: Patient) -> _Page:
    """The page ``_count`` / ``_page`` ask for, and the total, of ``documents``, which are all
    ``owner``'s (read once, by the gate, instead of once more with each row)."""
    count, page = patient.page_parameters(
        params, default=settings.ESANTE_FHIR_PAGE_SIZE, maximum=settings.ESANTE_FHIR_MAX_PAGE_SIZE
    )
    offset = (page - 1) * count
    rows = list(documents[offset : offset + count])
    # A page that is neither full nor empty is the last one: it says the total without a COUNT.
    total = offset + len(rows) if 0 < len(rows) < count else documents.count()
    for row in rows:
        row.patient = owner
    return _Page(rows=rows, total=total, page=page, count=count)


def _documents_bundle(request: HttpRequest, params: QueryDict, page: _Page) -> HttpResponse:
    base = base_url(request)
    link_params = [
        (k, v) for k in params if k not in ("_count", "_page", "_format") for v in params.getlist(k)
    ]
    return fhir_response(
        searchset(
            base=base,
            resource_type="DocumentReference",
            resources=[document_reference.to_resource(row, base) for row in page.rows],
            total=page.total,
            link_params=link_params,
            page=page.page,
            count=page.count,
        )
    )


def _own_documents_search(request: HttpRequest, who: ApiCaller, params: QueryDict) -> HttpResponse:
    """A patient's token: the documents of their own record (hidden ones included). The search
    names the patient as any MHD search does; naming anybody else finds nothing (404, traced)."""
    account = who.patient_account
    with audit_via(who.audit_details):
        subject = document_reference.patient_id(params) or named_patient(
            document_reference.patient_matricule(params)
        )
        if subject != str(account.patient.public_id):
            patient_not_found(
                account, what="patient", object_id=subject, client_address=client_address(request)
            )
            raise RecordNotFound("not_found")
        documents, traced = document_reference.search(own_documents(account.patient), params)
        page = _documents_page(documents, params, account.patient)
        patient_trace(
            account,
            AuditAction.ESPACE_RECORD_VIEW,
            client_address=client_address(request),
            filters=traced,
            results=page.total,
        )
        return _documents_bundle(request, params, page)


def _own_document(request: HttpRequest, who: ApiCaller, document_id: str) -> Document:
    account = who.patient_account
    try:
        parsed = uuid.UUID(document_id)
    except ValueError:
        parsed = None
    found = own_document(account.patient, parsed) if parsed is not None else None
    if found is None:
        patient_not_found(
            account, what="document", object_id=document_id, client_address=client_address(request)
        )
        raise RecordNotFound("not_found")
    return found


@router.get("/DocumentReference/{document_id}")
def document_reference_read(request: HttpRequest, document_id: str) -> HttpResponse:
    """One DocumentReference, traced as a document read; 404 when missing or not visible."""
    who = caller(request, resource_type="DocumentReference", permission="r", patient_allowed=True)
    if who.patient_account is not None:
        with audit_via(who.audit_details):
            document = _own_document(request, who, document_id)
            patient_trace(
                who.patient_account,
                AuditAction.ESPACE_DOCUMENT_READ,
                client_address=client_address(request),
                object_type="document",
                object_id=str(document.public_id),
            )
            return fhir_response(document_reference.to_resource(document, base_url(request)))
    with audit_via(who.audit_details):
        access = document_gate(request, who).read_document(document_patient(document_id), document_id)
        return fhir_response(document_reference.to_resource(access.document, base_url(request)))


def _accepts(request: HttpRequest, media_type: str) -> bool:
    """Whether the request's ``Accept`` (absent: anything) takes ``media_type``."""
    header = request.headers.get("Accept", "").strip()
    if not header:
        return True
    main = media_type.split("/")[0]
    offered = {part.split(";")[0].strip().lower() for part in header.split(",")}
    return bool(offered & {"*/*", f"{main}/*", media_type.lower()})


@router.get("/DocumentReference/{document_id}/content")
def document_reference_content(
    request: HttpRequest, document_id: str
) -> HttpResponse | StreamingHttpResponse:
    """ITI-68: the document's bytes with their content type, under the portal's sandbox policy."""
    who = caller(request, resource_type="DocumentReference", permission="r", patient_allowed=True)
    with audit_via(who.audit_details):
        if who.patient_account is not None:
            document = _own_document(request, who, document_id)
            acceptable(request, document)
            patient_trace(
                who.patient_account,
                AuditAction.ESPACE_DOCUMENT_READ,
                client_address=client_address(request),
                object_type="document",
                object_id=str(document.public_id),
                content=True,
            )
            return content_response(document)
        gate = document_gate(request, who)
        access = gate.document(
            document_patient(document_id), document_id, action=AuditAction.DOCUMENT_CONTENT
        )
        document = access.document
        acceptable(request, document)
        gate.document_read(document, action=AuditAction.DOCUMENT_CONTENT)
        return content_response(document)


def acceptable(request: HttpRequest, document: Document) -> None:
    if not _accepts(request, document.media_type):
        # ITI-68: the bytes exist only in their own type; nothing was read, nothing traced.
        message = f"Ce document n'existe qu'au format {document.media_type}."
        raise FhirError(406, "not-acceptable", message, issue_type="not-supported")


def content_response(document: Document) -> HttpResponse | StreamingHttpResponse:
    try:
        response = stored_response(document, content_type=document.media_type)
    except StoredContentAltered:
        raise FhirError(500, "content-altered", str(ALTERED_MESSAGE), issue_type="exception") from None
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = PDF_CSP if document.media_type == MediaType.PDF else CONTENT_CSP
    response["Content-Disposition"] = "attachment"
    response["Cache-Control"] = "no-store"
    return response
