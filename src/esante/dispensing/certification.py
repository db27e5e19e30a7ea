"""What follows a committed dispensation or withdrawal, outside its transaction: the eDispensation
CDA filed in the patient's record, and the certified true copy (PDF rendered first, then recorded
in a short transaction whose last statement is its audit event). Also the traces of copy
downloads and of public verifications.
"""

import base64
import dataclasses
import datetime
import hashlib
import logging
import secrets
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from esante.accounts.models import Professional
from esante.audit.catalogue import AuditAction
from esante.audit.models import AuditEvent
from esante.audit.services import audit_record
from esante.documents.cda_builder import DispensedLine, Person, dispensation_cda
from esante.documents.models import Document, Prescription
from esante.documents.services import DocumentDuplicate, document_submit
from esante.documents.types import DISPENSATION

from .models import CertifiedCopy, Dispensation, VerificationAttempt
from .selectors import (
    code_digest,
    last_active_dispensation,
    prescription_dispensations,
    prescription_line_states,
)

logger = logging.getLogger(__name__)


SOURCE_SYSTEM = "eDocuments"


def supersede_current_copies(prescription: Prescription, because: str, at: Any) -> None:
    """Marks the prescription's current certified copy (if any) as no longer current."""
    CertifiedCopy.objects.filter(dispensation__prescription=prescription, superseded_at__isnull=True).update(
        superseded_at=at, superseded_because=because
    )


def dispensation_file_document(*, dispensation: Dispensation) -> Document:
    """Files the dispensation in the patient's record as an eDispensation CDA (type 60593-1).

    Goes through ``document_submit`` like every ingestion; idempotent (the CDA's identifier is the
    dispensation's), so a retry after a failure files nothing twice.
    """
    if dispensation.document_id is not None:
        return dispensation.document  # type: ignore[return-value]
    prescription = dispensation.prescription
    patient = prescription.document.patient
    pharmacist = dispensation.pharmacist
    rows = list(
        dispensation.lines.select_related("prescription_line").order_by("prescription_line__position")
    )
    content = dispensation_cda(
        document_id=str(dispensation.public_id),
        at=timezone.localtime(dispensation.dispensed_at),
        patient_matricule=patient.matricule,
        patient=Person(patient.first_names, patient.usage_name or patient.birth_name),
        birth=patient.birth_date,
        sex=patient.sex,
        pharmacist=Person(pharmacist.first_name, pharmacist.last_name, pharmacist.matricule),
        pharmacy=dispensation.pharmacy,
        prescription_id=prescription.document.external_id or str(prescription.document.public_id),
        lines=[
            DispensedLine(
                medication=row.prescription_line.medication,
                code=row.prescription_line.medication_code,
                prescribed=row.quantity_prescribed,
                delivered=row.quantity_delivered,
                remaining=row.quantity_remaining,
                unit=row.prescription_line.unit,
            )
            for row in rows
        ],
    )
    try:
        document = document_submit(
            content=content,
            source_system=SOURCE_SYSTEM,
            type_code=DISPENSATION,
            author=pharmacist,
            external_id=str(dispensation.public_id),
            actor=pharmacist.user,
        )
    except DocumentDuplicate:
        document = Document.objects.get(source_system=SOURCE_SYSTEM, external_id=str(dispensation.public_id))
    Dispensation.objects.filter(pk=dispensation.pk).update(document=document)
    dispensation.document = document
    return document


def _new_code() -> str:
    """128 random bits, as 26 characters of base32 (no 0/1/8/9 confusion, easy to type)."""
    return base64.b32encode(secrets.token_bytes(16)).decode("ascii").rstrip("=")


@dataclasses.dataclass(frozen=True)
class IssuedCopy:
    copy: CertifiedCopy
    code: str  # shown once, on the PDF; only its digest is stored


def certified_copy_issue(
    *,
    dispensation: Dispensation,
    actor: Professional,
    client_address: str | None = None,
    public_url: str = "",
) -> IssuedCopy | None:
    """Renders and records the certified true copy of the prescription with its filled grid.

    The PDF is rendered before the short transaction that records it. The copy is attached to
    ``dispensation`` (the latest delivery standing) and supersedes any other current copy of the
    prescription. Returns None when the prescription changed while the PDF was rendered (the
    operation that changed it issues the current copy) or when no delivery stands any more.
    """
    from .copies import render_certified_copy  # WeasyPrint loads slowly: only when a copy is made

    prescription = Prescription.objects.select_related("document__patient").get(
        pk=dispensation.prescription_id
    )
    version = prescription.state_version
    standing = prescription_dispensations(prescription, active_only=True)
    if not standing:
        return None
    code = _new_code()
    now = timezone.now()
    pdf = render_certified_copy(
        prescription=prescription,
        dispensations=standing,
        line_states=prescription_line_states(prescription),
        code=code,
        issued_at=now,
        public_url=public_url or getattr(settings, "ESANTE_PUBLIC_URL", ""),
    )
    digest = code_digest(code)
    pdf_sha256 = hashlib.sha256(pdf).hexdigest()
    name = default_storage.save(f"copies/{now:%Y/%m}/{pdf_sha256}.pdf", ContentFile(pdf))
    with transaction.atomic():
        locked = Prescription.objects.select_for_update().get(pk=prescription.pk)
        if locked.state_version != version:
            return None
        supersede_current_copies(locked, CertifiedCopy.SupersededBecause.DELIVERY, now)
        copy = CertifiedCopy.objects.create(
            dispensation=dispensation,
            code_digest=digest,
            pdf=name,
            pdf_sha256=pdf_sha256,
            created_at=now,
        )
        audit_record(
            action=AuditAction.DISPENSATION_CERTIFY,
            actor=actor.user,
            patient=prescription.document.patient,
            object_type="CertifiedCopy",
            object_id=str(copy.public_id),
            client_address=client_address,
            details={
                "document": str(prescription.document.public_id),
                "dispensation": str(dispensation.public_id),
                "pdf_sha256": pdf_sha256,
            },
        )
    return IssuedCopy(copy=copy, code=code)


def dispensation_follow_up(
    *,
    dispensation: Dispensation,
    actor: Professional | None = None,
    client_address: str | None = None,
    public_url: str = "",
) -> IssuedCopy | None:
    """What follows a committed dispensation (or withdrawal): the eDispensation document of a
    standing delivery, and the certified copy when it is the latest standing delivery of its
    prescription and has no current copy. Idempotent: run again, it does only what is missing.

    Runs outside any transaction, in a job of the queue (``jobs.dispensation_complete``) or in the
    sweep. A failure is logged, not raised: the delivery is recorded and the sweep
    (``esante dispensation_follow_up``) completes what is missing. ``actor`` (by default the
    dispensation's pharmacist) is who the copy's audit event names.
    """
    issued = None
    if dispensation.withdrawn_at is None:
        try:
            dispensation_file_document(dispensation=dispensation)
        except Exception:
            logger.exception("eDispensation document of %s not filed", dispensation.public_id)
    try:
        latest = last_active_dispensation(dispensation.prescription)
        # Only the latest standing delivery gets a copy: it carries the whole grid.
        if (
            latest is not None
            and latest.pk == dispensation.pk
            and not dispensation.certified_copies.filter(superseded_at__isnull=True).exists()
        ):
            issued = certified_copy_issue(
                dispensation=dispensation,
                actor=actor or dispensation.pharmacist,
                client_address=client_address,
                public_url=public_url,
            )
    except Exception:
        logger.exception("certified copy of %s not issued", dispensation.public_id)
    return issued


def dispensations_unfinished(*, older_than: datetime.timedelta | None = None) -> QuerySet[Dispensation]:
    """Standing dispensations whose follow-up is missing: no eDispensation document, or the latest
    delivery of its prescription without a current certified copy. ``older_than`` leaves out the
    recent ones, whose job may still be waiting in the queue."""
    same_prescription = Dispensation.objects.filter(
        prescription=OuterRef("prescription"), withdrawn_at__isnull=True
    )
    later = same_prescription.filter(
        Q(dispensed_at__gt=OuterRef("dispensed_at"))
        | Q(dispensed_at=OuterRef("dispensed_at"), id__gt=OuterRef("id"))
    )
    current_copy = CertifiedCopy.objects.filter(dispensation=OuterRef("pk"), superseded_at__isnull=True)
    pending = Dispensation.objects.filter(withdrawn_at__isnull=True).filter(
        Q(document__isnull=True) | (~Exists(later) & ~Exists(current_copy))
    )
    if older_than is not None:
        # A withdrawal re-issues the copy of an older delivery: the withdrawal's time counts too.
        cutoff = timezone.now() - older_than
        pending = pending.filter(dispensed_at__lte=cutoff).exclude(
            Exists(
                Dispensation.objects.filter(prescription=OuterRef("prescription"), withdrawn_at__gt=cutoff)
            )
        )
    return pending.select_related("prescription__document__patient", "pharmacist").order_by("id")


def dispensations_complete(*, older_than: datetime.timedelta | None = None) -> int:
    """The sweep: completes every unfinished dispensation (see ``dispensations_unfinished``);
    returns how many it went through."""
    done = 0
    for dispensation in dispensations_unfinished(older_than=older_than).iterator(chunk_size=100):
        dispensation_follow_up(dispensation=dispensation)
        done += 1
    return done


def certified_copy_download_record(
    *, professional: Professional, copy: CertifiedCopy, client_address: str | None
) -> None:
    """Traces a download of a certified copy from the portal."""
    audit_record(
        action=AuditAction.DISPENSATION_COPY,
        actor=professional.user,
        patient=copy.dispensation.prescription.document.patient,
        object_type="CertifiedCopy",
        object_id=str(copy.public_id),
        client_address=client_address,
    )


def verification_throttled(client_address: str | None) -> bool:
    """Counts this use of the verification page and says whether the address is over its limit
    (``ESANTE_VERIFY_RATE_LIMIT`` per ``ESANTE_VERIFY_RATE_WINDOW_SECONDS``). A throttled attempt
    is traced as refused."""
    window = datetime.timedelta(seconds=int(getattr(settings, "ESANTE_VERIFY_RATE_WINDOW_SECONDS", 600)))
    address = client_address or "unknown"
    now = timezone.now()
    with transaction.atomic():
        VerificationAttempt.objects.create(client_address=address, at=now)
        recent = VerificationAttempt.objects.filter(client_address=address, at__gt=now - window).count()
    if recent <= int(getattr(settings, "ESANTE_VERIFY_RATE_LIMIT", 30)):
        return False
    audit_record(
        action=AuditAction.DISPENSATION_VERIFY,
        outcome=AuditEvent.Outcome.REFUSED,
        actor_label="public",
        object_type="CertifiedCopy",
        client_address=client_address,
        details={"reason": "rate_limited"},
    )
    return True


def certified_copy_verify_record(
    *,
    copy: CertifiedCopy | None,
    professional: Professional | None,
    client_address: str | None,
) -> None:
    """Traces a verification on the public page: the genuine copy it found, or a refused code."""
    audit_record(
        action=AuditAction.DISPENSATION_VERIFY,
        outcome=AuditEvent.Outcome.SUCCESS if copy is not None else AuditEvent.Outcome.REFUSED,
        actor=professional.user if professional is not None else None,
        actor_label="" if professional is not None else "public",
        patient=copy.dispensation.prescription.document.patient if copy is not None else None,
        object_type="CertifiedCopy",
        object_id=str(copy.public_id) if copy is not None else "",
        client_address=client_address,
        details={"current": copy.is_current} if copy is not None else {"reason": "unknown_code"},
    )
