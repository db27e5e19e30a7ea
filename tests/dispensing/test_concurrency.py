"""No double dispensing under real concurrency (PostgreSQL): many pharmacists, one prescription."""

import threading
import time
from typing import Any

import pytest
from django.db import connection, connections, transaction

from esante.audit.models import AuditEvent
from esante.dispensing.models import Dispensation
from esante.dispensing.services import DispensationRefused, prescription_mark_dispensed
from esante.documents.models import Prescription
from tests.access.factories import make_patient

from .conftest import pharmacist_with_access, submit_prescription

ATTEMPTS = 8


@pytest.mark.parametrize("kind", ["full", "partial"])
def test_simultaneous_attempts_record_exactly_one_dispensation(committed_db: None, kind: str) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks under real concurrency: PostgreSQL only")
    patient = make_patient()
    prescription = submit_prescription(patient)
    line = prescription.lines.order_by("position").first()
    assert line is not None
    pharmacists = [pharmacist_with_access(patient) for _ in range(ATTEMPTS)]
    barrier = threading.Barrier(ATTEMPTS)
    outcomes: list[Any] = []
    lock = threading.Lock()

    def attempt(pharmacist: Any) -> None:
        try:
            barrier.wait(timeout=30)
            # Each partial delivery (1 of 3) would fit on its own: only one may pass on version 0.
            result: Any = prescription_mark_dispensed(
                prescription=Prescription.objects.select_related("document__patient").get(pk=prescription.pk),
                pharmacist=pharmacist,
                kind=kind,
                lines={line.pk: 1} if kind == "partial" else None,
                based_on_version=0,
                follow_up=False,
            )
        except DispensationRefused as refusal:
            result = refusal
        except Exception as error:  # reported by the assertions below
            result = error
        finally:
            connections.close_all()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=attempt, args=(p,)) for p in pharmacists]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    successes = [o for o in outcomes if isinstance(o, Dispensation)]
    refusals = [o for o in outcomes if isinstance(o, DispensationRefused)]
    assert len(outcomes) == ATTEMPTS, outcomes
    assert len(successes) == 1, outcomes
    assert len(refusals) == ATTEMPTS - 1, outcomes
    assert {r.code for r in refusals} <= {"stale_version", "already_dispensed"}
    assert Dispensation.objects.count() == 1
    fresh = Prescription.objects.get(pk=prescription.pk)
    assert fresh.state_version == 1
    assert fresh.dispensation_state == ("dispensed" if kind == "full" else "partial")
    events = AuditEvent.objects.filter(action="prescription.dispense")
    assert events.filter(outcome="success").count() == 1
    assert events.filter(outcome="refused").count() == ATTEMPTS - 1


def test_an_attempt_waiting_for_the_lock_reads_the_delivery_committed_meanwhile(committed_db: None) -> None:
    """The lock and the state under it go in one round trip on PostgreSQL: the state must still be
    read after the lock is granted. A holds the prescription's lock, having delivered 1 of the 3
    owed; B, on the version A commits (1), asks for 3 while A holds the lock: once A commits, B
    must see 2 owed, not 3, and be refused."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks under real concurrency: PostgreSQL only")
    patient = make_patient()
    prescription = submit_prescription(patient)
    first, second = prescription.lines.order_by("position")
    a, b = pharmacist_with_access(patient), pharmacist_with_access(patient)
    written, outcome = threading.Event(), {}

    def hold() -> None:
        try:
            with transaction.atomic():  # A's delivery, committed 0.5 s after its write
                prescription_mark_dispensed(
                    prescription=Prescription.objects.select_related("document__patient").get(pk=prescription.pk),
                    pharmacist=a, kind="partial", lines={first.pk: 1, second.pk: 0}, based_on_version=0,
                    follow_up=False,
                )  # fmt: skip
                written.set()
                time.sleep(0.5)
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold)
    holder.start()
    assert written.wait(timeout=30)
    waited = time.monotonic()
    try:
        prescription_mark_dispensed(
            prescription=Prescription.objects.select_related("document__patient").get(pk=prescription.pk),
            pharmacist=b, kind="partial", lines={first.pk: 3, second.pk: 0}, based_on_version=1,
            follow_up=False,
        )  # fmt: skip
    except DispensationRefused as refusal:
        outcome["code"], outcome["status"] = refusal.code, refusal.status
    waited = time.monotonic() - waited
    holder.join(timeout=30)
    assert waited >= 0.3  # B did wait for A's lock
    assert outcome == {"code": "over_delivery", "status": 400}
    assert Dispensation.objects.count() == 1
    fresh = Prescription.objects.get(pk=prescription.pk)
    assert (fresh.state_version, fresh.dispensation_state) == (1, "partial")
    events = AuditEvent.objects.filter(action="prescription.dispense").order_by("id")
    assert list(events.values_list("outcome", "actor_id")) == [("success", a.user.pk), ("refused", b.user.pk)]


@pytest.mark.django_db
def test_a_new_prescription_is_open_at_version_zero() -> None:
    # Also makes this module runnable alone: pytest-django sets up the test database only when a
    # collected test is marked ``django_db``, and ``committed_db`` relies on that set-up.
    prescription = submit_prescription(make_patient())
    assert (prescription.dispensation_state, prescription.state_version) == ("open", 0)
