"""The access gate, extended with documents: list a record's documents and read one.

What may be read is the access policy's decision (``esante.access.policy.may_read_document``,
applied in SQL by ``selectors.visible_documents``); this module only adds the documents to the
gate and traces each reading.
"""

from dataclasses import dataclass

from django.db.models import QuerySet

from esante.access.gate import RecordAccess, RecordGate
from esante.access.models import AccessGrant
from esante.audit.catalogue import AuditAction
from esante.patients.models import Patient

from .models import Document, DocumentSummary
from .selectors import access_document, visible_documents, visible_summary


@dataclass(frozen=True)
class DocumentAccess:
    """A document the actor may read, with the record (patient, grant) it belongs to."""

    patient: Patient
    grant: AccessGrant
    document: Document


class DocumentGate(RecordGate):
    """``RecordGate`` plus the documents of the records the actor may read."""

    def documents(self, access: RecordAccess) -> QuerySet[Document]:
        """The record's documents the actor may read under the access's grant."""
        return visible_documents(self.actor, access.patient, access.grant)

    def summary(self, access: RecordAccess) -> QuerySet[DocumentSummary]:
        """The summary rows of the record's documents the actor may read (``visible_summary``)."""
        return visible_summary(self.actor, access.patient, access.grant)

    def documents_searched(
        self,
        access: RecordAccess,
        *,
        filters: dict[str, str],
        results: int,
        action: AuditAction = AuditAction.DOCUMENT_SEARCH,
    ) -> None:
        """Traces a search of the record's documents (the API's DocumentReference search), or of
        its prescriptions (``prescription.search``)."""
        self.trace(
            action,
            patient=access.patient,
            object_type="AccessGrant",
            object_id=str(access.grant.pk),
            details={"filters": filters, "results": results},
        )

    def document(
        self, public_id: object, document_id: object, *, action: AuditAction = AuditAction.DOCUMENT_READ
    ) -> DocumentAccess:
        """One document, authorised, without tracing a reading (the caller decides what it does).

        ``RecordNotFound`` (traced under ``action``) when the record or the document is missing
        or the actor may not read it.
        """
        patient, grant, document = self.guarded(
            action, public_id, lambda: access_document(self.actor, public_id, document_id)
        )
        return DocumentAccess(patient=patient, grant=grant, document=document)

    def read_document(
        self, public_id: object, document_id: object, *, action: AuditAction = AuditAction.DOCUMENT_READ
    ) -> DocumentAccess:
        """One document, authorised and its reading traced (``document.read`` for the viewer,
        ``document.content`` for the raw bytes). ``RecordNotFound`` (traced) otherwise."""
        access = self.document(public_id, document_id, action=action)
        self.document_read(access.document, action=action)
        return access

    def document_read(self, document: Document, *, action: AuditAction = AuditAction.DOCUMENT_READ) -> None:
        """Traces one reading of a document the gate authorised."""
        self.trace(
            action,
            patient=document.patient,
            object_type="document",
            object_id=str(document.public_id),
            details={"type": document.type_code, "confidentiality": document.confidentiality},
        )
