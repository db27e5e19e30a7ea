"""What a login step decided (``LoginOutcome``), and what the steps share: tracing a refusal
while locked or delayed, counting a failure on the pair, the network and the account, and
tracing what that count imposed."""

import datetime
from dataclasses import dataclass, field
from typing import Any

from esante.audit.catalogue import AuditAction

from ..models import (
    LoginThrottle,
    Professional,
)
from ..notices import attack_notify, audit_locks
from ..otp import (
    LoginDevice,
)
from ..throttling import (
    Delay,
    account_failure,
    account_lock_message,
    address_failure,
    delay_message,
    lock_message,
    pair_failure,
)
from ..tracing import account_trace


@dataclass
class LoginOutcome:
    """What a login step decided. ``message`` is the text to show when ``ok`` is False, in the
    language active when the step ran (the request's)."""

    ok: bool
    message: str = ""
    user: Any = None
    device: LoginDevice | None = None
    locked_until: datetime.datetime | None = None
    delayed_until: datetime.datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def lock_outcome(until: datetime.datetime, *, account: bool = False) -> LoginOutcome:
    message = account_lock_message(until) if account else lock_message(until)
    return LoginOutcome(ok=False, message=message, locked_until=until)


def delay_outcome(until: datetime.datetime) -> LoginOutcome:
    """This address must wait before its next try on this account: not a lock of the account."""
    return LoginOutcome(ok=False, message=delay_message(until), delayed_until=until)


def locked_refusal(
    action: AuditAction,
    until: datetime.datetime,
    *,
    client_address: str | None,
    actor: Any = None,
    account: str = "",
    reason: str = "locked",
    account_locked: bool = False,
) -> LoginOutcome:
    """A login step refused without evaluating it: the account is locked (``reason="locked"``),
    the address is blocked, or this address must wait on this account (``"delayed"``). Traced,
    with the message saying when to retry."""
    account_trace(action, key=account, user=actor, client_address=client_address, reason=reason)
    if reason == "delayed":
        return delay_outcome(until)
    return lock_outcome(until, account=account_locked)


def professional_of(user: Any) -> Professional | None:
    return Professional.objects.filter(user=user).first()


def professional_active(user: Any) -> bool:
    """The professionals' pages' rule: a professional account must be active (an operator, who
    has none, passes to the operators' own checks)."""
    professional = professional_of(user)
    return professional is None or professional.state == Professional.State.ACTIVE


def notice_address(user: Any) -> str:
    """Where to tell the owner of ``user`` that the account is attacked: the professional e-mail
    of the register (an operator: the user's e-mail)."""
    professional = professional_of(user)
    return professional.email if professional is not None else (user.email or "")


def login_failure(
    *, user: Any, key: str, factor: str, client_address: str | None, address_scope: bool
) -> tuple[datetime.datetime | None, Delay | None, datetime.datetime | None]:
    """Counts a failed login step (wrong password or code) on the account, on the pair (account,
    network) and, for the password, on the network. Returns (account lock, delay, network delay)
    imposed by this failure. Decides to tell the professional when it is the pair's first delay
    or it locks the account (the mail goes after the commit).

    Writes no audit event: every counter row is locked before the chain head (the lock order of
    ``throttling``); the caller traces the attempt, then ``failure_trace``."""
    account_lock = account_failure(key) if key else None
    delay = pair_failure(LoginThrottle.Scope.PAIR, key, client_address) if key else None
    address_lock = address_failure(LoginThrottle.Scope.ADDRESS, client_address) if address_scope else None
    if user is not None and (account_lock is not None or (delay is not None and delay.first)):
        attack_notify(
            account=key,
            email=notice_address(user),
            factor=factor,
            actor=user,
            client_address=client_address,
            locked_until=account_lock,
        )
    return account_lock, delay, address_lock


def failure_trace(
    *,
    user: Any,
    key: str,
    client_address: str | None,
    counted: tuple[datetime.datetime | None, Delay | None, datetime.datetime | None],
) -> None:
    """Traces the locks and the delay ``login_failure`` has just imposed."""
    account_lock, delay, address_lock = counted
    audit_locks(
        user=user,
        key=key,
        account_lock=account_lock,
        address_lock=address_lock,
        client_address=client_address,
        delay=delay,
    )
