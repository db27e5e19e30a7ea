"""Issue 10, finding 1: the one-time-code page took a row lock outside a transaction.

On PostgreSQL, in production, views run in autocommit and ``select_for_update`` outside a
transaction raises ``TransactionManagementError``: the page after a correct password answered 500,
and so did the page after a wrong code. These tests run without a test transaction
(``committed_db``), the way the served platform runs, so PostgreSQL itself refuses such a lock;
on SQLite the suite-wide guard of ``tests/conftest.py`` refuses it the same way. The browser
walk (tests/e2e) runs the whole guide through a real server on both databases.
"""

import re
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from esante.audit.models import AuditEvent
from tests.accounts.conftest import PASSWORD, make_active

LOGIN = "/professionnel/connexion/"
CODE = "/professionnel/connexion/code/"


def _mailed_code() -> str:
    match = re.search(r"\b(\d{6})\b", mail.outbox[-1].body)
    assert match
    return match[1]


@pytest.fixture
def professional(committed_db: None, tmp_path: Any, settings: Any) -> Any:
    settings.OUTBOX_DIR = tmp_path / "outbox"
    return make_active(matricule="19800101002", last_name="Schmit", first_name="Luc", email="luc@pharma.lu")


@pytest.mark.parametrize("channel", ["email", "sms"])
def test_code_page_after_the_password_and_after_a_wrong_code_outside_any_test_transaction(
    committed_db: None, tmp_path: Any, settings: Any, channel: str
) -> None:
    settings.OUTBOX_DIR = tmp_path / "outbox"
    make_active(
        matricule="19800101002", last_name="Schmit", first_name="Luc", email="luc@pharma.lu", channel=channel
    )
    client = Client()
    response = client.post(LOGIN, {"matricule": "19800101002", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == CODE
    page = client.get(CODE)
    assert page.status_code == 200
    assert "Code reçu par SMS ou par E-mail" in page.content.decode()
    wrong = client.post(CODE, {"code": "000000"})
    assert wrong.status_code == 200
    assert "Code reçu par SMS ou par E-mail" in wrong.content.decode()
    outcomes = list(
        AuditEvent.objects.filter(action="accounts.login.code")
        .order_by("sequence")
        .values_list("outcome", flat=True)
    )
    assert outcomes == [AuditEvent.Outcome.FAILURE]


def test_the_whole_password_and_code_login_outside_any_test_transaction(professional: Any) -> None:
    client = Client()
    client.post(LOGIN, {"matricule": "19800101002", "password": PASSWORD})
    assert client.get(CODE).status_code == 200
    response = client.post(CODE, {"code": _mailed_code()})
    assert response.status_code == 302 and response["Location"] == "/edocuments/"
    assert client.get("/edocuments/").status_code == 200
