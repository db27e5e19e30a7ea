"""The login-factor contract (``factor_contract.LoginFactorContract``) run against the password,
the one-time code and the activation code of the letter."""

import datetime
import re
from typing import Any

from django.core import mail

from esante.accounts.activation import wizard_code, wizard_start
from esante.accounts.login import login_code, login_password
from esante.accounts.models import ActivationWizard
from esante.accounts.services import activation_letter_issue, professional_register

from .conftest import PASSWORD, make_active
from .factor_contract import ADDRESS, LoginFactorContract


def _active() -> Any:
    return make_active(
        matricule="19800101002", last_name="Schmit", first_name="Luc", email="luc.schmit@pharma.lu"
    )


class TestPassword(LoginFactorContract):
    """Matricule and password: not single-use, no expiry; the (account, address) pair waits after
    three wrong passwords."""

    action = "accounts.login.password"

    def prepare(self) -> Any:
        return _active()

    def attempt(self, ctx: Any, *, right: bool, address: str = ADDRESS) -> bool:
        password = PASSWORD if right else "not-the-password"
        return login_password(matricule=ctx.matricule, password=password, client_address=address).ok


class TestOneTimeCode(LoginFactorContract):
    """The code sent after the password: single use, valid ``ESANTE_OTP_VALID_SECONDS`` (300),
    dead after ``ESANTE_OTP_MAX_TRIES`` (3) wrong tries."""

    action = "accounts.login.code"
    single_use = True
    lifetime = datetime.timedelta(seconds=300)

    def prepare(self) -> Any:
        professional = _active()
        assert login_password(matricule=professional.matricule, password=PASSWORD, client_address=ADDRESS).ok
        match = re.search(r"\b(\d{6})\b", mail.outbox[-1].body)
        assert match
        return professional, match.group(1)

    def attempt(self, ctx: Any, *, right: bool, address: str = ADDRESS) -> bool:
        professional, code = ctx
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        return login_code(user=professional.user, code=code if right else wrong, client_address=address).ok


class TestActivationCode(LoginFactorContract):
    """The activation letter's code at step 2 of the wizard: valid three months; the (matricule,
    address) pair waits after three wrong codes. The letter is consumed at the end of step 4 (the
    activation), not at step 2: single use is the activation's, tested in ``test_activation``."""

    action = "accounts.activation.code"
    lifetime = datetime.timedelta(days=92)

    def prepare(self) -> Any:
        professional = professional_register(
            matricule="19750315006",
            profession="pharmacist",
            last_name="Muller",
            first_name="Anne",
            email="anne.muller@pharmacie.lu",
            mobile="+352 621 111 222",
        )
        _, code = activation_letter_issue(professional=professional)
        return professional, code

    def attempt(self, ctx: Any, *, right: bool, address: str = ADDRESS) -> bool:
        professional, code = ctx
        wizard = wizard_start(terms_version="1", client_address=address)
        ActivationWizard.objects.filter(pk=wizard.pk).update(step=ActivationWizard.Step.CODE)
        wizard.refresh_from_db()
        secret = code if right else "ZZZZ-ZZZZ-ZZZZ"
        return wizard_code(
            wizard=wizard, matricule=professional.matricule, code=secret, client_address=address
        ).ok
