"""Withdrawing a dispensation recorded by mistake (a correction; the dispensation stays,
marked withdrawn), by the pharmacist who recorded it, within the withdrawal window.

Same transaction discipline as ``services``: the prescription and the dispensation are locked,
the audit event is the last statement, a refusal is traced in a transaction of its own.
"""

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext, ngettext

from esante.accounts.models import Professional
from esante.audit.catalogue import AuditAction
from esante.audit.services import audit_record
from esante.documents.models import Prescription
from esante.documents.services import document_mark_entered_in_error

from . import rules
from .certification import supersede_current_copies
from .jobs import dispensation_complete_after_commit
from .models import CertifiedCopy, Dispensation
from .refusals import REASON_MAX_LENGTH, DispensationRefused, refusal_record, refuse, when
from .selectors import last_active_dispensation, prescription_line_states
from .services import dispensing_authorise, state_after, state_write


def withdrawal_refusal(dispensation: Dispensation, pharmacist: Professional) -> str | None:
    """Why this pharmacist may not withdraw this dispensation now (a refusal code), or None.

    The withdrawal service checks the same again under lock; this is for showing the page.
    """
    if dispensation.pharmacist_id != pharmacist.pk:
        return "not_author"
    if dispensation.withdrawn_at is not None:
        return "already_withdrawn"
    if timezone.now() > rules.withdrawal_possible_until(dispensation.dispensed_at):
        return "window_closed"
    return None


@transaction.atomic
def _withdraw_in_transaction(
    *, dispensation: Dispensation, pharmacist: Professional, reason: str, client_address: str | None
) -> Dispensation:
    prescription = dispensation.prescription
    patient, _grant = dispensing_authorise(pharmacist, prescription)
    locked = Prescription.objects.select_for_update().get(pk=prescription.pk)
    target = Dispensation.objects.select_for_update().get(pk=dispensation.pk)
    if target.pharmacist_id != pharmacist.pk:
        raise refuse("not_author", patient=patient)
    if target.withdrawn_at is not None:
        raise refuse(
            "already_withdrawn",
            gettext("Cette dispensation a déjà été retirée le %(when)s.")
            % {"when": when(target.withdrawn_at)},
            patient=patient,
        )
    now = timezone.now()
    deadline = rules.withdrawal_possible_until(target.dispensed_at)
    if now > deadline:
        hours = rules.withdraw_hours()
        raise refuse(
            "window_closed",
            ngettext(
                "Le délai de retrait (%(hours)s heure après la dispensation) a expiré le %(deadline)s.",
                "Le délai de retrait (%(hours)s heures après la dispensation) a expiré le %(deadline)s.",
                hours,
            )
            % {"hours": hours, "deadline": when(deadline)},
            patient=patient,
        )
    if not reason:
        raise refuse("reason_missing", patient=patient)
    if len(reason) > REASON_MAX_LENGTH:
        raise refuse("reason_too_long", patient=patient)
    target.withdrawn_at = now
    target.withdrawn_by = pharmacist
    target.withdrawal_reason = reason
    target.save(update_fields=["withdrawn_at", "withdrawn_by", "withdrawal_reason"])
    states = prescription_line_states(locked)  # without the withdrawn delivery
    any_active = Dispensation.objects.filter(prescription=locked, withdrawn_at__isnull=True).exists()
    new_state = state_after([state.remaining for state in states], any_active)
    state_write(locked, based_on_version=locked.state_version, state=new_state)
    supersede_current_copies(locked, CertifiedCopy.SupersededBecause.WITHDRAWAL, now)
    if target.document_id is not None:
        # The eDispensation document no longer tells the truth: it leaves the record's views.
        document_mark_entered_in_error(document_id=target.document_id)
    audit_record(
        action=AuditAction.DISPENSATION_WITHDRAW,
        actor=pharmacist.user,
        patient=patient,
        object_type="Dispensation",
        object_id=str(target.public_id),
        motif=reason,
        client_address=client_address,
        details={"document": str(prescription.document.public_id), "state": new_state},
    )
    return target


def dispensation_withdraw(
    *,
    dispensation: Dispensation,
    pharmacist: Professional,
    reason: str,
    client_address: str | None = None,
    public_url: str = "",
) -> Dispensation:
    """Withdraws a dispensation recorded by mistake (correction); the record stays, marked withdrawn.

    Only the pharmacist who recorded it, within ``ESANTE_DISPENSATION_WITHDRAW_HOURS`` (default
    24) of the delivery, with a reason. The prescription's state is recomputed from the
    deliveries still standing and its ``state_version`` moves on; the current certified copy is
    superseded and, when deliveries remain, a new one is issued by a job queued on commit; the
    eDispensation document is marked entered-in-error. Raises ``DispensationRefused`` (and traces
    the refusal) otherwise.
    """
    reason = " ".join(reason.split())
    try:
        withdrawn = _withdraw_in_transaction(
            dispensation=dispensation, pharmacist=pharmacist, reason=reason, client_address=client_address
        )
    except DispensationRefused as refusal:
        refusal_record(
            AuditAction.DISPENSATION_WITHDRAW,
            refusal,
            pharmacist=pharmacist,
            object_id=str(dispensation.public_id),
            client_address=client_address,
            details={"motif": reason[:REASON_MAX_LENGTH]},
        )
        raise
    latest = last_active_dispensation(withdrawn.prescription)
    if latest is not None:
        # The new current copy, by the queue once committed; the sweep re-issues it if the job is lost.
        dispensation_complete_after_commit(
            latest, actor=pharmacist, client_address=client_address, public_url=public_url
        )
    return withdrawn
