"""Everything a patient does on the patients' portal, each in one transaction with its audit
event: the choices (« Mes choix »: block or unblock a professional, hide or show a document,
close or reopen the record, notifications), and the traces of what the patient reads."""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from esante.access import policy
from esante.access.models import PatientBlock
from esante.access.services import patient_block_create, patient_block_lift
from esante.accounts.models import Professional
from esante.audit.catalogue import AuditAction, AuditOutcome
from esante.audit.models import AuditEvent
from esante.audit.services import audit_record
from esante.documents.models import Document
from esante.patients.models import Patient

from .models import PatientAccount, Representation


def patient_trace(
    account: PatientAccount,
    action: AuditAction,
    *,
    client_address: str | None,
    outcome: AuditOutcome = AuditOutcome.SUCCESS,
    object_type: str = "",
    object_id: str = "",
    **details: Any,
) -> None:
    """The one way the patients' portal writes an event: the patient acts on their own record,
    or a representative on the represented patient's (the event's actor is the representative,
    its patient the represented, its details say under which representation)."""
    if account.acting_for is not None:
        details = {**details, "representation": account.acting_for.pk, "kind": account.acting_for.kind}
    audit_record(
        action=action,
        outcome=outcome,
        actor=account.user,
        patient=account.patient,
        object_type=object_type,
        object_id=object_id,
        client_address=client_address,
        details={**details, "channel": "patient"},
    )


def patient_not_found(
    account: PatientAccount, *, what: str, object_id: str, client_address: str | None
) -> None:
    """Traces a request for something the patient does not own or that does not exist."""
    with transaction.atomic():
        patient_trace(
            account,
            AuditAction.ESPACE_NOT_FOUND,
            outcome=AuditOutcome.REFUSED,
            client_address=client_address,
            object_type=what,
            object_id=object_id[:64],
            reason="not_found",
        )


@transaction.atomic
def professional_block(
    *, account: PatientAccount, professional: Professional, client_address: str | None
) -> PatientBlock:
    """The patient refuses the professional any access, at once (portal and API: the access
    selectors read blocks on every request)."""
    return patient_block_create(
        patient=account.patient,
        professional=professional,
        actor=account.user,
        reason="patient" if account.acting_for is None else f"representative:{account.acting_for.kind}",
    )


@transaction.atomic
def professional_unblock(*, account: PatientAccount, block: PatientBlock) -> PatientBlock:
    if block.patient_id != account.patient_id:
        raise ValidationError("not the patient's block")
    return patient_block_lift(block=block, actor=account.user)


@transaction.atomic
def document_visibility_set(
    *, account: PatientAccount, document: Document, hidden: bool, client_address: str | None
) -> Document:
    """Hides the document from every professional but its author, or shows it again."""
    document = Document.objects.select_for_update().get(pk=document.pk, patient=account.patient)
    if document.hidden_by_patient == hidden:
        return document
    document.hidden_by_patient = hidden
    document.save(update_fields=["hidden_by_patient"])
    patient_trace(
        account,
        AuditAction.DOCUMENT_HIDE if hidden else AuditAction.DOCUMENT_SHOW,
        client_address=client_address,
        object_type="document",
        object_id=str(document.public_id),
    )
    return document


@transaction.atomic
def record_opposition_set(*, account: PatientAccount, opposed: bool, client_address: str | None) -> Patient:
    """Closes the record to every professional (opposition), or reopens it. A record the agency
    closed (``closed``) is not the patient's to reopen: ``ValidationError``."""
    patient = Patient.objects.select_for_update().get(pk=account.patient_id)
    if not policy.patient_may_set_opposition(patient.dossier_state):
        raise ValidationError(
            gettext("Votre dossier a été fermé par l'Agence eSanté : contactez le helpdesk.")
        )
    target = Patient.DossierState.OPPOSED if opposed else Patient.DossierState.ACTIVE
    if patient.dossier_state == target:
        return patient
    Patient.objects.filter(pk=patient.pk).update(dossier_state=target)
    patient.dossier_state = target
    account.patient = patient
    patient_trace(
        account,
        AuditAction.RECORD_OPPOSE if opposed else AuditAction.RECORD_REOPEN,
        client_address=client_address,
        object_type="patient",
        object_id=str(patient.public_id),
    )
    return patient


@transaction.atomic
def notifications_set(*, account: PatientAccount, channel: str, client_address: str | None) -> PatientAccount:
    """E-mail, SMS or nothing, for the digest of new accesses and the emergency alerts. The
    channel must be one the account has an address for."""
    if channel not in PatientAccount.Channel.values:
        raise ValidationError(gettext("Choisissez un moyen de notification."))
    if channel == PatientAccount.Channel.EMAIL and not account.email:
        raise ValidationError(gettext("Aucune adresse e-mail n'est enregistrée pour votre compte."))
    if channel == PatientAccount.Channel.SMS and not account.mobile:
        raise ValidationError(gettext("Aucun numéro de mobile n'est enregistré pour votre compte."))
    updates: dict[str, Any] = {"notify_channel": channel}
    if channel and not account.notify_channel:
        # The first digest reports the accesses after this choice, not the whole history.
        newest = (
            AuditEvent.objects.filter(patient_id=account.patient_id, sequence__isnull=False)
            .order_by("-sequence")
            .values_list("sequence", flat=True)
            .first()
        )
        updates["digest_sequence"] = newest or 0
    PatientAccount.objects.filter(pk=account.pk).update(**updates)
    account.notify_channel = channel
    patient_trace(account, AuditAction.ESPACE_NOTIFICATIONS, client_address=client_address, notify=channel)
    return account


@transaction.atomic
def representative_add(
    *, representative: PatientAccount, patient: Patient, kind: str, ends_at: Any, actor_label: str
) -> Representation:
    """Registers a parent or a legal guardian (their own patient account) for a patient."""
    if kind not in Representation.Kind.values:
        raise ValidationError(gettext("Qualité inconnue : parent ou tuteur légal (guardian)."))
    if representative.patient_id == patient.pk:
        raise ValidationError(gettext("Un patient ne se représente pas lui-même."))
    if representative.state == PatientAccount.State.SUSPENDED:
        raise ValidationError(gettext("Le compte du représentant est suspendu."))
    if Representation.objects.filter(
        representative=representative, patient=patient, revoked_at__isnull=True
    ).exists():
        raise ValidationError(gettext("Ce représentant est déjà enregistré pour ce patient."))
    representation = Representation.objects.create(
        representative=representative,
        patient=patient,
        kind=kind,
        starts_at=timezone.now(),
        ends_at=ends_at,
        registered_by=actor_label,
    )
    audit_record(
        action=AuditAction.ESPACE_REPRESENTATIVE_ADD,
        actor_label=actor_label,
        patient=patient,
        object_type="representation",
        object_id=representation.pk,
        details={"kind": kind, "representative_account": representative.pk},
    )
    return representation


@transaction.atomic
def acting_for_choose(
    *, account: PatientAccount, representation: Representation, client_address: str | None
) -> None:
    """Traces that the representative now acts for the represented patient."""
    audit_record(
        action=AuditAction.ESPACE_ACT_FOR,
        actor=account.user,
        patient=representation.patient,
        object_type="representation",
        object_id=representation.pk,
        client_address=client_address,
        details={"kind": representation.kind, "channel": "patient"},
    )
