"""Writes of the dispensing app: marking a prescription dispensed, withdrawing a dispensation,
filing the eDispensation CDA and issuing the certified true copy.

No double dispensing: every attempt names the ``state_version`` of the prescription it was based
on. The transaction locks the prescription row (``SELECT ... FOR UPDATE``; on SQLite the
``BEGIN IMMEDIATE`` write lock) and writes it back with a conditional ``UPDATE ... WHERE
state_version = based_on_version``, and ``(prescription, based_on_version)`` is unique among
dispensations: of two simultaneous attempts one is recorded, the other refused.

Each successful write runs in one transaction whose last statement is its audit event. A refusal
raises ``DispensationRefused`` after its transaction rolled back and records its own refused
audit event in a transaction of its own. The eDispensation CDA and the certified copy's PDF are
produced after the commit (``certification.dispensation_follow_up``), never while the
prescription is locked.
"""

import logging
from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import formats, timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from esante.access import policy
from esante.access.models import AccessGrant
from esante.access.selectors import RecordNotFound
from esante.accounts.models import Professional
from esante.audit.catalogue import AuditAction
from esante.audit.models import AuditEvent
from esante.audit.services import audit_record
from esante.documents.models import Prescription
from esante.documents.selectors import access_document
from esante.documents.services import document_mark_entered_in_error

from . import rules
from .certification import certified_copy_issue, dispensation_follow_up, supersede_current_copies
from .models import CertifiedCopy, Dispensation, DispensationLine
from .selectors import (
    first_active_dispensation_at,
    last_active_dispensation,
    prescription_line_states,
)

logger = logging.getLogger(__name__)


REASON_MAX_LENGTH = 500
MAX_QUANTITY = 100_000


def _when(moment: Any) -> str:
    """The moment in Luxembourg time, in the active language: "25/11/2026 à 22:14" in French."""
    local = timezone.localtime(moment)
    return gettext("%(date)s à %(time)s") % {
        "date": formats.date_format(local, "SHORT_DATE_FORMAT"),
        "time": formats.time_format(local, "TIME_FORMAT"),
    }


class DispensationRefused(Exception):
    """A dispensation or withdrawal the rules refuse; it changed nothing but its own audit event.

    ``code`` is for the trail, ``message`` for the pharmacist (in the language active when it is
    raised: the request's), ``status`` the HTTP status a portal or API answer should carry.
    """

    STATUS = {
        "not_pharmacist": 403,
        "not_author": 403,
        "no_access": 404,
        "already_dispensed": 409,
        "stale_version": 409,
        "expired": 409,
        "series_expired": 409,
        "already_withdrawn": 409,
        "window_closed": 409,
    }

    def __init__(self, code: str, message: str, *, patient: Any = None) -> None:
        self.code = code
        self.message = message
        self.patient = patient
        self.status = self.STATUS.get(code, 400)
        super().__init__(message)


#: The refusals' messages that need no detail (the others are written where they are raised).
MESSAGES = {
    "not_pharmacist": _("Seul un pharmacien peut marquer une prescription comme dispensée."),
    "no_access": RecordNotFound.message,
    "bad_kind": _("Choisissez « Dispensée entièrement » ou « Dispensée partiellement »."),
    "bad_line": _("La grille de dispensation mentionne une ligne qui n'appartient pas à cette prescription."),
    "bad_quantity": _("Les quantités délivrées doivent être des nombres entiers positifs ou nuls."),
    "nothing_delivered": _("Indiquez au moins une quantité délivrée dans la grille de dispensation."),
    "reason_missing": _("Le motif du retrait est obligatoire."),
    "reason_too_long": format_lazy(
        _("Le motif du retrait ne doit pas dépasser {length} caractères."), length=REASON_MAX_LENGTH
    ),
    "not_author": _("Seul le pharmacien qui a enregistré cette dispensation peut la retirer."),
}


def _refuse(code: str, message: str = "", **kwargs: Any) -> DispensationRefused:
    return DispensationRefused(code, message or str(MESSAGES[code]), **kwargs)


def _authorise(pharmacist: Professional, prescription: Prescription) -> tuple[Any, AccessGrant]:
    """The pharmacist holds a current care or emergency access under which the prescription is visible.

    An own-documents access is read-only: it never allows dispensing.
    """
    document = prescription.document
    try:
        patient, grant, _ = access_document(pharmacist, document.patient.public_id, document.public_id)
    except RecordNotFound as error:
        raise _refuse("no_access", patient=error.patient) from None
    if not policy.access_allows_dispensing(grant.mode):
        raise _refuse("no_access", patient=patient)
    return patient, grant


def _who(dispensation: Dispensation) -> str:
    return f"{dispensation.pharmacist_name} ({dispensation.pharmacy})"


def _state_after(remaining: list[int], any_active: bool) -> str:
    if not any_active:
        return Prescription.DispensationState.OPEN
    if all(value == 0 for value in remaining):
        return Prescription.DispensationState.DISPENSED
    return Prescription.DispensationState.PARTIAL


def _write_state(prescription: Prescription, *, based_on_version: int, state: str) -> None:
    """The conditional write: it succeeds only on the version the attempt was based on."""
    updated = Prescription.objects.filter(pk=prescription.pk, state_version=based_on_version).update(
        state_version=based_on_version + 1, dispensation_state=state
    )
    if updated != 1:  # cannot happen under the row lock; kept as the database-level guarantee
        raise _refuse(
            "stale_version", gettext("La prescription a été modifiée entre-temps. Rechargez la page.")
        )


@transaction.atomic
def _dispense_in_transaction(
    *,
    prescription: Prescription,
    pharmacist: Professional,
    kind: str,
    lines: Mapping[int, int] | None,
    based_on_version: int,
    pharmacy: str,
    client_address: str | None,
) -> Dispensation:
    patient, _grant = _authorise(pharmacist, prescription)
    locked = Prescription.objects.select_for_update().select_related("document").get(pk=prescription.pk)
    now = timezone.now()
    if locked.dispensation_state == Prescription.DispensationState.DISPENSED:
        last = last_active_dispensation(locked)
        message = (
            gettext("Cette prescription a déjà été dispensée entièrement le %(when)s par %(who)s.")
            % {"when": _when(last.dispensed_at), "who": _who(last)}
            if last
            else gettext("Cette prescription a déjà été dispensée entièrement.")
        )
        raise _refuse("already_dispensed", message, patient=patient)
    if locked.state_version != based_on_version:
        last = (
            Dispensation.objects.filter(prescription=locked)
            .order_by("-dispensed_at", "-id")
            .select_related("withdrawn_by")
            .first()
        )
        message = (
            gettext(
                "La prescription a été modifiée entre-temps (dernière dispensation le %(when)s par "
                "%(who)s). Rechargez la page et vérifiez les quantités restant à délivrer avant de "
                "recommencer."
            )
            % {"when": _when(last.dispensed_at), "who": _who(last)}
            if last is not None
            else gettext(
                "La prescription a été modifiée entre-temps. Rechargez la page et vérifiez les "
                "quantités restant à délivrer avant de recommencer."
            )
        )
        raise _refuse("stale_version", message, patient=patient)
    first_at = first_active_dispensation_at(locked)
    if first_at is None:
        valid_until = rules.prescription_valid_until(locked.prescribed_at)
        if now > valid_until:
            months = rules.validity_months()
            raise _refuse(
                "expired",
                ngettext(
                    "Cette prescription n'est plus valable : une prescription est valable %(months)s mois "
                    "à compter de sa date (%(date)s), elle a expiré le %(until)s.",
                    "Cette prescription n'est plus valable : une prescription est valable %(months)s mois "
                    "à compter de sa date (%(date)s), elle a expiré le %(until)s.",
                    months,
                )
                % {"months": months, "date": _when(locked.prescribed_at), "until": _when(valid_until)},
                patient=patient,
            )
    else:
        series_until = rules.series_valid_until(first_at)
        if now > series_until:
            months = rules.series_months()
            raise _refuse(
                "series_expired",
                ngettext(
                    "Les délivrances successives doivent avoir lieu dans les %(months)s mois suivant la "
                    "première délivrance (%(first)s) : ce délai a expiré le %(until)s.",
                    "Les délivrances successives doivent avoir lieu dans les %(months)s mois suivant la "
                    "première délivrance (%(first)s) : ce délai a expiré le %(until)s.",
                    months,
                )
                % {"months": months, "first": _when(first_at), "until": _when(series_until)},
                patient=patient,
            )

    states = prescription_line_states(locked)
    if kind == Dispensation.Kind.FULL:
        delivered = {state.line.pk: state.remaining for state in states}
    elif kind == Dispensation.Kind.PARTIAL:
        asked = dict(lines or {})
        known = {state.line.pk for state in states}
        if set(asked) - known:
            raise _refuse("bad_line", patient=patient)
        if any(not isinstance(v, int) or v < 0 or v > MAX_QUANTITY for v in asked.values()):
            raise _refuse("bad_quantity", patient=patient)
        delivered = {state.line.pk: asked.get(state.line.pk, 0) for state in states}
        for state in states:
            if delivered[state.line.pk] > state.remaining:
                raise _refuse(
                    "over_delivery",
                    gettext(
                        "Quantité trop élevée pour « %(medication)s » : %(asked)s demandée(s), "
                        "%(remaining)s restant à délivrer."
                    )
                    % {
                        "medication": state.line.medication,
                        "asked": delivered[state.line.pk],
                        "remaining": state.remaining,
                    },
                    patient=patient,
                )
    else:
        raise _refuse("bad_kind", patient=patient)
    if sum(delivered.values()) == 0:
        raise _refuse("nothing_delivered", patient=patient)

    remaining = [state.remaining - delivered[state.line.pk] for state in states]
    new_state = _state_after(remaining, any_active=True)
    dispensation = Dispensation.objects.create(
        prescription=locked,
        pharmacist=pharmacist,
        pharmacist_name=f"{pharmacist.first_name} {pharmacist.last_name}"[:200],
        pharmacy=(pharmacy or pharmacist.organisation or "Pharmacie non renseignée")[:200],
        dispensed_at=now,
        kind=Dispensation.Kind.FULL if new_state == Prescription.DispensationState.DISPENSED else kind,
        based_on_version=based_on_version,
    )
    DispensationLine.objects.bulk_create(
        DispensationLine(
            dispensation=dispensation,
            prescription_line=state.line,
            quantity_prescribed=state.prescribed,
            quantity_delivered=delivered[state.line.pk],
            quantity_remaining=left,
        )
        for state, left in zip(states, remaining, strict=True)
    )
    _write_state(locked, based_on_version=based_on_version, state=new_state)
    supersede_current_copies(locked, CertifiedCopy.SupersededBecause.DELIVERY, now)
    audit_record(
        action=AuditAction.PRESCRIPTION_DISPENSE,
        actor=pharmacist.user,
        patient=patient,
        object_type="Dispensation",
        object_id=str(dispensation.public_id),
        client_address=client_address,
        details={
            "document": str(locked.document.public_id),
            "kind": dispensation.kind,
            "state": new_state,
            "based_on_version": based_on_version,
            "pharmacy": dispensation.pharmacy,
            "lines": [
                {"position": state.line.position, "delivered": delivered[state.line.pk], "remaining": left}
                for state, left in zip(states, remaining, strict=True)
            ],
        },
    )
    return dispensation


def _record_refusal(
    action: AuditAction,
    refusal: DispensationRefused,
    *,
    pharmacist: Professional,
    object_id: str,
    client_address: str | None,
    details: dict[str, Any],
) -> None:
    """The refusal's own audit event, outside the rolled-back transaction."""
    audit_record(
        action=action,
        outcome=AuditEvent.Outcome.REFUSED,
        actor=pharmacist.user,
        patient=refusal.patient,
        object_type="Prescription" if action == AuditAction.PRESCRIPTION_DISPENSE else "Dispensation",
        object_id=object_id,
        client_address=client_address,
        details={**details, "reason": refusal.code},
    )


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


def prescription_mark_dispensed(
    *,
    prescription: Prescription,
    pharmacist: Professional,
    kind: str,
    based_on_version: int,
    lines: Mapping[int, int] | None = None,
    pharmacy: str = "",
    client_address: str | None = None,
    public_url: str = "",
    follow_up: bool = True,
) -> Dispensation:
    """Records what a pharmacist handed over against a prescription ("Marquer comme dispensé").

    ``kind`` ``full`` delivers everything still owed; ``partial`` delivers the quantities of the
    dispensation grid, ``lines`` = {prescription line id: quantity delivered now}. When nothing
    remains owed the prescription becomes ``dispensed``, otherwise ``partial``. Needs a
    pharmacist holding a current care or emergency access to the record, a prescription not yet
    fully dispensed whose ``state_version`` is still ``based_on_version``, a prescription within
    its validity (3 months from its date for the first delivery, 6 months from the first delivery
    for the next ones) and quantities within what remains owed.

    Raises ``DispensationRefused`` (and traces the refusal) otherwise. After the commit, unless
    ``follow_up`` is false, files the eDispensation CDA and issues the certified copy (call it
    outside any transaction: the PDF must not be rendered while the prescription is locked).
    """
    object_id = str(prescription.document.public_id)
    details: dict[str, Any] = {"kind": kind, "based_on_version": based_on_version}
    try:
        if not policy.may_dispense(pharmacist.profession):
            raise _refuse("not_pharmacist", patient=prescription.document.patient)
        try:
            dispensation = _dispense_in_transaction(
                prescription=prescription,
                pharmacist=pharmacist,
                kind=kind,
                lines=lines,
                based_on_version=based_on_version,
                pharmacy=pharmacy,
                client_address=client_address,
            )
        except IntegrityError:
            # (prescription, based_on_version) taken by a concurrent attempt the lock did not order.
            raise _refuse(
                "stale_version",
                gettext("La prescription vient d'être dispensée par un autre pharmacien. Rechargez la page."),
                patient=prescription.document.patient,
            ) from None
    except DispensationRefused as refusal:
        _record_refusal(
            AuditAction.PRESCRIPTION_DISPENSE,
            refusal,
            pharmacist=pharmacist,
            object_id=object_id,
            client_address=client_address,
            details=details,
        )
        raise
    if follow_up:
        dispensation_follow_up(
            dispensation=dispensation, client_address=client_address, public_url=public_url
        )
    return dispensation


@transaction.atomic
def _withdraw_in_transaction(
    *, dispensation: Dispensation, pharmacist: Professional, reason: str, client_address: str | None
) -> Dispensation:
    prescription = dispensation.prescription
    patient, _grant = _authorise(pharmacist, prescription)
    locked = Prescription.objects.select_for_update().get(pk=prescription.pk)
    target = Dispensation.objects.select_for_update().get(pk=dispensation.pk)
    if target.pharmacist_id != pharmacist.pk:
        raise _refuse("not_author", patient=patient)
    if target.withdrawn_at is not None:
        raise _refuse(
            "already_withdrawn",
            gettext("Cette dispensation a déjà été retirée le %(when)s.")
            % {"when": _when(target.withdrawn_at)},
            patient=patient,
        )
    now = timezone.now()
    deadline = rules.withdrawal_possible_until(target.dispensed_at)
    if now > deadline:
        hours = rules.withdraw_hours()
        raise _refuse(
            "window_closed",
            ngettext(
                "Le délai de retrait (%(hours)s heure après la dispensation) a expiré le %(deadline)s.",
                "Le délai de retrait (%(hours)s heures après la dispensation) a expiré le %(deadline)s.",
                hours,
            )
            % {"hours": hours, "deadline": _when(deadline)},
            patient=patient,
        )
    if not reason:
        raise _refuse("reason_missing", patient=patient)
    if len(reason) > REASON_MAX_LENGTH:
        raise _refuse("reason_too_long", patient=patient)
    target.withdrawn_at = now
    target.withdrawn_by = pharmacist
    target.withdrawal_reason = reason
    target.save(update_fields=["withdrawn_at", "withdrawn_by", "withdrawal_reason"])
    states = prescription_line_states(locked)  # without the withdrawn delivery
    any_active = Dispensation.objects.filter(prescription=locked, withdrawn_at__isnull=True).exists()
    new_state = _state_after([state.remaining for state in states], any_active)
    _write_state(locked, based_on_version=locked.state_version, state=new_state)
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
    superseded and, when deliveries remain, a new one is issued after the commit; the
    eDispensation document is marked entered-in-error. Raises ``DispensationRefused`` (and traces
    the refusal) otherwise.
    """
    reason = " ".join(reason.split())
    try:
        withdrawn = _withdraw_in_transaction(
            dispensation=dispensation, pharmacist=pharmacist, reason=reason, client_address=client_address
        )
    except DispensationRefused as refusal:
        _record_refusal(
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
        try:
            certified_copy_issue(
                dispensation=latest, actor=pharmacist, client_address=client_address, public_url=public_url
            )
        except Exception:  # the withdrawal stands; ``esante dispensation_follow_up`` re-issues the copy
            logger.exception("certified copy after withdrawal of %s failed", withdrawn.public_id)
    return withdrawn
