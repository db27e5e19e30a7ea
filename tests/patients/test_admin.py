"""The operators' admin of the patient index: reads and changes traced, never a delete."""

import datetime
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from esante.accounts.models import User
from esante.audit.models import AuditEvent
from esante.patients.matricule import make_patient_matricule
from esante.patients.models import Patient
from tests.access.factories import make_patient, make_professional
from tests.conftest import otp_verified_login

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client: Client) -> User:
    user = User.objects.create_superuser(username="operateur", password=None)
    otp_verified_login(client, user)
    return user


@pytest.fixture
def patient() -> Patient:
    return make_patient("Pig", "Peppa", dossier_number="1664900001", platform_identifier="1700000001")


def change_url(patient: Patient) -> str:
    return reverse("admin:patients_patient_change", args=[patient.pk])


def form_data(patient: Patient, **changes: Any) -> dict[str, Any]:
    data = {
        "matricule": patient.matricule,
        "birth_name": patient.birth_name,
        "usage_name": patient.usage_name,
        "first_names": patient.first_names,
        "birth_date": patient.birth_date.strftime("%d/%m/%Y"),
        "sex": patient.sex,
        "referring_doctor": "",
        "taux": patient.taux,
        "dossier_number": patient.dossier_number,
        "platform_identifier": patient.platform_identifier,
        "dossier_state": patient.dossier_state,
        "alerts": patient.alerts,
        "_save": "Enregistrer",
    }
    data.update(changes)
    return data


def events() -> list[AuditEvent]:
    return list(AuditEvent.objects.order_by("sequence"))


def test_opening_a_patient_is_traced(client: Client, operator: User, patient: Patient) -> None:
    response = client.get(change_url(patient), REMOTE_ADDR="192.0.2.7")
    assert response.status_code == 200
    assert patient.matricule in response.content.decode()
    [event] = events()
    assert (event.action, event.outcome, event.actor, event.patient) == (
        "patient.admin.read",
        "success",
        operator,
        patient,
    )
    assert (event.object_type, event.object_id, event.client_address) == (
        "patient",
        str(patient.pk),
        "192.0.2.7",
    )


def test_the_list_is_traced_and_a_missing_patient_writes_no_read_event(
    client: Client, operator: User, patient: Patient
) -> None:
    assert client.get(reverse("admin:patients_patient_changelist") + "?q=PIG").status_code == 200
    (event,) = events()
    assert (event.action, event.patient, event.actor) == ("patient.admin.read.list", None, operator)
    assert (event.details["search"], event.details["results"]) == ("PIG", 1)
    assert client.get(reverse("admin:patients_patient_change", args=[987654])).status_code == 302
    assert len(events()) == 1


def test_a_change_is_traced_with_old_and_new_values(client: Client, operator: User, patient: Patient) -> None:
    doctor = make_professional("doctor")
    response = client.post(
        change_url(patient),
        form_data(patient, usage_name="Cochon", alerts="Adresse inconnue", referring_doctor=doctor.pk),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    patient.refresh_from_db()
    assert (patient.usage_name, patient.alerts, patient.referring_doctor) == (
        "Cochon",
        "Adresse inconnue",
        doctor,
    )
    [event] = events()
    assert (event.action, event.outcome, event.actor, event.patient) == (
        "patient.update",
        "success",
        operator,
        patient,
    )
    assert event.details == {
        "source": "admin",
        "changes": {
            "usage_name": ["", "Cochon"],
            "alerts": ["", "Adresse inconnue"],
            "referring_doctor": [None, str(doctor.pk)],
        },
    }


def test_an_invalid_change_changes_nothing_and_traces_nothing(
    client: Client, operator: User, patient: Patient
) -> None:
    response = client.post(change_url(patient), form_data(patient, birth_name="", alerts="Adresse inconnue"))
    assert response.status_code == 200
    patient.refresh_from_db()
    assert (patient.birth_name, patient.alerts) == ("Pig", "")
    assert events() == []


def test_a_creation_is_traced_with_its_values(client: Client, operator: User) -> None:
    new = Patient(
        matricule=make_patient_matricule(datetime.date(1990, 5, 17), 123),
        birth_name="Wolf",
        first_names="Wendy",
        birth_date=datetime.date(1990, 5, 17),
        sex="F",
        taux=80,
        platform_identifier="1799999999",
    )
    response = client.post(reverse("admin:patients_patient_add"), form_data(new))
    assert response.status_code == 302, response.content.decode()[:2000]
    created = Patient.objects.get(matricule=new.matricule)
    [event] = events()
    assert (event.action, event.actor, event.patient) == ("patient.create", operator, created)
    assert event.details["values"]["birth_name"] == "Wolf"
    assert event.details["values"]["birth_date"] == "1990-05-17"


def test_a_patient_cannot_be_deleted(client: Client, operator: User, patient: Patient) -> None:
    delete_url = reverse("admin:patients_patient_delete", args=[patient.pk])
    assert client.get(delete_url).status_code == 403
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    changelist = reverse("admin:patients_patient_changelist")
    assert "delete_selected" not in client.get(changelist).content.decode()
    client.post(changelist, {"action": "delete_selected", "_selected_action": [patient.pk], "post": "yes"})
    assert Patient.objects.filter(pk=patient.pk).exists()
    assert "Supprimer" not in client.get(change_url(patient)).content.decode()
    # The list pages and the last change page were read; nothing else was written.
    assert [e.action for e in events()] == ["patient.admin.read.list", "patient.admin.read"]
