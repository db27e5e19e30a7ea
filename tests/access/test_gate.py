"""The access gate: decides through the policy, traces what it refuses, says "not found" alike."""

import uuid
from pathlib import Path

import pytest

import esante
from esante.access import policy
from esante.access.gate import Channel, RecordGate, RecordNotFound
from esante.access.models import AccessGrant, RecordOpening
from esante.accounts.models import Profession
from esante.audit.models import AuditEvent
from esante.patients.models import Patient

from .factories import make_grant, make_patient, make_professional

SRC = Path(esante.__file__).parent


@pytest.mark.django_db
def test_missing_and_forbidden_records_raise_the_same_error_and_are_both_traced() -> None:
    pharmacist = make_professional("pharmacist")
    patient = make_patient()
    gate = RecordGate(actor=pharmacist, channel=Channel.PORTAL, client_address="192.0.2.7")
    errors = []
    for public_id in (uuid.uuid4(), patient.public_id, "not-a-uuid"):
        with pytest.raises(RecordNotFound) as caught:
            gate.open_record(public_id)
        errors.append(str(caught.value))
    assert len(set(errors)) == 1
    events = list(AuditEvent.objects.order_by("sequence"))
    assert [(e.action, e.outcome, e.client_address) for e in events] == [
        ("record.open", "refused", "192.0.2.7")
    ] * 3
    assert [e.details for e in events] == [
        {"reason": reason, "channel": "portal"} for reason in ("unknown", "no_grant", "unknown")
    ]
    assert events[1].patient == patient
    assert not RecordOpening.objects.exists()


@pytest.mark.django_db
def test_opening_is_traced_and_a_reread_is_no_new_opening() -> None:
    doctor = make_professional("doctor")
    patient = make_patient()
    grant = make_grant(doctor, patient)
    gate = RecordGate(actor=doctor, client_address="192.0.2.8")
    first = gate.open_record(patient.public_id)
    assert (first.patient, first.grant, first.previous_visit) == (patient, grant, None)
    second = gate.open_record(patient.public_id)
    reread = gate.open_record(patient.public_id, reread=True)
    assert second.previous_visit is not None and reread.previous_visit == second.previous_visit
    assert RecordOpening.objects.count() == 2
    assert list(AuditEvent.objects.values_list("action", "outcome")) == [("record.open", "success")] * 2


@pytest.mark.django_db
def test_an_empty_policy_grants_nothing() -> None:
    """No grant, no data: every profession is refused every record."""
    patient = make_patient()
    for profession in Profession.values:
        gate = RecordGate(actor=make_professional(profession))
        with pytest.raises(RecordNotFound):
            gate.record(patient.public_id)
        assert not gate.may_dispense(None)


@pytest.mark.parametrize("profession", Profession.values)
@pytest.mark.parametrize("mode", AccessGrant.Mode.values)
def test_the_dispense_rule(profession: str, mode: str) -> None:
    expected = profession == Profession.PHARMACIST and mode != AccessGrant.Mode.OWN_DOCUMENTS
    assert policy.may_dispense_under(profession=profession, mode=mode) is expected


@pytest.mark.parametrize(
    ("state", "dossier", "blocked", "reason"),
    [
        ("active", Patient.DossierState.ACTIVE, False, None),
        ("suspended", Patient.DossierState.ACTIVE, False, "professional_inactive"),
        ("registered", Patient.DossierState.ACTIVE, False, "professional_inactive"),
        ("active", Patient.DossierState.CLOSED, False, "record_closed"),
        ("active", Patient.DossierState.OPPOSED, False, "record_opposed"),
        ("active", Patient.DossierState.ACTIVE, True, "blocked"),
    ],
)
def test_record_refusal_reasons(state: str, dossier: str, blocked: bool, reason: str | None) -> None:
    assert (
        policy.record_refusal_reason(professional_state=state, dossier_state=dossier, blocked=blocked)
        == reason
    )
    read = policy.record_read_refusal_reason(
        professional_state=state, dossier_state=dossier, blocked=blocked, has_current_grant=False
    )
    assert read == (reason or "no_grant")


def test_the_dispense_rule_and_the_record_refusals_are_written_in_the_policy_only() -> None:
    """``grep`` finds them in ``access/policy.py`` and nowhere else."""
    patterns = ("Mode.CARE, AccessGrant.Mode.EMERGENCY", "DossierState.CLOSED:", "DossierState.OPPOSED:")
    found = {
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if "migrations" not in path.parts and any(p in path.read_text(encoding="utf-8") for p in patterns)
    }
    assert found == {"access/policy.py"}
