"""Refusals of the dispensing services: the error, its messages and its audit event.

A refusal changes nothing but its own audit event, written by ``refusal_record`` outside the
rolled-back transaction.
"""

from typing import Any

from django.utils import formats, timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from esante.access.selectors import RecordNotFound
from esante.accounts.models import Professional
from esante.audit.catalogue import AuditAction, AuditOutcome
from esante.audit.services import audit_record

REASON_MAX_LENGTH = 500


def when(moment: Any) -> str:
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


def refuse(code: str, message: str = "", **kwargs: Any) -> DispensationRefused:
    return DispensationRefused(code, message or str(MESSAGES[code]), **kwargs)


def refusal_record(
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
        outcome=AuditOutcome.REFUSED,
        actor=pharmacist.user,
        patient=refusal.patient,
        object_type="Prescription" if action == AuditAction.PRESCRIPTION_DISPENSE else "Dispensation",
        object_id=object_id,
        client_address=client_address,
        details={**details, "reason": refusal.code},
    )
