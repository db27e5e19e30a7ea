"""Writes of the shared base: what the operators do in the admin, traced.

The admin pages (``core.admin.ReadTracedAdmin`` and the apps' admins) say what happened; this
module writes the event, so that no page writes to the audit trail itself.
"""

from typing import Any

from esante.audit.catalogue import AuditAction
from esante.audit.services import audit_record


def operator_action_record(
    *,
    action: AuditAction,
    operator: Any,
    client_address: str | None = None,
    patient: Any = None,
    object_type: str = "",
    object_id: str | int = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Traces one operator's read or change in the admin (the patient's journal shows the reads
    of the patient's data)."""
    audit_record(
        action=action,
        actor=operator,
        patient=patient,
        object_type=object_type,
        object_id=object_id,
        client_address=client_address,
        details=details,
    )
