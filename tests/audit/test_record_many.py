import datetime

import pytest

from esante.audit.catalogue import AuditAction
from esante.audit.keys import event_mac
from esante.audit.models import AuditEvent
from esante.audit.services import audit_record, audit_record_many, audit_via
from esante.audit.verification import verify_chain
from esante.patients.matricule import make_patient_matricule
from esante.patients.models import Patient
from tests.audit.settle import settle


def _patient(serial: int) -> Patient:
    birth = datetime.date(1980, 1, 1)
    return Patient.objects.create(
        matricule=make_patient_matricule(birth, serial),
        birth_name="Weber",
        first_names="Ana",
        birth_date=birth,
        sex="F",
        platform_identifier=f"17000{serial:05d}",
    )


@pytest.mark.django_db
def test_events_written_together_chain_like_single_ones() -> None:
    first = audit_record(action=AuditAction.PATIENT_CREATE, actor_label="test")
    ana, luc = _patient(1), _patient(2)
    with audit_via({"client": "import"}):
        written = audit_record_many(
            action=AuditAction.PATIENT_UPDATE,
            entries=[(ana.pk, {"line": 2}), (luc.pk, {"line": 3}), (None, {"line": 4})],
            actor_label="operator:test",
        )
    audit_record(action=AuditAction.PATIENT_CREATE, actor_label="test")
    settle([first])
    assert written == 3
    events = list(AuditEvent.objects.order_by("sequence"))
    assert [e.sequence for e in events] == [1, 2, 3, 4, 5]
    for before, event in zip(events, events[1:], strict=False):
        assert event.prev_hash == before.hash
    middle = events[1:4]
    assert [e.patient_id for e in middle] == [ana.pk, luc.pk, None]
    assert [e.details for e in middle] == [{"line": n, "via": {"client": "import"}} for n in (2, 3, 4)]
    assert all(e.action == "patient.update" and e.actor_label == "operator:test" for e in middle)
    assert all(e.mac == event_mac(e.hash) for e in middle)
    assert events[1].prev_hash == first.hash
    result = verify_chain()
    assert result.ok and result.checked == 5


@pytest.mark.django_db
def test_nothing_to_write_and_unknown_actions_refused() -> None:
    assert audit_record_many(action=AuditAction.PATIENT_UPDATE, entries=[]) == 0
    with pytest.raises(TypeError):
        audit_record_many(action="patient.update", entries=[(None, {})])  # type: ignore[arg-type]
    assert not AuditEvent.objects.exists()
