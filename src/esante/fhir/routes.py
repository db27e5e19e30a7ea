"""The resource routes of the API (registered on ``api.api``). HTTP only: each route checks the
caller (``auth.caller``), asks the access gate, and maps the answer with one mapping module per
resource. Every event written while it runs names the software (``audit_via``)."""

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.http import HttpRequest, HttpResponse, QueryDict
from django.utils import timezone

from esante.access import services as access_services
from esante.access.gate import RecordGate
from esante.audit.catalogue import AuditAction
from esante.audit.services import audit_via
from esante.dispensing.gate import DispensingGate
from esante.dispensing.refusals import DispensationRefused
from esante.dispensing.selectors import prescription_lines_of
from esante.dispensing.services import prescription_mark_dispensed
from esante.documents.gate import DocumentGate
from esante.documents.models import Document, MediaType
from esante.documents.views import CONTENT_CSP, PDF_CSP

from . import declare_access, document_reference, medication_dispense, medication_request, patient
from .api import api
from .auth import ApiCaller, caller
from .bundle import searchset
from .capability import base_url
from .models import Token
from .outcome import FhirError, fhir_response, invalid

FOUND_MAX = 500


def _gate(request: HttpRequest, who: ApiCaller) -> RecordGate:
    assert who.professional is not None  # noqa: S101  (user context checked by ``caller``)
    return RecordGate.for_api(request, who.professional)


def read_json(request: HttpRequest) -> dict[str, Any]:
    """The request's FHIR JSON body; 415 for another media type, 400 when it is no JSON object."""
    media_type = request.content_type or ""
    if media_type not in ("application/fhir+json", "application/json"):
        raise FhirError(
            415,
            "unsupported-media-type",
            "Le corps doit être en application/fhir+json.",
            issue_type="not-supported",
        )
    try:
        body = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        raise invalid("invalid-json", "Le corps n'est pas du JSON valide.") from None
    if not isinstance(body, dict):
        raise invalid("invalid-json", "Le corps doit être un objet JSON (une ressource FHIR).")
    return body


def search_body(request: HttpRequest) -> QueryDict:
    """The parameters of a POST ``_search``: the form-encoded body (FHIR's way), or a
    ``Parameters`` resource with string values (for clients that only send JSON, such as
    fhirpy), added to the query string's. Never from the URL alone: criteria stay out of logs."""
    params = request.GET.copy()
    if request.content_type == "application/x-www-form-urlencoded":
        for key in request.POST:
            params.setlist(key, [*params.getlist(key), *request.POST.getlist(key)])
        return params
    if request.content_type not in ("application/fhir+json", "application/json"):
        raise FhirError(
            415,
            "unsupported-media-type",
            "POST _search attend application/x-www-form-urlencoded (ou une ressource Parameters).",
            issue_type="not-supported",
        )
    body = read_json(request)
    if body.get("resourceType") != "Parameters" or not isinstance(body.get("parameter", []), list):
        raise invalid("invalid-resource", "Le corps doit être une ressource Parameters.")
    for parameter in body.get("parameter", []):
        name = parameter.get("name") if isinstance(parameter, dict) else None
        value = parameter.get("valueString") if isinstance(parameter, dict) else None
        if not isinstance(name, str) or not isinstance(value, str):
            raise invalid("invalid-parameter", "Chaque paramètre de recherche a un nom et une valueString.")
        params.appendlist(name, value)
    return params


def _remember_found(token: Token, public_ids: list[str]) -> None:
    """Notes the patients a search showed to this token (for ``$declare-access``)."""
    if not public_ids:
        return
    now = int(timezone.now().timestamp())
    window = int(settings.ESANTE_SEARCH_RATE_WINDOW_SECONDS)
    with transaction.atomic():
        locked = Token.objects.select_for_update().get(pk=token.pk)
        found = {k: v for k, v in locked.found_patients.items() if now - v < window}
        found.update(dict.fromkeys(public_ids, now))
        locked.found_patients = dict(
            sorted(found.items(), key=lambda item: item[1], reverse=True)[:FOUND_MAX]
        )
        locked.save(update_fields=["found_patients"])


def _found_by_search(token: Token, public_id: str) -> bool:
    shown = Token.objects.filter(pk=token.pk).values_list("found_patients", flat=True).first() or {}
    at = shown.get(public_id)
    return at is not None and timezone.now().timestamp() - at < int(
        settings.ESANTE_SEARCH_RATE_WINDOW_SECONDS
    )


# --- Patient (PDQm ITI-78) ---------------------------------------------------------------------


def _patient_search(request: HttpRequest, read_params: Callable[[], QueryDict]) -> HttpResponse:
    who = caller(request, resource_type="Patient", permission="s")
    params = read_params()  # only once the caller is known: a stranger's body is never read
    with audit_via(who.audit_details):
        criteria = patient.search_criteria(params)
        count, page = patient.page_parameters(
            params, default=settings.ESANTE_FHIR_PAGE_SIZE, maximum=settings.ESANTE_FHIR_MAX_PAGE_SIZE
        )
        try:
            result = _gate(request, who).search(criteria=criteria, page=page, page_size=count)
        except access_services.SearchRateLimited:
            raise FhirError(
                429,
                "rate-limited",
                "Trop de recherches de patients en peu de temps : patientez avant de recommencer.",
                issue_type="throttled",
                headers={"Retry-After": str(settings.ESANTE_SEARCH_RATE_WINDOW_SECONDS)},
            ) from None
        rows = result.rows if result.page == page else []
        _remember_found(who.token, [str(row.public_id) for row in rows])
        base = base_url(request)
        # Never a matricule in a link (links land in access logs): an identifier search finds
        # one patient at most, so it has no next page to link to.
        safe = [
            (k, v)
            for k in params
            if k not in ("identifier", "_count", "_page", "_format")
            for v in params.getlist(k)
        ]
        bundle = searchset(
            base=base,
            resource_type="Patient",
            resources=[patient.to_resource(row, base) for row in rows],
            total=result.total,
            link_params=safe,
            page=page,
            count=count,
        )
        return fhir_response(bundle)


@api.get("/Patient")
def patient_search_get(request: HttpRequest) -> HttpResponse:
    """ITI-78 by GET (software should prefer POST ``_search``: no matricule in a URL)."""
    return _patient_search(request, lambda: request.GET)


@api.post("/Patient/_search")
def patient_search_post(request: HttpRequest) -> HttpResponse:
    """ITI-78 by POST (form-encoded parameters in the body)."""
    return _patient_search(request, lambda: search_body(request))


@api.get("/Patient/{patient_id}")
def patient_read(request: HttpRequest, patient_id: str) -> HttpResponse:
    """The patient's identity, under a current grant; 404 otherwise (same as missing)."""
    who = caller(request, resource_type="Patient", permission="r")
    with audit_via(who.audit_details):
        access = _gate(request, who).read_patient(patient_id)
        return fhir_response(patient.to_resource(access.patient, base_url(request)))


@api.post("/Patient/{patient_id}/$declare-access")
def patient_declare_access(request: HttpRequest, patient_id: str) -> HttpResponse:
    """Opens an access to the record, as the portal's dialog does, with its rules and audit."""
    who = caller(request, resource_type="Patient", permission="r")
    with audit_via(who.audit_details):
        declaration = declare_access.from_parameters(read_json(request))
        gate = _gate(request, who)
        state = gate.dialog(patient_id, found_by_search=_found_by_search(who.token, patient_id))
        grant = gate.grant(
            mode=declaration.mode,
            patient=state.patient,
            motif=declaration.motif,
            conditions_accepted=declaration.conditions_accepted,
        )
        return fhir_response(declare_access.to_parameters(grant))


# --- DocumentReference (MHD ITI-67, ITI-68) -----------------------------------------------------


def _document_gate(request: HttpRequest, who: ApiCaller) -> DocumentGate:
    assert who.professional is not None  # noqa: S101  (user context checked by ``caller``)
    return DocumentGate.for_api(request, who.professional)


def _document_patient(document_id: str) -> str:
    """The patient id of a document id, for the gate to decide on (a fresh random id, which
    the gate traces as unknown, when there is no such document)."""
    try:
        parsed = uuid.UUID(document_id)
    except ValueError:
        return str(uuid.uuid4())
    found = Document.objects.filter(public_id=parsed).values_list("patient__public_id", flat=True).first()
    return str(found or uuid.uuid4())


@api.get("/DocumentReference")
def document_reference_search(request: HttpRequest) -> HttpResponse:
    """ITI-67: a patient's documents the caller may read (confidentiality, hidden documents)."""
    return _document_search(request, lambda: request.GET)


@api.post("/DocumentReference/_search")
def document_reference_search_post(request: HttpRequest) -> HttpResponse:
    """ITI-67 by POST."""
    return _document_search(request, lambda: search_body(request))


def _document_search(request: HttpRequest, read_params: Callable[[], QueryDict]) -> HttpResponse:
    who = caller(request, resource_type="DocumentReference", permission="s")
    params = read_params()
    with audit_via(who.audit_details):
        subject = document_reference.patient_id(params)
        count, page = patient.page_parameters(
            params, default=settings.ESANTE_FHIR_PAGE_SIZE, maximum=settings.ESANTE_FHIR_MAX_PAGE_SIZE
        )
        gate = _document_gate(request, who)
        access = gate.record(subject, action=AuditAction.DOCUMENT_SEARCH)
        documents, traced = document_reference.search(gate.documents(access), params)
        total = documents.count()
        offset = (page - 1) * count
        rows = list(documents[offset : offset + count]) if offset < total else []
        gate.documents_searched(access, filters=traced, results=total)
        base = base_url(request)
        link_params = [
            (k, v) for k in params if k not in ("_count", "_page", "_format") for v in params.getlist(k)
        ]
        return fhir_response(
            searchset(
                base=base,
                resource_type="DocumentReference",
                resources=[document_reference.to_resource(row, base) for row in rows],
                total=total,
                link_params=link_params,
                page=page,
                count=count,
            )
        )


@api.get("/DocumentReference/{document_id}")
def document_reference_read(request: HttpRequest, document_id: str) -> HttpResponse:
    """One DocumentReference, traced as a document read; 404 when missing or not visible."""
    who = caller(request, resource_type="DocumentReference", permission="r")
    with audit_via(who.audit_details):
        access = _document_gate(request, who).read_document(_document_patient(document_id), document_id)
        return fhir_response(document_reference.to_resource(access.document, base_url(request)))


def _accepts(request: HttpRequest, media_type: str) -> bool:
    """Whether the request's ``Accept`` (absent: anything) takes ``media_type``."""
    header = request.headers.get("Accept", "").strip()
    if not header:
        return True
    main = media_type.split("/")[0]
    offered = {part.split(";")[0].strip().lower() for part in header.split(",")}
    return bool(offered & {"*/*", f"{main}/*", media_type.lower()})


@api.get("/DocumentReference/{document_id}/content")
def document_reference_content(request: HttpRequest, document_id: str) -> HttpResponse:
    """ITI-68: the document's bytes with their content type, under the portal's sandbox policy."""
    who = caller(request, resource_type="DocumentReference", permission="r")
    with audit_via(who.audit_details):
        gate = _document_gate(request, who)
        access = gate.document(
            _document_patient(document_id), document_id, action=AuditAction.DOCUMENT_CONTENT
        )
        document = access.document
        if not _accepts(request, document.media_type):
            # ITI-68: the bytes exist only in their own type; nothing was read, nothing traced.
            message = f"Ce document n'existe qu'au format {document.media_type}."
            raise FhirError(406, "not-acceptable", message, issue_type="not-supported")
        gate.document_read(document, action=AuditAction.DOCUMENT_CONTENT)
        with default_storage.open(document.content.name, "rb") as fh:
            data = fh.read()
        response = HttpResponse(data, content_type=document.media_type)
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = PDF_CSP if document.media_type == MediaType.PDF else CONTENT_CSP
        response["Content-Disposition"] = "attachment"
        response["Cache-Control"] = "no-store"
        return response


# --- MedicationRequest (the lines of a patient's prescriptions) ---------------------------------


@api.get("/MedicationRequest")
def medication_request_search(request: HttpRequest) -> HttpResponse:
    """The prescription lines of a patient's prescriptions the caller may read, with what
    remains to be delivered (search by ``patient``, ``status``, ``authoredon``)."""
    who = caller(request, resource_type="MedicationRequest", permission="s")
    params = request.GET
    with audit_via(who.audit_details):
        subject = document_reference.patient_id(params)
        count, page = patient.page_parameters(
            params, default=settings.ESANTE_FHIR_PAGE_SIZE, maximum=settings.ESANTE_FHIR_MAX_PAGE_SIZE
        )
        gate = _document_gate(request, who)
        access = gate.record(subject, action=AuditAction.PRESCRIPTION_SEARCH)
        lines, traced = medication_request.search(prescription_lines_of(gate.documents(access)), params)
        total = lines.count()
        offset = (page - 1) * count
        rows = list(lines[offset : offset + count]) if offset < total else []
        gate.documents_searched(access, filters=traced, results=total, action=AuditAction.PRESCRIPTION_SEARCH)
        base = base_url(request)
        link_params = [
            (k, v) for k in params if k not in ("_count", "_page", "_format") for v in params.getlist(k)
        ]
        return fhir_response(
            searchset(
                base=base,
                resource_type="MedicationRequest",
                resources=[medication_request.to_resource(row) for row in rows],
                total=total,
                link_params=link_params,
                page=page,
                count=count,
            )
        )


# --- MedicationDispense (create) ----------------------------------------------------------------

#: Dispensing refusals the caller can only resolve by reading the prescription again (409) or
#: that break a business rule of time (422); the others keep the service's status.
_DISPENSE_STATUS = {"over_delivery": 409, "expired": 422, "series_expired": 422, "bad_quantity": 400}


def _if_match(request: HttpRequest) -> int | None:
    value = request.headers.get("If-Match", "").strip()
    if not value:
        return None
    match = re.fullmatch(r'(?:W/)?"(\d{1,9})"', value)
    if match is None:
        raise FhirError(412, "precondition-failed", "If-Match doit être l'ETag de la prescription (W/\"n\").",
                        issue_type="conflict")  # fmt: skip
    return int(match[1])


@api.post("/MedicationDispense")
def medication_dispense_create(request: HttpRequest) -> HttpResponse:
    """Records a full or partial delivery of one prescription line, with the portal's guarantees:
    never beyond what was prescribed, even under concurrency (409), a stale ``If-Match`` (412),
    the validity windows (422). The certified copy is issued as on the portal."""
    who = caller(request, resource_type="MedicationDispense", permission="c")
    with audit_via(who.audit_details):
        asked = medication_dispense.from_resource(read_json(request))
        based_on = _if_match(request)
        assert who.professional is not None  # noqa: S101
        gate = DispensingGate.for_api(request, who.professional)
        access = gate.prescription(
            _document_patient(str(asked.document_id)),
            asked.document_id,
            action=AuditAction.PRESCRIPTION_DISPENSE,
        )
        line = access.prescription.lines.filter(position=asked.position).first()
        if line is None:
            raise invalid("unknown-line", "Cette MedicationRequest n'existe pas dans la prescription.")
        try:
            dispensation = prescription_mark_dispensed(
                prescription=access.prescription,
                pharmacist=who.professional,
                kind="partial",
                based_on_version=access.prescription.state_version if based_on is None else based_on,
                lines={line.pk: asked.quantity},
                client_address=gate.client_address,
                public_url=str(getattr(settings, "ESANTE_PUBLIC_URL", "") or request.build_absolute_uri("/")),
            )
        except DispensationRefused as refusal:
            if refusal.status == 404:
                raise FhirError(404, "not-found", refusal.message, issue_type="not-found") from None
            status = _DISPENSE_STATUS.get(refusal.code, refusal.status)
            if refusal.code == "stale_version" and based_on is not None:
                status = 412
            issue_type = {403: "forbidden", 409: "conflict", 412: "conflict", 422: "business-rule"}.get(
                status, "invalid"
            )
            raise FhirError(
                status, refusal.code.replace("_", "-"), refusal.message, issue_type=issue_type
            ) from None
        resource = medication_dispense.to_resource(dispensation, line, asked.quantity)
        return fhir_response(
            resource,
            status=201,
            headers={"Location": f"{base_url(request)}/MedicationDispense/{dispensation.public_id}"},
        )
