"""The login steps: matricule and password, the one-time code (and its resending), the
certificate; and the logout. Each step is one login factor behind the same contract: the
(account, address) pair delays, the address and the account locks, single-use and expiring codes,
the device row locked while a code is verified, every attempt traced.

Every step is keyword-only and runs in one transaction that ends with its audit event. A refused
attempt is itself an action: its counters and its audit event are committed together, and the
caller gets a ``LoginOutcome`` saying what to show.
"""

from typing import Any

from esante.audit.catalogue import AuditAction
from esante.audit.services import audit_record

from .certificate import login_certificate
from .code import login_code, login_code_resend
from .outcome import LoginOutcome
from .password import login_password

__all__ = [
    "LoginOutcome",
    "login_certificate",
    "login_code",
    "login_code_resend",
    "login_password",
    "logout_record",
]


def logout_record(*, user: Any, client_address: str | None) -> None:
    audit_record(action=AuditAction.LOGOUT, actor=user, client_address=client_address)
