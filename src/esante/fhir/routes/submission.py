"""ITI-65 Provide Document Bundle: eServices submit documents with a backend-services token."""

from django.http import HttpRequest, HttpResponse
from ninja import Router

from esante.audit.services import audit_via
from esante.documents.services import DocumentRefused, documents_provide

from .. import provide_bundle
from ..auth import caller
from ..outcome import FhirError, fhir_response
from .common import read_json

router = Router()


@router.post("/", url_name="transaction")
def transaction(request: HttpRequest) -> HttpResponse:
    """A transaction Bundle (List + DocumentReference + Binary), filed all or nothing through
    ``documents_provide``; the submitting software is the source, the author stays the
    prescriber named in the document. A resubmission of the same documents is idempotent."""
    who = caller(request, resource_type="DocumentReference", permission="c", context="system")
    bundle = read_json(request, xml=True)  # MHD's Document Recipient takes JSON and XML
    with audit_via(who.audit_details):
        found = provide_bundle.submissions(bundle)
        try:
            filed = documents_provide(
                submissions=found,
                source_system=who.client.name[:100],
                actor_label=f"client:{who.client.client_id}",
            )
        except DocumentRefused as refusal:
            raise FhirError(422, "document-refused", str(refusal), issue_type="business-rule") from None
        return fhir_response(provide_bundle.response(bundle, filed))
