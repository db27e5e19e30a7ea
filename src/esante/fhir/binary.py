"""FHIR ``Binary`` <-> a dispensation's certified copy ("copie certifiée conforme", a PDF), or
the bytes of a document submitted by ITI-65 (which locates its Binary at the document's id).

A MedicationDispense names its copy in ``supportingInformation`` as ``Binary/<its id>``: the
Binary of a dispensation is the latest certified copy issued for it, as the portal's link
serves. The copy is made by a job after the dispensation is recorded; until it is there, the
Binary does not exist yet and its read says so (``pending``). No rules here.
"""

import base64
from typing import Any

from esante.dispensing.models import CertifiedCopy, Dispensation
from esante.documents.models import Document

from .outcome import FhirError

PDF = "application/pdf"
COPY_DISPLAY = "Copie certifiée conforme (PDF)"
#: Seconds a client should wait before asking again for a copy in preparation.
PENDING_RETRY_SECONDS = 5


def reference(dispensation: Dispensation) -> dict[str, str]:
    """The ``supportingInformation`` entry of a MedicationDispense naming its certified copy."""
    return {"reference": f"Binary/{dispensation.public_id}", "display": COPY_DISPLAY}


def to_resource(dispensation: Dispensation, data: bytes) -> dict[str, Any]:
    """The Binary of a copy: its PDF in base64 (``Accept: application/fhir+json``)."""
    return {
        "resourceType": "Binary",
        "id": str(dispensation.public_id),
        "contentType": PDF,
        "data": base64.b64encode(data).decode("ascii"),
    }


def document_resource(document: Document, data: bytes) -> dict[str, Any]:
    """The Binary of a submitted document (where ITI-65 located it): its bytes in base64."""
    return {
        "resourceType": "Binary",
        "id": str(document.public_id),
        "contentType": document.media_type,
        "data": base64.b64encode(data).decode("ascii"),
    }


def pending() -> FhirError:
    """404 while the job has not made the copy yet: nothing to read, but no refusal either —
    the same read will find it shortly (``Retry-After``)."""
    return FhirError(
        404,
        "copy-pending",
        "La copie certifiée est en préparation : réessayez dans quelques secondes.",
        issue_type="not-found",
        headers={"Retry-After": str(PENDING_RETRY_SECONDS)},
    )


def file_name(copy: CertifiedCopy) -> str:
    return f"copie-certifiee-{copy.created_at:%Y%m%d-%H%M}.pdf"
