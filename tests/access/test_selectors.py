import datetime
import uuid
from typing import Any

import pytest
from django.utils import timezone

from esante.access import selectors
from esante.access.models import AccessGrant, PatientBlock, RecordOpening
from esante.accounts.models import Professional
from esante.patients.models import Patient

from .factories import make_grant, make_patient, make_professional

pytestmark = pytest.mark.django_db


def test_deny_by_default_no_grant_gives_nothing(pharmacist: Professional, patient: Patient) -> None:
    """An empty policy grants nothing: no grant, no record, no list row."""
    with pytest.raises(selectors.RecordNotFound):
        selectors.access_patient_record(pharmacist, patient.public_id)
    assert selectors.current_grant(professional=pharmacist, patient=patient) is None
    assert list(selectors.my_patients(pharmacist)) == []
    assert list(selectors.recent_records(pharmacist)) == []


def test_current_grant_opens_record(pharmacist: Professional, patient: Patient) -> None:
    grant = make_grant(pharmacist, patient)
    assert selectors.access_patient_record(pharmacist, patient.public_id) == (patient, grant)
    assert selectors.access_patient_record(pharmacist, str(patient.public_id)) == (patient, grant)


def expired(professional: Professional, patient: Patient) -> None:
    now = timezone.now()
    make_grant(
        professional,
        patient,
        granted_at=now - datetime.timedelta(hours=2),
        expires_at=now - datetime.timedelta(seconds=1),
    )


def revoked(professional: Professional, patient: Patient) -> None:
    make_grant(professional, patient, revoked_at=timezone.now())


def other_professional(professional: Professional, patient: Patient) -> None:
    make_grant(make_professional("doctor"), patient)


def blocked(professional: Professional, patient: Patient) -> None:
    make_grant(professional, patient)
    PatientBlock.objects.create(patient=patient, professional=professional)


def closed(professional: Professional, patient: Patient) -> None:
    make_grant(professional, patient)
    Patient.objects.filter(pk=patient.pk).update(dossier_state=Patient.DossierState.CLOSED)


def opposed(professional: Professional, patient: Patient) -> None:
    make_grant(professional, patient)
    Patient.objects.filter(pk=patient.pk).update(dossier_state=Patient.DossierState.OPPOSED)


def suspended(professional: Professional, patient: Patient) -> None:
    make_grant(professional, patient)
    Professional.objects.filter(pk=professional.pk).update(state=Professional.State.SUSPENDED)
    professional.state = Professional.State.SUSPENDED


@pytest.mark.parametrize("setup", [expired, revoked, other_professional, blocked, closed, opposed, suspended])
def test_every_refusal_is_the_same_error(pharmacist: Professional, patient: Patient, setup: Any) -> None:
    setup(pharmacist, patient)
    with pytest.raises(selectors.RecordNotFound) as caught:
        selectors.access_patient_record(pharmacist, patient.public_id)
    assert str(caught.value) == selectors.RecordNotFound.message
    assert patient not in selectors.my_patients(pharmacist)


@pytest.mark.parametrize("public_id", [uuid.uuid4(), "not-a-uuid", ""])
def test_missing_patient_is_the_same_error(pharmacist: Professional, public_id: object) -> None:
    with pytest.raises(selectors.RecordNotFound) as caught:
        selectors.access_patient_record(pharmacist, public_id)
    assert str(caught.value) == selectors.RecordNotFound.message


def test_care_grant_preferred_over_own_documents(doctor: Professional, patient: Patient) -> None:
    make_grant(doctor, patient, mode=AccessGrant.Mode.OWN_DOCUMENTS, hours=1000)
    care = make_grant(doctor, patient, mode=AccessGrant.Mode.CARE, hours=10)
    assert selectors.current_grant(professional=doctor, patient=patient) == care


def test_my_patients_and_recent_records(pharmacist: Professional) -> None:
    mine = make_patient("Muller", "Anna")
    other = make_patient("Weber", "Paul")
    grant = make_grant(pharmacist, mine)
    RecordOpening.objects.create(professional=pharmacist, patient=mine, grant=grant)
    old = make_grant(pharmacist, other, revoked_at=timezone.now())
    RecordOpening.objects.create(professional=pharmacist, patient=other, grant=old)
    rows = list(selectors.my_patients(pharmacist))
    assert rows == [mine]
    assert rows[0].my_access_until == grant.expires_at
    recent = list(selectors.recent_records(pharmacist))
    assert set(recent) == {mine, other}
    assert recent[0].my_last_opening is not None


def test_paginate_caps_and_flags_refine(pharmacist: Professional) -> None:
    for i in range(7):
        make_patient("Dupont", f"Jean{i}")
    page = selectors.paginate(Patient.objects.order_by("pk"), page=2, page_size=3, cap=5)
    assert (page.total, page.refine, page.start, page.end, len(page.rows)) == (5, True, 4, 5, 2)
    last = selectors.paginate(Patient.objects.order_by("pk"), page=99, page_size=10)
    assert (last.page, last.total, last.start, last.end) == (1, 7, 1, 7)
