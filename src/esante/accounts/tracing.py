"""The one way the accounts app traces an event about an account (a login step, a lock, a delay,
a password change): the account's key (matricule or username) as object, the user when known,
otherwise the key as label."""

from typing import Any

from esante.audit.catalogue import AuditAction, AuditOutcome
from esante.audit.services import audit_record


def account_trace(
    action: AuditAction,
    *,
    key: str,
    client_address: str | None,
    user: Any = None,
    outcome: AuditOutcome = AuditOutcome.REFUSED,
    reason: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Appends the event ``action`` about the account ``key`` (none when the key is empty, e.g. a
    blank matricule); ``reason`` goes first in the details."""
    audit_record(
        action=action,
        outcome=outcome,
        actor=user,
        actor_label="" if user is not None else key,
        object_type="account" if key else "",
        object_id=key,
        client_address=client_address,
        details=({"reason": reason} if reason else {}) | (details or {}),
    )
