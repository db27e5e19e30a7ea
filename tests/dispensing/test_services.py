"""The service itself: validity windows, the grid's rules, refusals that write only their event."""

import datetime
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone
from freezegun import freeze_time

from esante.accounts.models import Professional
from esante.dispensing import rules
from esante.dispensing.models import Dispensation
from esante.dispensing.selectors import first_active_dispensation_at, prescription_line_states_and_first
from esante.dispensing.services import DispensationRefused, prescription_mark_dispensed
from esante.dispensing.withdrawal import dispensation_withdraw
from esante.documents import cda
from esante.documents.models import Prescription
from esante.patients.models import Patient
from tests.access.factories import make_grant

from .conftest import events_after, last_sequence, pharmacist_with_access, snapshot, submit_prescription

LU = cda.LUXEMBOURG


def test_add_months_clamps_to_the_end_of_the_month() -> None:
    moment = datetime.datetime(2026, 11, 30, 22, 14, tzinfo=LU)
    assert rules.add_months(moment, 3) == datetime.datetime(2027, 2, 28, 22, 14, tzinfo=LU)
    assert rules.add_months(moment, 6) == datetime.datetime(2027, 5, 30, 22, 14, tzinfo=LU)
    assert rules.prescription_valid_until(moment) == datetime.datetime(2027, 2, 28, 22, 14, tzinfo=LU)


def _lines(prescription: Prescription, quantities: list[int]) -> dict[int, int]:
    return {
        line.pk: quantity
        for line, quantity in zip(prescription.lines.order_by("position"), quantities, strict=True)
    }


@pytest.mark.django_db
def test_successive_deliveries_must_fall_within_six_months_of_the_first(peppa: Patient) -> None:
    now = timezone.now()
    first_at = now - datetime.timedelta(days=190)
    prescription = submit_prescription(peppa, at=first_at - datetime.timedelta(days=20))
    with freeze_time(first_at):
        pharmacist = pharmacist_with_access(peppa)
        prescription_mark_dispensed(
            prescription=prescription,
            pharmacist=pharmacist,
            kind="partial",
            lines=_lines(prescription, [1, 0]),
            based_on_version=0,
            follow_up=False,
        )
    make_grant(pharmacist, peppa)
    prescription.refresh_from_db()
    before, start = snapshot(prescription), last_sequence()
    with pytest.raises(DispensationRefused) as refused:
        prescription_mark_dispensed(
            prescription=prescription, pharmacist=pharmacist, kind="full", based_on_version=1
        )
    assert refused.value.code == "series_expired" and refused.value.status == 409
    assert "dans les 6 mois suivant la première délivrance" in refused.value.message
    assert snapshot(prescription) == before
    assert events_after(start) == [("prescription.dispense", "refused")]


@pytest.mark.django_db
def test_a_delivery_within_six_months_of_the_first_passes_even_after_three_months(peppa: Patient) -> None:
    now = timezone.now()
    prescription = submit_prescription(peppa, at=now - datetime.timedelta(days=150))
    with freeze_time(now - datetime.timedelta(days=140)):
        pharmacist = pharmacist_with_access(peppa)
        prescription_mark_dispensed(
            prescription=prescription,
            pharmacist=pharmacist,
            kind="partial",
            lines=_lines(prescription, [1, 0]),
            based_on_version=0,
            follow_up=False,
        )
    make_grant(pharmacist, peppa)
    prescription_mark_dispensed(
        prescription=prescription, pharmacist=pharmacist, kind="full", based_on_version=1, follow_up=False
    )
    prescription.refresh_from_db()
    assert prescription.dispensation_state == "dispensed"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "lines", "code"),
    [
        ("partial", {}, "nothing_delivered"),
        ("partial", {999_999: 1}, "bad_line"),
        ("partial", "negative", "bad_quantity"),
        ("somewhat", {}, "bad_kind"),
    ],
)
def test_bad_grids_are_refused(
    prescription: Prescription, pharmacist: Professional, kind: str, lines: object, code: str
) -> None:
    grid = _lines(prescription, [-1, 0]) if lines == "negative" else lines
    before, start = snapshot(prescription), last_sequence()
    with pytest.raises(DispensationRefused) as refused:
        prescription_mark_dispensed(
            prescription=prescription,
            pharmacist=pharmacist,
            kind=kind,
            lines=grid,  # type: ignore[arg-type]
            based_on_version=0,
        )
    assert refused.value.code == code and refused.value.status == 400
    assert snapshot(prescription) == before
    assert events_after(start) == [("prescription.dispense", "refused")]


@pytest.mark.django_db
@override_settings(ESANTE_DISPENSATION_WITHDRAW_HOURS=2)
def test_withdrawal_window_is_configurable(prescription: Prescription, pharmacist: Professional) -> None:
    dispensation = prescription_mark_dispensed(
        prescription=prescription, pharmacist=pharmacist, kind="full", based_on_version=0, follow_up=False
    )
    Dispensation.objects.filter(pk=dispensation.pk).update(
        dispensed_at=timezone.now() - datetime.timedelta(hours=3)
    )
    dispensation.refresh_from_db()
    with pytest.raises(DispensationRefused) as refused:
        dispensation_withdraw(dispensation=dispensation, pharmacist=pharmacist, reason="Erreur")
    assert refused.value.code == "window_closed"
    assert "(2 heures après la dispensation)" in refused.value.message


@pytest.mark.django_db
def test_withdrawn_twice_is_refused(prescription: Prescription, pharmacist: Professional) -> None:
    dispensation = prescription_mark_dispensed(
        prescription=prescription, pharmacist=pharmacist, kind="full", based_on_version=0, follow_up=False
    )
    dispensation_withdraw(dispensation=dispensation, pharmacist=pharmacist, reason="Erreur")
    start = last_sequence()
    with pytest.raises(DispensationRefused) as refused:
        dispensation_withdraw(dispensation=dispensation, pharmacist=pharmacist, reason="Encore")
    assert refused.value.code == "already_withdrawn"
    assert events_after(start) == [("dispensation.withdraw", "refused")]
    # The prescription reopened: it can be dispensed again, based on the new version.
    prescription.refresh_from_db()
    assert (prescription.dispensation_state, prescription.state_version) == ("open", 2)
    prescription_mark_dispensed(
        prescription=prescription, pharmacist=pharmacist, kind="full", based_on_version=2, follow_up=False
    )


@pytest.mark.django_db
def test_demo_prescriptions_of_peppa_are_dispensable() -> None:
    from esante.documents.demo import demo_documents_load

    peppa = Patient.objects.create(
        matricule="1904112000166",
        birth_name="PIG",
        first_names="Peppa",
        birth_date=datetime.date(1904, 11, 20),
        sex="F",
        taux=100,
        dossier_number="1664927202",
        platform_identifier="1700000151",
    )
    assert demo_documents_load(patients=0) == 3
    pharmacist = pharmacist_with_access(peppa)
    for prescription in Prescription.objects.filter(document__patient=peppa):
        prescription_mark_dispensed(
            prescription=prescription, pharmacist=pharmacist, kind="full", based_on_version=0, follow_up=False
        )
    assert set(Prescription.objects.values_list("dispensation_state", flat=True)) == {"dispensed"}


@pytest.mark.django_db
def test_line_states_and_the_first_standing_delivery_come_in_one_query(
    peppa: Patient, prescription: Prescription, pharmacist: Professional, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(1):
        states, first_at = prescription_line_states_and_first(prescription)
    assert [(s.prescribed, s.delivered) for s in states] == [(3, 0), (2, 0)] and first_at is None
    first = prescription_mark_dispensed(
        prescription=prescription,
        pharmacist=pharmacist,
        kind="partial",
        lines=_lines(prescription, [1, 0]),
        based_on_version=0,
        follow_up=False,
    )
    with freeze_time(timezone.now() + datetime.timedelta(hours=1)):
        second = prescription_mark_dispensed(
            prescription=prescription,
            pharmacist=pharmacist,
            kind="partial",
            lines=_lines(prescription, [0, 1]),
            based_on_version=1,
            follow_up=False,
        )
    with django_assert_num_queries(1):
        states, first_at = prescription_line_states_and_first(prescription)
    assert [(s.delivered, s.remaining) for s in states] == [(1, 2), (1, 1)] and first_at == first.dispensed_at
    dispensation_withdraw(dispensation=first, pharmacist=pharmacist, reason="Erreur")
    states, first_at = prescription_line_states_and_first(prescription)
    assert [(s.delivered, s.remaining) for s in states] == [(0, 3), (1, 1)]
    assert first_at == second.dispensed_at == first_active_dispensation_at(prescription)


@pytest.mark.django_db
def test_the_access_the_gate_checked_is_reused_and_must_be_this_pharmacists_current_one(
    peppa: Patient, prescription: Prescription, pharmacist: Professional
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from esante.access.models import AccessGrant

    grant = AccessGrant.objects.get(professional=pharmacist)
    other = pharmacist_with_access(peppa)
    others_grant = AccessGrant.objects.get(professional=other)
    own_documents = make_grant(pharmacist, peppa, mode=AccessGrant.Mode.OWN_DOCUMENTS)
    revoked = make_grant(pharmacist, peppa, revoked_at=timezone.now())
    for wrong in (others_grant, own_documents, revoked):
        before, start = snapshot(prescription), last_sequence()
        with pytest.raises(DispensationRefused) as refused:
            prescription_mark_dispensed(
                prescription=prescription,
                pharmacist=pharmacist,
                kind="full",
                based_on_version=0,
                follow_up=False,
                checked_access=(peppa, wrong),
            )
        assert (refused.value.code, refused.value.status) == ("no_access", 404), wrong.mode
        assert snapshot(prescription) == before
        assert events_after(start) == [("prescription.dispense", "refused")]
    with CaptureQueriesContext(connection) as reused:
        prescription_mark_dispensed(
            prescription=prescription,
            pharmacist=pharmacist,
            kind="partial",
            lines=_lines(prescription, [1, 0]),
            based_on_version=0,
            follow_up=False,
            checked_access=(peppa, grant),
        )
    with CaptureQueriesContext(connection) as asked:
        prescription_mark_dispensed(
            prescription=prescription,
            pharmacist=pharmacist,
            kind="partial",
            lines=_lines(prescription, [1, 0]),
            based_on_version=1,
            follow_up=False,
        )
    assert len(reused) < len(asked)
    assert Dispensation.objects.filter(prescription=prescription).count() == 2


@pytest.mark.django_db
def test_the_state_read_under_lock_says_whether_a_copy_is_current_and_a_later_delivery_supersedes_it(
    peppa: Patient, prescription: Prescription, pharmacist: Professional, django_assert_num_queries: Any
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from esante.dispensing.certification import dispensation_follow_up
    from esante.dispensing.models import CertifiedCopy
    from esante.dispensing.selectors import prescription_dispensing_state

    with django_assert_num_queries(1):
        state = prescription_dispensing_state(prescription)
    assert (state.first_at, state.current_copy) == (None, False)
    # No copy is current: the dispensation does not ask to supersede one.
    with CaptureQueriesContext(connection) as first_queries:
        first = prescription_mark_dispensed(
            prescription=prescription,
            pharmacist=pharmacist,
            kind="partial",
            lines=_lines(prescription, [1, 0]),
            based_on_version=0,
            follow_up=False,
        )
    # (the lock's round trip on PostgreSQL reads the copies too, under "FOR UPDATE": not a write)
    assert not [q for q in first_queries if q["sql"].lstrip().startswith('UPDATE "dispensing_certifiedcopy"')]
    issued = dispensation_follow_up(dispensation=first, public_url="https://edocuments.example.lu")
    assert issued is not None
    with django_assert_num_queries(1):
        state = prescription_dispensing_state(prescription)
    assert (state.first_at, state.current_copy) == (first.dispensed_at, True)
    # A copy is current: the next delivery supersedes it in its own transaction.
    second = prescription_mark_dispensed(
        prescription=prescription,
        pharmacist=pharmacist,
        kind="partial",
        lines=_lines(prescription, [0, 1]),
        based_on_version=1,
        follow_up=False,
    )
    copy = CertifiedCopy.objects.get(pk=issued.copy.pk)
    assert (copy.superseded_at, copy.superseded_because) == (second.dispensed_at, "delivery")
    assert prescription_dispensing_state(prescription).current_copy is False


@pytest.mark.django_db
def test_the_database_refuses_a_second_dispensation_on_one_version_even_past_the_state_check(
    peppa: Patient, prescription: Prescription, pharmacist: Professional
) -> None:
    # A row recorded on version 0 that did not move the version on (a bug above the database):
    # the unique (prescription, based_on_version) still refuses the attempt, which writes nothing.
    Dispensation.objects.create(
        prescription=prescription,
        pharmacist=pharmacist,
        pharmacist_name="Claudine Kremer",
        pharmacy="Pharmacie",
        dispensed_at=timezone.now(),
        kind="partial",
        based_on_version=0,
    )
    before, start = snapshot(prescription), last_sequence()
    with pytest.raises(DispensationRefused) as refused:
        prescription_mark_dispensed(
            prescription=Prescription.objects.select_related("document__patient").get(pk=prescription.pk),
            pharmacist=pharmacist,
            kind="partial",
            lines=_lines(prescription, [1, 0]),
            based_on_version=0,
            follow_up=False,
        )
    assert (refused.value.code, refused.value.status) == ("stale_version", 409)
    assert snapshot(prescription) == before
    assert events_after(start) == [("prescription.dispense", "refused")]
