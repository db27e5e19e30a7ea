"""Second factor: the one-time code sent by SMS or e-mail, its resending and its check (the
device row locked while the code is verified; single use, expiry, throttling)."""

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from esante.audit.catalogue import AuditAction, AuditOutcome
from esante.audit.services import audit_record

from ..delivery import DeliveryError, code_deliver
from ..models import (
    LoginThrottle,
    User,
)
from ..otp import (
    LoginDevice,
    OtpCheck,
    device_address,
    login_device_for,
    otp_check,
    otp_issue,
    resend_available_at,
)
from ..services import FAILURE, NO_DEVICE, REFUSED, SUSPENDED, resend_message
from ..throttling import (
    account_lock_check,
    account_success,
    pair_delay_check,
    pair_success,
)
from ..tracing import account_trace
from .outcome import (
    LoginOutcome,
    delay_outcome,
    failure_trace,
    lock_outcome,
    locked_refusal,
    login_failure,
    professional_active,
)


def _device_trace(
    action: AuditAction,
    *,
    user: Any,
    device: LoginDevice,
    client_address: str | None,
    details: dict[str, Any],
    outcome: AuditOutcome = AuditOutcome.SUCCESS,
) -> None:
    """One event about the user's code device (a code sent, refused, checked)."""
    audit_record(
        action=action,
        outcome=outcome,
        actor=user,
        object_type="otp_device",
        object_id=device.persistent_id,
        client_address=client_address,
        details=details,
    )


def send_login_code(*, device: LoginDevice, user: Any, client_address: str | None) -> LoginOutcome:
    channel, address = device_address(device)
    code = otp_issue(device)
    trace = {"user": user, "device": device, "client_address": client_address}
    try:
        code_deliver(channel=channel, address=address, code=code)
    except DeliveryError as exc:
        _device_trace(
            AuditAction.OTP_SEND,
            **trace,
            outcome=FAILURE,
            details={"channel": channel, "error": str(exc)[:200]},
        )
        return LoginOutcome(ok=False, message=gettext("Le code n'a pas pu être envoyé. Réessayez plus tard."))
    _device_trace(AuditAction.OTP_SEND, **trace, details={"channel": channel})
    return LoginOutcome(ok=True, user=user, device=device)


@transaction.atomic
def login_code_resend(*, user: Any, client_address: str | None) -> LoginOutcome:
    """Sends a new code to the user's device, at most once per ``ESANTE_OTP_RESEND_SECONDS``."""
    device = login_device_for(user)
    if device is None:
        return LoginOutcome(ok=False, message=gettext(NO_DEVICE))
    ready = resend_available_at(device)
    if ready is not None:
        _device_trace(
            AuditAction.OTP_SEND,
            user=user,
            device=device,
            client_address=client_address,
            outcome=REFUSED,
            details={"reason": "too_soon"},
        )
        return LoginOutcome(ok=False, message=resend_message(ready))
    return send_login_code(device=device, user=user, client_address=client_address)


def _code_step_refusal(
    *, user: Any, key: str, client_address: str | None, account_active: Callable[[Any], bool]
) -> LoginOutcome | LoginDevice:
    """The checks before a code is read: the account locked, this network delayed on it, no
    device or an account not active (each refusal traced). Returns the refusal, or the user's
    device, locked for update (after the account's and the pair's counter rows)."""
    account_lock = account_lock_check(key)
    if account_lock is not None:
        return locked_refusal(
            AuditAction.LOGIN_CODE,
            account_lock,
            client_address=client_address,
            actor=user,
            account=key,
            account_locked=True,
        )
    delayed = pair_delay_check(LoginThrottle.Scope.PAIR, key, client_address)
    if delayed is not None:
        return locked_refusal(
            AuditAction.LOGIN_CODE,
            delayed,
            client_address=client_address,
            actor=user,
            account=key,
            reason="delayed",
        )
    device = login_device_for(user)
    if device is None or not user.is_active or not account_active(user):
        account_trace(
            AuditAction.LOGIN_CODE, key=key, user=user, client_address=client_address, reason="inactive"
        )
        return LoginOutcome(ok=False, message=gettext(SUSPENDED))
    return device


def _code_failure(
    *, user: Any, key: str, device: LoginDevice, result: OtpCheck, client_address: str | None
) -> LoginOutcome:
    """A wrong or dead code: counted on the account and the pair, traced, then what it imposed."""
    counted = login_failure(
        user=user, key=key, factor="otp", client_address=client_address, address_scope=False
    )
    _device_trace(
        AuditAction.LOGIN_CODE,
        user=user,
        device=device,
        client_address=client_address,
        outcome=FAILURE,
        details={"reason": result.value},
    )
    failure_trace(user=user, key=key, client_address=client_address, counted=counted)
    new_lock, new_delay, _ = counted
    if new_lock is not None:
        return lock_outcome(new_lock, account=True)
    if new_delay is not None:
        return delay_outcome(new_delay.until)
    if result is OtpCheck.EXPIRED or device.token is None:
        return LoginOutcome(
            ok=False, message=gettext("Ce code n'est plus valable. Demandez un nouveau code.")
        )
    return LoginOutcome(ok=False, message=gettext("Le code saisi est incorrect."))


@transaction.atomic
def login_code(
    *,
    user: Any,
    code: str,
    client_address: str | None,
    account_active: Callable[[Any], bool] = professional_active,
) -> LoginOutcome:
    """Second factor: the one-time code. Locks the account's counter row, then the pair's, then
    the device row, while checking it: concurrent codes are evaluated one after the other.

    A wrong code counts like a wrong password on the account and on the (account, address) pair
    (delays after three, an account lock far later, the professional told by e-mail); three wrong
    codes kill the code. A delay keeps the pending login (``delayed_until``); a lock ends it
    (``locked_until``).
    """
    key = user.get_username()
    # Locked before the device row, as in login_password: concurrent codes queue on the account.
    device = _code_step_refusal(
        user=user, key=key, client_address=client_address, account_active=account_active
    )
    if isinstance(device, LoginOutcome):
        return device
    result = otp_check(device, code)
    if result is not OtpCheck.ACCEPTED:
        return _code_failure(user=user, key=key, device=device, result=result, client_address=client_address)
    account_success(key)
    pair_success(LoginThrottle.Scope.PAIR, key, client_address)
    User.objects.filter(pk=user.pk).update(last_login=timezone.now())
    _device_trace(
        AuditAction.LOGIN_CODE,
        user=user,
        device=device,
        client_address=client_address,
        details={"factor": "password+otp"},
    )
    return LoginOutcome(ok=True, user=user, device=device)
