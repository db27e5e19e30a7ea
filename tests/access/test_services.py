import datetime
from typing import Any

import pytest
from django.utils import timezone
from freezegun import freeze_time

from esante.access import selectors, services
from esante.access.models import AccessGrant, PatientBlock, RecordOpening
from esante.accounts.models import Professional
from esante.audit.models import AuditEvent
from esante.patients.models import Patient

from .factories import make_grant, make_patient, make_professional

pytestmark = pytest.mark.django_db


def test_care_grant_pharmacist_lasts_24_hours(
    pharmacist: Professional, patient: Patient, audit_events: Any
) -> None:
    with freeze_time("2026-03-01 10:00:00"):
        grant = services.access_grant_care(
            professional=pharmacist, patient=patient, motif="Délivrance", conditions_accepted=True
        )
    assert grant.mode == AccessGrant.Mode.CARE
    assert grant.expires_at - grant.granted_at == datetime.timedelta(hours=24)
    assert grant.conditions_version
    assert audit_events() == [("access.grant", "success")]
    event = AuditEvent.objects.get()
    assert event.actor == pharmacist.user
    assert event.patient == patient
    assert event.motif == "Délivrance"
    assert event.details["mode"] == "care"


def test_care_grant_doctor_lasts_six_months(doctor: Professional, patient: Patient) -> None:
    grant = services.access_grant_care(
        professional=doctor, patient=patient, motif="Suivi", conditions_accepted=True
    )
    assert grant.expires_at - grant.granted_at == datetime.timedelta(days=183)


def test_own_documents_grant_needs_no_motif(
    pharmacist: Professional, patient: Patient, audit_events: Any
) -> None:
    grant = services.access_grant_own_documents(
        professional=pharmacist, patient=patient, conditions_accepted=True
    )
    assert grant.mode == AccessGrant.Mode.OWN_DOCUMENTS
    assert audit_events() == [("access.grant", "success")]


def test_emergency_grant_for_doctor_two_hours_flagged(
    doctor: Professional, patient: Patient, audit_events: Any
) -> None:
    grant = services.access_grant_emergency(
        professional=doctor,
        patient=patient,
        motif="Patient inconscient aux urgences",
        conditions_accepted=True,
    )
    assert grant.expires_at - grant.granted_at == datetime.timedelta(hours=2)
    assert audit_events() == [("access.emergency", "success")]
    assert audit_events(patient=patient, action="access.emergency")


def refused(call: Any, code: str) -> None:
    with pytest.raises(services.AccessRefused) as caught:
        call()
    assert caught.value.code == code


def assert_only_refusal(action: str, patient: Patient, code: str) -> None:
    assert AccessGrant.objects.count() == 0
    events = list(AuditEvent.objects.all())
    assert [(e.action, e.outcome) for e in events] == [(action, "refused")]
    assert events[0].patient == patient
    assert events[0].details["reason"] == code


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"motif": "", "conditions_accepted": True}, "motif_missing"),
        ({"motif": "   ", "conditions_accepted": True}, "motif_missing"),
        ({"motif": "x" * 501, "conditions_accepted": True}, "motif_too_long"),
        ({"motif": "Délivrance", "conditions_accepted": False}, "conditions_not_accepted"),
    ],
)
def test_care_grant_bad_input_refused_and_traced(
    pharmacist: Professional, patient: Patient, kwargs: dict[str, Any], code: str
) -> None:
    refused(lambda: services.access_grant_care(professional=pharmacist, patient=patient, **kwargs), code)
    assert_only_refusal("access.grant", patient, code)


@pytest.mark.parametrize(
    ("state", "code"),
    [(Patient.DossierState.CLOSED, "record_closed"), (Patient.DossierState.OPPOSED, "record_opposed")],
)
@pytest.mark.parametrize("service", ["care", "own", "emergency"])
def test_closed_or_opposed_record_refuses_every_mode(
    doctor: Professional, state: str, code: str, service: str
) -> None:
    patient = make_patient(dossier_state=state)
    call = {
        "care": lambda: services.access_grant_care(
            professional=doctor, patient=patient, motif="Suivi", conditions_accepted=True
        ),
        "own": lambda: services.access_grant_own_documents(
            professional=doctor, patient=patient, conditions_accepted=True
        ),
        "emergency": lambda: services.access_grant_emergency(
            professional=doctor,
            patient=patient,
            motif="Arrêt cardiaque, patient inconscient",
            conditions_accepted=True,
        ),
    }[service]
    refused(call, code)
    assert_only_refusal("access.emergency" if service == "emergency" else "access.grant", patient, code)


def test_blocked_professional_cannot_obtain_access_even_in_emergency(
    doctor: Professional, patient: Patient
) -> None:
    PatientBlock.objects.create(patient=patient, professional=doctor)
    refused(
        lambda: services.access_grant_emergency(
            professional=doctor,
            patient=patient,
            motif="Patient inconscient aux urgences",
            conditions_accepted=True,
        ),
        "blocked",
    )
    assert_only_refusal("access.emergency", patient, "blocked")


def test_lifted_block_no_longer_refuses(doctor: Professional, patient: Patient) -> None:
    PatientBlock.objects.create(patient=patient, professional=doctor, lifted_at=timezone.now())
    services.access_grant_care(professional=doctor, patient=patient, motif="Suivi", conditions_accepted=True)


def test_pharmacist_cannot_break_the_glass(pharmacist: Professional, patient: Patient) -> None:
    refused(
        lambda: services.access_grant_emergency(
            professional=pharmacist,
            patient=patient,
            motif="Patient inconscient aux urgences",
            conditions_accepted=True,
        ),
        "emergency_not_allowed",
    )
    assert_only_refusal("access.emergency", patient, "emergency_not_allowed")


def test_emergency_needs_detailed_motif(doctor: Professional, patient: Patient) -> None:
    refused(
        lambda: services.access_grant_emergency(
            professional=doctor, patient=patient, motif="urgence", conditions_accepted=True
        ),
        "motif_too_short",
    )
    assert_only_refusal("access.emergency", patient, "motif_too_short")


def test_inactive_professional_refused(patient: Patient) -> None:
    suspended = make_professional("doctor", state=Professional.State.SUSPENDED)
    refused(
        lambda: services.access_grant_care(
            professional=suspended, patient=patient, motif="Suivi", conditions_accepted=True
        ),
        "professional_inactive",
    )
    assert_only_refusal("access.grant", patient, "professional_inactive")


def test_revoke_ends_grant_keeps_row(doctor: Professional, patient: Patient, audit_events: Any) -> None:
    grant = make_grant(doctor, patient)
    operator = make_professional("doctor").user
    services.access_grant_revoke(grant=grant, actor=operator, reason="Erreur")
    assert AccessGrant.objects.get().revoked_at is not None
    assert selectors.current_grant(professional=doctor, patient=patient) is None
    assert audit_events() == [("access.revoke", "success")]


def test_record_open_writes_opening_and_event(
    doctor: Professional, patient: Patient, audit_events: Any
) -> None:
    grant = make_grant(doctor, patient, mode=AccessGrant.Mode.EMERGENCY, hours=2)
    services.record_open(professional=doctor, patient=patient, grant=grant, client_address="192.0.2.1")
    assert RecordOpening.objects.get().grant == grant
    assert audit_events() == [("record.open", "success")]
    event = AuditEvent.objects.get()
    assert event.details == {"mode": "emergency", "emergency": True}
    assert event.client_address == "192.0.2.1"


def test_block_create_is_idempotent_and_lift_keeps_row(
    doctor: Professional, patient: Patient, audit_events: Any
) -> None:
    operator = make_professional("doctor").user
    block = services.patient_block_create(
        patient=patient, professional=doctor, actor=operator, reason="Demande"
    )
    again = services.patient_block_create(
        patient=patient, professional=doctor, actor=operator, reason="Demande"
    )
    assert again.pk == block.pk
    services.patient_block_lift(block=block, actor=operator)
    assert PatientBlock.objects.get().lifted_at is not None
    assert audit_events() == [("patient.block", "success"), ("patient.unblock", "success")]
