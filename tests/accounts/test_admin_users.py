"""The operators' admin of user accounts: no password is set through it (a professional's password
would bypass the activation), no account is created there, only a superuser changes rights, and
every change is traced."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from esante.accounts.models import Professional, User
from esante.audit.catalogue import AuditAction
from esante.audit.models import AuditEvent
from tests.conftest import otp_verified_login

pytestmark = pytest.mark.django_db


def _staff_operator(client: Client) -> User:
    user = User.objects.create_user(username="guichet", password=None, is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=("view_user", "change_user", "add_user"))
    )
    otp_verified_login(client, user)
    return user


@pytest.fixture
def superuser(client: Client) -> User:
    user = User.objects.create_superuser(username="operateur", password=None)
    otp_verified_login(client, user)
    return user


def test_a_professionals_password_cannot_be_set_through_the_admin(
    client: Client, superuser: User, active: Professional
) -> None:
    before, events = active.user.password, AuditEvent.objects.count()
    url = reverse("admin:auth_user_password_change", args=[active.user.pk])
    assert client.get(url).status_code == 403
    response = client.post(url, {"password1": "Nouveau-mot-2026!", "password2": "Nouveau-mot-2026!"})
    assert response.status_code == 403
    active.user.refresh_from_db()
    assert active.user.password == before
    assert AuditEvent.objects.count() == events


def test_no_account_is_created_through_the_admin(client: Client, superuser: User) -> None:
    count, events = User.objects.count(), AuditEvent.objects.count()
    response = client.post(
        reverse("admin:accounts_user_add"),
        {"username": "intrus", "password1": "Nouveau-mot-2026!", "password2": "Nouveau-mot-2026!"},
    )
    assert response.status_code == 403
    assert User.objects.count() == count
    assert AuditEvent.objects.count() == events


def _change_form(user: User, **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": "Nouveau-Nom",
        "email": user.email,
        "is_active": "on",
        "date_joined_0": "01/01/2026",
        "date_joined_1": "00:00:00",
    }
    data.update(overrides)
    return data


def test_a_staff_operator_cannot_grant_themselves_rights(client: Client) -> None:
    operator = _staff_operator(client)
    response = client.post(
        reverse("admin:accounts_user_change", args=[operator.pk]),
        _change_form(operator, is_staff="on", is_superuser="on"),
    )
    assert response.status_code == 302
    operator.refresh_from_db()
    assert not operator.is_superuser
    assert operator.last_name == "Nouveau-Nom"
    [event] = AuditEvent.objects.filter(action=AuditAction.ACCOUNT_ADMIN_CHANGE.value)
    assert event.details["fields"] == ["last_name"]


def test_a_superusers_change_is_traced(client: Client, superuser: User, active: Professional) -> None:
    user = active.user
    response = client.post(
        reverse("admin:accounts_user_change", args=[user.pk]),
        _change_form(user, is_staff="on"),
        REMOTE_ADDR="192.0.2.7",
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.is_staff
    [event] = AuditEvent.objects.filter(action=AuditAction.ACCOUNT_ADMIN_CHANGE.value)
    assert event.actor == superuser
    assert event.object_type == "user"
    assert event.object_id == str(user.pk)
    assert event.client_address == "192.0.2.7"
    assert event.details["fields"] == ["is_staff", "last_name"]
