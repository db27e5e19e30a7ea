"""The access gate, extended with prescriptions: the pages of "Marquer comme dispensé", of a
withdrawal and of a certified copy, and what a template may offer a pharmacist.

Who may dispense is the access policy's rule (``policy.may_dispense`` and
``policy.may_dispense_under``); the writes themselves are ``services.prescription_mark_dispensed``
and ``withdrawal.dispensation_withdraw``, which check the rule again under lock and trace their
own refusals. Every refusal of a page is traced here, then raised: ``RecordNotFound`` for a
missing or forbidden prescription (a 404 page), ``DispensationRefused`` for a page the actor may
find but not use (a 403 page saying why).
"""

from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext

from esante.access import policy
from esante.access.gate import RecordNotFound
from esante.access.models import AccessGrant
from esante.audit.catalogue import AuditAction
from esante.documents.gate import DocumentGate
from esante.documents.models import Document, Prescription
from esante.patients.models import Patient

from . import certification, refusals, services, withdrawal
from .models import CertifiedCopy, Dispensation
from .selectors import access_prescription, dispensation_of


@dataclass(frozen=True)
class PrescriptionAccess:
    """A medication prescription the actor may read, with its document and record."""

    patient: Patient
    grant: AccessGrant
    document: Document
    prescription: Prescription


class DispensingGate(DocumentGate):
    """``DocumentGate`` plus the prescriptions and dispensations of the records the actor reads."""

    def prescription(
        self, public_id: object, document_id: object, *, action: AuditAction
    ) -> PrescriptionAccess:
        """A prescription the actor may read; ``RecordNotFound`` (traced under ``action``) otherwise."""
        patient, grant, document, prescription = self.guarded(
            action, public_id, lambda: access_prescription(self.actor, public_id, document_id)
        )
        return PrescriptionAccess(patient=patient, grant=grant, document=document, prescription=prescription)

    def readable_prescription(self, document: Document) -> PrescriptionAccess | None:
        """For the public verification page: the prescription behind a certified copy when the actor
        is a pharmacist who may read it now, else None. Nothing is traced: the page traced the
        verification itself and shows nothing clinical."""
        if not policy.may_dispense(self.actor.profession):
            return None
        try:
            patient, grant, document, prescription = access_prescription(
                self.actor, document.patient.public_id, document.public_id
            )
        except RecordNotFound:
            return None
        return PrescriptionAccess(patient=patient, grant=grant, document=document, prescription=prescription)

    def dispense_page(self, public_id: object, document_id: object) -> PrescriptionAccess:
        """The page "Marquer comme dispensé", read: for pharmacists only (traced as a read).

        ``RecordNotFound`` for a prescription the actor may not read; ``DispensationRefused``
        (``not_pharmacist``, traced) for anyone but a pharmacist.
        """
        access = self.prescription(public_id, document_id, action=AuditAction.DOCUMENT_READ)
        if not policy.may_dispense(self.actor.profession):
            self._page_refused(
                access, "not_pharmacist", object_id=str(access.document.public_id), page="dispense"
            )
            raise services.DispensationRefused("not_pharmacist", str(refusals.MESSAGES["not_pharmacist"]))
        self.document_read(access.document)
        return access

    def may_post_dispensation(self) -> bool:
        """Whether a dispensation form of this actor is worth reading: a non-pharmacist's attempt
        goes to the service whatever the form says, to be refused and traced there."""
        return policy.may_dispense(self.actor.profession)

    def dispense_form_refused(self, access: PrescriptionAccess, *, fields: list[str]) -> None:
        """Traces a dispensation the portal could not read (an invalid form)."""
        self.refuse(
            AuditAction.PRESCRIPTION_DISPENSE,
            reason="invalid_form",
            patient=access.patient,
            object_type="Prescription",
            object_id=str(access.document.public_id),
            details={"fields": fields},
        )

    def dispensation(
        self, access: PrescriptionAccess, dispensation_id: object, *, action: AuditAction
    ) -> Dispensation:
        """One dispensation of the prescription; ``RecordNotFound`` (traced) when there is none."""
        dispensation = dispensation_of(access.prescription, dispensation_id)
        if dispensation is None:
            raise self.not_found(action, RecordNotFound("unknown", access.patient), access.patient.public_id)
        return dispensation

    def withdraw_page(self, access: PrescriptionAccess, dispensation: Dispensation) -> None:
        """The withdrawal page, read: only by the pharmacist who recorded the dispensation, within
        the withdrawal window (traced as a read). ``DispensationRefused`` (traced) otherwise."""
        code = withdrawal.withdrawal_refusal(dispensation, self.actor)
        if code is not None:
            self._page_refused(access, code, object_id=str(dispensation.public_id), page="withdraw")
            message = refusals.MESSAGES.get(code, gettext("Cette dispensation ne peut plus être retirée."))
            raise services.DispensationRefused(code, str(message))
        self.document_read(access.document)

    def certified_copy(
        self, public_id: object, document_id: object, dispensation_id: object
    ) -> CertifiedCopy:
        """The latest certified copy of a dispensation, its download traced; ``RecordNotFound``
        (traced) when the prescription, the dispensation or the copy is missing or forbidden."""
        action = AuditAction.DISPENSATION_COPY
        access = self.prescription(public_id, document_id, action=action)
        dispensation = dispensation_of(access.prescription, dispensation_id)
        copy = dispensation.certified_copy if dispensation is not None else None
        if copy is None:
            raise self.not_found(action, RecordNotFound("unknown", access.patient), access.patient.public_id)
        certification.certified_copy_download_record(
            professional=self.actor, copy=copy, client_address=self.client_address
        )
        return copy

    def _page_refused(self, access: PrescriptionAccess, code: str, *, object_id: str, page: str) -> None:
        details: dict[str, Any] = {"page": page}
        self.refuse(
            AuditAction.DOCUMENT_READ,
            reason=code,
            patient=access.patient,
            object_type="Dispensation",
            object_id=object_id,
            details=details,
        )
