"""``{% dispensation_panel %}``: the dispensing part of the document viewer (guide p.15–16).

Shows what remains owed, the dispensations with their certified copies (« Copie certifiée en
préparation… » while the queue prepares the latest one, replaced by its link when ready), and —
for a pharmacist holding a current care or emergency access (the gate's answer, from the access
policy) — "Marquer comme dispensé" and the withdrawal of their own recent dispensations. Reads only; the
viewer already authorised the document.
"""

from typing import Any

from django import template
from django.utils import timezone
from django.utils.translation import gettext

from esante.access.http import active_professional

from .. import rules
from ..forms import DispenseForm
from ..gate import DispensingGate
from ..selectors import copy_is_current, prescription_dispensations, prescription_line_states

register = template.Library()


@register.inclusion_tag("dispensing/_panel.html", takes_context=True)
def dispensation_panel(context: template.Context) -> dict[str, Any]:
    prescription = context.get("prescription")
    request = context.get("request")
    grant = context.get("grant")
    if prescription is None or request is None:
        return {"prescription": None}
    professional = active_professional(request)
    states = prescription_line_states(prescription)
    dispensations = prescription_dispensations(prescription)
    now = timezone.now()
    may_act = professional is not None and DispensingGate(actor=professional).may_dispense(grant)
    standing = [dispensation for dispensation in dispensations if dispensation.withdrawn_at is None]
    latest = standing[-1] if standing else None
    rows = [
        {
            "dispensation": dispensation,
            "copy": next(iter(dispensation.certified_copies.all()), None),
            # The latest standing delivery without a current copy: its job is preparing one.
            "pending": dispensation is latest and not copy_is_current(dispensation),
            "may_withdraw": may_act
            and professional is not None
            and dispensation.pharmacist_id == professional.pk
            and dispensation.withdrawn_at is None
            and now <= rules.withdrawal_possible_until(dispensation.dispensed_at),
        }
        for dispensation in dispensations
    ]
    can_dispense = may_act and prescription.dispensation_state != prescription.DispensationState.DISPENSED
    form = (
        DispenseForm(
            initial={"kind": "full", "state_version": prescription.state_version}, line_states=states
        )
        if can_dispense
        else None
    )
    return {
        "prescription": prescription,
        "patient": context.get("patient"),
        "document": context.get("document"),
        "line_states": states,
        "rows": rows,
        "can_dispense": can_dispense,
        "form": form,
        "legend": gettext("Status (rouge: dispensé entièrement)"),
        "csrf_token": context.get("csrf_token"),
    }
