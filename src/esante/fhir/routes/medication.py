"""MedicationRequest (the lines of a patient's prescriptions) and MedicationDispense create."""

import re
import uuid

from django.conf import settings
from django.db.models import F
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone
from ninja import Router

from esante.audit.catalogue import AuditAction
from esante.audit.services import audit_via
from esante.core.storage import ALTERED_MESSAGE, StoredContentAltered, open_verified
from esante.dispensing.certification import certified_copy_download_record
from esante.dispensing.gate import DispensingGate
from esante.dispensing.refusals import DispensationRefused
from esante.dispensing.selectors import dispensation_subject, prescription_lines_of
from esante.dispensing.services import prescription_mark_dispensed
from esante.dispensing.withdrawal import dispensation_withdraw
from esante.documents.models import PrescriptionLine
from esante.documents.views import PDF_CSP

from .. import binary, document_reference, medication_dispense, medication_request, patient
from ..auth import ApiCaller, caller
from ..bundle import searchset
from ..capability import base_url
from ..outcome import FhirError, fhir_response, invalid
from .common import read_json
from .documents import acceptable, content_response, document_gate, document_patient

router = Router()


@router.get("/MedicationRequest")
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
        gate = document_gate(request, who)
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


def dispense_target(document_id: uuid.UUID, position: int) -> tuple[str, PrescriptionLine | None]:
    """The patient id of a prescription's document, for the gate to decide on, and the line at
    ``position`` of that prescription, in one query (read before the gate decides, used only
    once it has: the caller learns nothing of a document it may not read). When there is no
    such line: the patient id alone (a fresh random id when there is no such document either)."""
    line = (
        PrescriptionLine.objects.filter(prescription__document__public_id=document_id, position=position)
        .annotate(patient_public_id=F("prescription__document__patient__public_id"))
        .first()
    )
    if line is None:
        return document_patient(str(document_id)), None
    return str(line.patient_public_id), line  # type: ignore[attr-defined]


def _if_match(request: HttpRequest) -> int | None:
    value = request.headers.get("If-Match", "").strip()
    if not value:
        return None
    match = re.fullmatch(r'(?:W/)?"(\d{1,9})"', value)
    if match is None:
        raise FhirError(412, "precondition-failed", "If-Match doit être l'ETag de la prescription (W/\"n\").",
                        issue_type="conflict")  # fmt: skip
    return int(match[1])


@router.post("/MedicationDispense")
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
        patient_id, line = dispense_target(asked.document_id, asked.position)
        access = gate.prescription(patient_id, asked.document_id, action=AuditAction.PRESCRIPTION_DISPENSE)
        if line is None or line.prescription_id != access.prescription.pk:
            raise invalid("unknown-line", "Cette MedicationRequest n'existe pas dans la prescription.")
        line.prescription = access.prescription
        medication_dispense.check_line(
            asked, patient_id=str(access.patient.public_id), medication_code=line.medication_code
        )
        refusal = medication_dispense.business_refusal(
            asked,
            matricule=who.professional.matricule,
            prescribed_at=access.prescription.prescribed_at,
            now=timezone.now(),
        )
        if refusal is not None:
            gate.refuse(
                AuditAction.PRESCRIPTION_DISPENSE,
                reason=refusal.code.replace("-", "_"),
                patient=access.patient,
                object_type="Prescription",
                object_id=str(access.document.public_id),
            )
            raise refusal
        try:
            dispensation = prescription_mark_dispensed(
                prescription=access.prescription,
                pharmacist=who.professional,
                kind="partial",
                based_on_version=access.prescription.state_version if based_on is None else based_on,
                lines={line.pk: asked.quantity},
                client_address=gate.client_address,
                public_url=str(getattr(settings, "ESANTE_PUBLIC_URL", "") or request.build_absolute_uri("/")),
                checked_access=(access.patient, access.grant),
                handed_over_at=asked.handed_over_at,
            )
        except DispensationRefused as refused:
            raise _dispense_refused(
                refused, _DISPENSE_STATUS, stale_status=412 if based_on is not None else None
            ) from None
        resource = medication_dispense.to_resource(
            dispensation, line, asked.quantity, patient_id=str(access.patient.public_id)
        )
        return fhir_response(
            resource,
            status=201,
            headers={"Location": f"{base_url(request)}/MedicationDispense/{dispensation.public_id}"},
        )


def _dispense_refused(
    refusal: DispensationRefused, statuses: dict[str, int], *, stale_status: int | None = None
) -> FhirError:
    """A dispensing service's refusal as the API says it (``statuses`` overrides its status)."""
    if refusal.status == 404:
        return FhirError(404, "not-found", refusal.message, issue_type="not-found")
    status = statuses.get(refusal.code, refusal.status)
    if refusal.code == "stale_version" and stale_status is not None:
        status = stale_status
    issue_type = {403: "forbidden", 409: "conflict", 412: "conflict", 422: "business-rule"}.get(
        status, "invalid"
    )
    return FhirError(status, refusal.code.replace("_", "-"), refusal.message, issue_type=issue_type)


#: Withdrawal refusals: the window closed is a business rule of time (422).
_WITHDRAW_STATUS = {"window_closed": 422, "reason_missing": 400, "reason_too_long": 400}


@router.put("/MedicationDispense/{dispense_id}")
def medication_dispense_withdraw(request: HttpRequest, dispense_id: str) -> HttpResponse:
    """Withdraws a dispensation recorded by mistake: an update to ``entered-in-error`` with the
    reason in ``statusReasonCodeableConcept.text``, by the pharmacist who recorded it, within the
    withdrawal window — the portal's rules (403, 409 already withdrawn, 422 window closed). Any
    other change is refused: a dispensation is never edited."""
    who = caller(request, resource_type="MedicationDispense", permission="u")
    with audit_via(who.audit_details):
        reason = medication_dispense.withdrawal_reason(dispense_id, read_json(request))
        assert who.professional is not None  # noqa: S101
        gate = DispensingGate.for_api(request, who.professional)
        patient_id, document_id = dispensation_subject(dispense_id) or (str(uuid.uuid4()), str(uuid.uuid4()))
        action = AuditAction.DISPENSATION_WITHDRAW
        access = gate.prescription(patient_id, document_id, action=action)
        dispensation = gate.dispensation(access, dispense_id, action=action)
        try:
            withdrawn = dispensation_withdraw(
                dispensation=dispensation,
                pharmacist=who.professional,
                reason=reason,
                client_address=gate.client_address,
                public_url=str(getattr(settings, "ESANTE_PUBLIC_URL", "") or request.build_absolute_uri("/")),
            )
        except DispensationRefused as refusal:
            raise _dispense_refused(refusal, _WITHDRAW_STATUS) from None
        handed = withdrawn.lines.select_related("prescription_line").filter(quantity_delivered__gt=0).first()
        if handed is None:  # a dispensation always hands over something; answer plainly if not
            raise FhirError(404, "not-found", "Dispensation introuvable.", issue_type="not-found")
        resource = medication_dispense.to_resource(
            withdrawn,
            handed.prescription_line,
            handed.quantity_delivered,
            patient_id=str(access.patient.public_id),
        )
        return fhir_response(resource)


# --- Binary (the certified copy of a dispensation) ---------------------------------------------


def _binary_wanted(request: HttpRequest) -> str:
    """What a Binary read asks for (FHIR's rule): the Binary resource for ``application/fhir+json``
    (or ``json``), else the content itself, a PDF; 406 for anything else, before any read."""
    header = request.headers.get("Accept", "").strip()
    offered = {part.split(";")[0].strip().lower() for part in header.split(",")} if header else {"*/*"}
    asked = request.GET.get("_format")
    if asked in ("json", "application/json", "application/fhir+json"):
        return "resource"
    if asked is None and offered & {"application/fhir+json", "application/json"}:
        return "resource"
    if (asked is None or asked == binary.PDF) and offered & {"*/*", "application/*", binary.PDF}:
        return "content"
    raise FhirError(
        406,
        "not-acceptable",
        "Une copie certifiée se lit en application/pdf ou en ressource Binary (application/fhir+json).",
        issue_type="not-supported",
    )


def _document_binary(
    request: HttpRequest, who: ApiCaller, document_id: str
) -> HttpResponse | StreamingHttpResponse:
    """The Binary an ITI-65 submission located at ``Binary/<document id>``: the document's bytes
    in their own type (as ITI-68 serves them; 406 for another, before any read), or a Binary
    resource with them in base64 — under the access gate, traced as a reading of the content."""
    resource = _binary_resource_asked(request)
    with audit_via(who.audit_details):
        gate = document_gate(request, who)
        access = gate.document(
            document_patient(document_id), document_id, action=AuditAction.DOCUMENT_CONTENT
        )
        document = access.document
        if not resource:
            acceptable(request, document)
        try:
            data = (
                open_verified(document.content.name, sha256=document.sha256, size=document.size).read()
                if resource
                else None
            )
        except StoredContentAltered:
            raise FhirError(500, "content-altered", str(ALTERED_MESSAGE), issue_type="exception") from None
        gate.document_read(document, action=AuditAction.DOCUMENT_CONTENT)
        if data is None:
            return content_response(document)
        return fhir_response(binary.document_resource(document, data))


def _binary_resource_asked(request: HttpRequest) -> bool:
    header = request.headers.get("Accept", "").strip()
    offered = {part.split(";")[0].strip().lower() for part in header.split(",")} if header else set()
    asked = request.GET.get("_format")
    if asked in ("json", "application/json", "application/fhir+json"):
        return True
    return asked is None and bool(offered & {"application/fhir+json", "application/json"})


@router.get("/Binary/{binary_id}")
def binary_read(request: HttpRequest, binary_id: str) -> HttpResponse | StreamingHttpResponse:
    """A Binary: a dispensation's certified copy, or the bytes of a submitted document.

    The certified copy of a dispensation: the PDF, or a Binary resource with it in base64,
    for a professional who may read the prescription now (404 otherwise, the same as missing);
    its download traced as on the portal. While the job has not made it: 404 ``copy-pending``
    with ``Retry-After``. Any other id is a document's (where ITI-65 located its Binary), or
    nobody's: see ``_document_binary``."""
    who = caller(request, resource_type="Binary", permission="r")
    if dispensation_subject(binary_id) is None:
        # A document's, or nobody's: the gate answers an unknown id as it answers a forbidden one.
        return _document_binary(request, who, binary_id)
    wanted = _binary_wanted(request)
    with audit_via(who.audit_details):
        assert who.professional is not None  # noqa: S101
        gate = DispensingGate.for_api(request, who.professional)
        patient_id, document_id = dispensation_subject(binary_id) or (str(uuid.uuid4()), str(uuid.uuid4()))
        action = AuditAction.DISPENSATION_COPY
        access = gate.prescription(patient_id, document_id, action=action)
        dispensation = gate.dispensation(access, binary_id, action=action)
        copy = dispensation.certified_copy
        if copy is None:
            raise binary.pending()
        try:
            # Checked against the SHA-256 recorded with the copy (esante.core.storage).
            data = open_verified(copy.pdf.name, sha256=copy.pdf_sha256, size=None).read()
        except StoredContentAltered:
            raise FhirError(500, "content-altered", str(ALTERED_MESSAGE), issue_type="exception") from None
        certified_copy_download_record(
            professional=who.professional, copy=copy, client_address=gate.client_address
        )
        if wanted == "resource":
            return fhir_response(binary.to_resource(dispensation, data))
        response = HttpResponse(data, content_type=binary.PDF)
        response["Content-Disposition"] = f'inline; filename="{binary.file_name(copy)}"'
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = PDF_CSP
        response["Cache-Control"] = "no-store"
        return response
