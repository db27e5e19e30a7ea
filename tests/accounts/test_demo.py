"""The demo's professionals: printed credentials work, the registered one can be activated."""

import re
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from esante.accounts.demo import DEMO_PASSWORD, demo_professionals_load
from esante.accounts.models import Profession, Professional

pytestmark = pytest.mark.django_db


def test_demo_professionals(client: Client) -> None:
    shown = demo_professionals_load()
    assert [p.state for p in shown] == ["active", "active", "active", "registered"]
    assert Professional.objects.filter(profession=Profession.PHARMACIST, state="active").count() == 2
    assert Professional.objects.filter(profession=Profession.DOCTOR, state="active").count() == 1
    assert shown[3].activation_code

    again = demo_professionals_load()  # idempotent; a fresh code for the one still to activate
    assert Professional.objects.count() == 4
    assert again[3].activation_code != shown[3].activation_code

    response = client.post(
        "/professionnel/connexion/", {"matricule": shown[0].matricule, "password": DEMO_PASSWORD}
    )
    assert response["Location"] == "/professionnel/connexion/code/"
    code = re.search(r"\b(\d{6})\b", mail.outbox[-1].body)
    assert code
    assert (
        client.post("/professionnel/connexion/code/", {"code": code.group(1)})["Location"] == "/edocuments/"
    )


def test_demo_registered_professional_can_activate(client: Client, settings: Any) -> None:
    settings.ESANTE_ACTIVATION_CERTIFICATE_OPTIONAL = True
    newcomer = demo_professionals_load()[3]
    client.post("/professionnel/activation/", {"accept": "on"})
    client.post("/professionnel/activation/etape/1/", {"skip": "1"})
    response = client.post(
        "/professionnel/activation/etape/2/",
        {"received": "oui", "matricule": newcomer.matricule, "code": newcomer.activation_code},
    )
    assert response["Location"] == "/professionnel/activation/etape/3/"
