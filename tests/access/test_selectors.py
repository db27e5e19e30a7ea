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


def _reference_page(
    criteria: Any, *, page: int, page_size: int, cap: int
) -> tuple[list[int], int, int, bool]:
    """The page as ``paginate`` cuts the plain search (one query with UNION): ids, total, page, refine."""
    from esante.patients.selectors import patient_search

    reference = selectors.paginate(patient_search(criteria), page=page, page_size=page_size, cap=cap)
    return [p.pk for p in reference.rows], reference.total, reference.page, reference.refine


@pytest.mark.parametrize("cap", [4, 7, 200])
def test_search_page_is_the_plain_search_paged(pharmacist: Professional, settings: Any, cap: int) -> None:
    from esante.patients.selectors import patient_search_criteria

    settings.ESANTE_SEARCH_MAX_RESULTS = cap
    # Matches by birth name and by usage name only (the search's two parts), interleaved by name.
    for n in range(5):
        make_patient("Dupont", f"Jean{n}")
        make_patient("Martin", f"Jeanne{n}", usage_name="Dupuis")
    make_patient("Dupont", "Paul")  # another first name: no match
    criteria = patient_search_criteria(name="dup", first_name="j")
    for page_size in (1, 3, 25):
        for page in (1, 2, 3, 4, 9, 1000):
            mine = selectors.patient_search_page(
                professional=pharmacist, criteria=criteria, page=page, page_size=page_size
            )
            expected = _reference_page(criteria, page=page, page_size=page_size, cap=cap)
            assert ([p.pk for p in mine.rows], mine.total, mine.page, mine.refine) == expected, (
                page_size,
                page,
            )


def test_search_page_by_matricule_past_the_last_page(pharmacist: Professional) -> None:
    from esante.patients.selectors import patient_search_criteria

    patient = make_patient()
    make_grant(pharmacist, patient)
    criteria = patient_search_criteria(matricule=patient.matricule)
    for page in (1, 2, 50):
        found = selectors.patient_search_page(
            professional=pharmacist, criteria=criteria, page=page, page_size=25
        )
        assert ([p.pk for p in found.rows], found.total, found.page, found.refine) == (
            [patient.pk],
            1,
            1,
            False,
        )
        # The row carries the professional's columns, read in the same query.
        assert found.rows[0].my_access_mode == AccessGrant.Mode.CARE
    nobody = patient_search_criteria(matricule=make_patient().matricule)
    Patient.objects.filter(matricule=nobody.matricule).delete()
    empty = selectors.patient_search_page(professional=pharmacist, criteria=nobody, page=3, page_size=25)
    assert (empty.rows, empty.total, empty.page) == ([], 0, 1)
