"""The database router against a real hot standby (``conftest.standby``): PostgreSQL only.

Where a read went is proved by what it returns: with the standby's replay paused, a row committed
on the primary since is missing from a read served by the standby and present in one served by the
primary. The metrics (``/metrics``) and the log say the same.
"""

import html
import json
import logging
import time
from typing import Any

import pytest
from django.db import DatabaseError, connections, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from esante.access.models import AccessGrant
from esante.accounts.models import Professional
from esante.audit.models import AuditEvent
from esante.core.replica import PIN_SESSION_KEY, REPLICA, ReplicaRouter, lag_tolerant, monitor
from esante.documents.models import Document
from esante.documents.services import document_submit
from esante.patients.models import Patient
from tests.access.factories import make_grant, make_patient, make_professional
from tests.espace.conftest import active_account, logged_in_patient

from .conftest import on_postgresql
from .standby import Standby

pytestmark = pytest.mark.skipif(
    not on_postgresql(), reason="streaming replication needs PostgreSQL: DATABASE_URL names SQLite"
)

NAME = "Zyxwaldor"


def metric(name: str, **labels: str) -> float:
    """A sample of ``/metrics`` (what Prometheus scrapes), 0 when absent."""
    body = Client().get(reverse("core:metrics")).content.decode()
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def reads(read: str, database: str) -> float:
    return metric("esante_replica_reads_total", read=read, database=database)


def fallbacks(read: str, reason: str) -> float:
    return metric("esante_replica_fallback_total", read=read, reason=reason)


def professional_client(professional: Professional) -> Client:
    client = Client()
    client.force_login(professional.user)
    return client


def search(client: Client, name: str = NAME) -> str:
    # The factories' patients are all born on 20/11/1904.
    response = client.post(reverse("access:search"), {"name": name, "birth_date": "1904-11-20"})
    assert response.status_code == 200
    return html.unescape(response.content.decode())


def submit(patient: Patient, title: str) -> Document:
    return document_submit(
        content=f"{title}.".encode(),
        patient_matricule=patient.matricule,
        type_code="11502-2",
        title=title,
        clinical_at=timezone.now(),
        author_name="Dr Weber",
        source_system="CHL",
    )


def record_page(client: Client, patient: Patient, **query: str) -> str:
    response = client.get(reverse("documents:record", args=[patient.public_id]), query)
    assert response.status_code == 200
    return html.unescape(response.content.decode())


# --- the standby is real ---------------------------------------------------------------------------


def test_the_replica_alias_is_a_read_only_hot_standby_of_the_test_database(replica: Standby) -> None:
    with connections[REPLICA].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery(), current_setting('port'), current_database()")
        in_recovery, port, database = cursor.fetchone()
    assert (in_recovery, int(port)) == (True, replica.port)
    assert database == connections["default"].settings_dict["NAME"]
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery()")
        assert cursor.fetchone()[0] is False
    patient = make_patient(NAME, "Quentinella")
    replica.wait_caught_up()
    assert Patient.objects.using(REPLICA).get(pk=patient.pk).matricule == patient.matricule
    with pytest.raises(DatabaseError):
        Patient.objects.using(REPLICA).filter(pk=patient.pk).update(first_names="Autre")
    connections[REPLICA].close()
    # Every write, and every read outside a lag-tolerant one, names the primary.
    router = ReplicaRouter()
    assert router.db_for_write(Patient) == "default" and router.db_for_read(Patient) == "default"
    assert router.allow_migrate(REPLICA, "patients") is False


# --- routed reads ---------------------------------------------------------------------------------


def test_the_patient_search_reads_the_standby_and_is_counted_and_traced_on_the_primary(
    replica: Standby,
) -> None:
    pharmacist = make_professional("pharmacist")
    make_patient(NAME, "Quentinella")
    replica.wait_caught_up()
    replica.pause_replay()
    make_patient(NAME, "Rosalinde")  # committed on the primary, not replayed on the standby
    client = professional_client(pharmacist)
    before = reads("patient_search", "replica")

    body = search(client)
    assert "Quentinella" in body and "Rosalinde" not in body
    assert reads("patient_search", "replica") == before + 1
    # The trace (which is also the search's count for the rate limit) is the primary's, as ever.
    event = AuditEvent.objects.get(action="patient.search", actor=pharmacist.user)
    assert (event.outcome, event.details["results"]) == ("success", 1)
    assert PIN_SESSION_KEY not in client.session  # a search writes only traces: no pin

    replica.resume_replay()
    replica.wait_caught_up()
    body = search(client)
    assert "Quentinella" in body and "Rosalinde" in body
    assert reads("patient_search", "replica") == before + 2


def test_the_record_lists_and_the_patient_journal_read_the_standby(replica: Standby) -> None:
    doctor = make_professional("doctor")
    patient = make_patient(NAME, "Quentinella")
    account = active_account(patient)
    make_grant(doctor, patient, hours=48)
    submit(patient, "Bilan ancien")
    replica.wait_caught_up()
    replica.pause_replay()
    submit(patient, "Bilan nouveau")  # on the primary only
    doctor_client = professional_client(doctor)
    before = reads("record_documents", "replica")

    body = record_page(doctor_client, patient, vue="documentaire")

    # The access was decided on the primary (the record opened); the list came from the standby.
    assert "Bilan ancien" in body and "Bilan nouveau" not in body
    assert reads("record_documents", "replica") == before + 1
    opening = AuditEvent.objects.get(action="record.open", patient=patient)

    patient_client = logged_in_patient(account)
    before = reads("patient_journal", "replica")
    response = patient_client.get(reverse("espace:journal"))
    assert response.status_code == 200
    shown = [line.sequence for line in response.context["page"].lines]
    assert shown and opening.sequence not in shown  # the standby has not replayed it yet
    assert reads("patient_journal", "replica") == before + 1

    replica.resume_replay()
    replica.wait_caught_up()
    assert "Bilan nouveau" in record_page(doctor_client, patient, vue="documentaire")
    response = patient_client.get(reverse("espace:journal"))
    assert opening.sequence in [line.sequence for line in response.context["page"].lines]


# --- read-your-writes -------------------------------------------------------------------------------


def test_a_grant_just_declared_is_read_back_from_the_primary_on_the_next_pages(replica: Standby) -> None:
    doctor = make_professional("doctor")
    patient = make_patient(NAME, "Quentinella")
    submit(patient, "Ordonnance de la veille")
    replica.wait_caught_up()
    replica.pause_replay()
    submit(patient, "Ordonnance du jour")  # on the primary only
    client = professional_client(doctor)
    assert "Accès jusqu'au" not in search(client)  # found (from the standby), no access yet

    response = client.post(
        reverse("access:dialog", args=[patient.public_id]),
        {"mode": "care", "motif_choice": "consultation", "accept_conditions": "on"},
    )
    assert response.status_code == 302
    grant = AccessGrant.objects.get(professional=doctor, patient=patient)
    assert not AccessGrant.objects.using(REPLICA).filter(pk=grant.pk).exists()  # not replayed
    connections[REPLICA].close()
    mark = client.session[PIN_SESSION_KEY]
    assert set(mark) == {"lsn", "at"}
    before = {
        "record": reads("record_documents", "primary"),
        "search": reads("patient_search", "primary"),
        "replica": reads("record_documents", "replica") + reads("patient_search", "replica"),
    }

    # The next page opens the record under the new grant and lists what the primary holds.
    body = record_page(client, patient, vue="documentaire")
    assert "Ordonnance du jour" in body and "Ordonnance de la veille" in body
    # ... and the search shows the access just declared: the session reads the primary.
    assert "Accès jusqu'au" in search(client)
    assert reads("record_documents", "primary") == before["record"] + 1
    assert reads("patient_search", "primary") == before["search"] + 1
    assert reads("record_documents", "replica") + reads("patient_search", "replica") == before["replica"]
    # A session that wrote nothing (the same professional elsewhere) still reads the standby.
    assert "Accès jusqu'au" not in search(professional_client(doctor))

    # Once the standby has replayed the grant, the session reads it again and drops its mark.
    replica.resume_replay()
    replica.wait_caught_up()
    replica_searches = reads("patient_search", "replica")
    assert "Accès jusqu'au" in search(client)
    assert reads("patient_search", "replica") == replica_searches + 1
    assert PIN_SESSION_KEY not in client.session


def test_a_pin_lasts_at_most_the_pin_period(replica: Standby, settings: Any) -> None:
    pharmacist = make_professional("pharmacist")
    patient = make_patient(NAME, "Quentinella")
    client = professional_client(pharmacist)
    search(client)
    replica.wait_caught_up()
    replica.pause_replay()
    client.post(
        reverse("access:dialog", args=[patient.public_id]),
        {"mode": "care", "motif_choice": "dispensation", "accept_conditions": "on"},
    )
    assert PIN_SESSION_KEY in client.session
    settings.ESANTE_REPLICA_PIN_SECONDS = 0.5
    time.sleep(0.6)
    before = reads("patient_search", "replica")
    # Past the pin period the mark is dropped; a standby this far behind would be out on its lag.
    assert "Accès jusqu'au" not in search(client)
    assert reads("patient_search", "replica") == before + 1
    assert PIN_SESSION_KEY not in client.session


def test_reads_inside_a_transaction_stay_on_the_primary(replica: Standby) -> None:
    patient = make_patient(NAME, "Quentinella")
    replica.wait_caught_up()

    def read() -> list[str]:
        return [p._state.db for p in Patient.objects.filter(pk=patient.pk)]

    assert lag_tolerant("patient_search", read) == [REPLICA]
    with CaptureQueriesContext(connections[REPLICA]) as on_standby:
        with transaction.atomic():
            Patient.objects.filter(pk=patient.pk).update(usage_name="Écrit")
            assert lag_tolerant("patient_search", read) == ["default"]
    assert on_standby.captured_queries == []

    def read_then_write() -> tuple[str, str]:
        first = Patient.objects.get(pk=patient.pk)._state.db or ""
        with transaction.atomic():
            inside = Patient.objects.select_for_update().get(pk=patient.pk)._state.db or ""
        return first, inside

    # A transaction opened inside a lag-tolerant read reads the primary.
    assert lag_tolerant("patient_journal", read_then_write) == (REPLICA, "default")


def test_a_read_not_named_in_the_settings_stays_on_the_primary(replica: Standby, settings: Any) -> None:
    patient = make_patient(NAME, "Quentinella")
    replica.wait_caught_up()
    settings.ESANTE_REPLICA_READS = ["patient_journal"]

    def read() -> list[str]:
        return [p._state.db or "" for p in Patient.objects.filter(pk=patient.pk)]

    assert lag_tolerant("patient_search", read) == ["default"]
    assert lag_tolerant("patient_journal", read) == [REPLICA]


# --- fallbacks ---------------------------------------------------------------------------------------


def test_a_stopped_standby_changes_nothing_for_the_user(
    replica: Standby, caplog: pytest.LogCaptureFixture
) -> None:
    doctor = make_professional("doctor")
    patient = make_patient(NAME, "Quentinella")
    account = active_account(patient)
    make_grant(doctor, patient, hours=48)
    submit(patient, "Bilan sanguin")
    replica.wait_caught_up()
    doctor_client, patient_client = professional_client(doctor), logged_in_patient(account)

    def pages() -> list[str]:
        journal = patient_client.get(reverse("espace:journal"))
        assert journal.status_code == 200
        return [
            search(doctor_client),
            record_page(doctor_client, patient, vue="documentaire"),
            " ".join(line.what for line in journal.context["page"].lines),
        ]

    names = ("patient_search", "record_documents", "patient_journal")
    served = {name: reads(name, "replica") for name in names}
    with_standby = pages()
    assert {name: reads(name, "replica") for name in names} == {n: v + 1 for n, v in served.items()}
    assert "QUENTINELLA" in with_standby[0].upper() and "Bilan sanguin" in with_standby[1]

    down = {name: fallbacks(name, "down") for name in names}
    caplog.clear()
    replica.stop()
    with caplog.at_level(logging.INFO, logger="esante.replica"):
        without = pages()
    assert metric("esante_replica_up") == 0

    assert "QUENTINELLA" in without[0].upper() and "Bilan sanguin" in without[1]
    assert without[2].endswith(with_standby[2])  # newest first: the same lines, and the newer ones
    assert {name: fallbacks(name, "down") for name in names} == {n: v + 1 for n, v in down.items()}
    assert any("does not answer; reads fall back to the primary" in r.getMessage() for r in caplog.records)
    ready = Client().get(reverse("core:readyz"))
    assert ready.status_code == 200
    assert json.loads(ready.content)["replica"]["state"] == "down"
    assert json.loads(ready.content)["replica"]["reads"] == "primary"

    replica.start()
    replica.wait_caught_up()
    with caplog.at_level(logging.INFO, logger="esante.replica"):
        served = {name: reads(name, "replica") for name in names}
        pages()
    assert {name: reads(name, "replica") for name in names} == {n: v + 1 for n, v in served.items()}
    assert any("lag-tolerant reads go to it" in r.getMessage() for r in caplog.records)
    assert json.loads(Client().get(reverse("core:readyz")).content)["replica"]["state"] == "in use"


def test_a_read_failing_on_the_standby_runs_again_on_the_primary(
    replica: Standby, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    pharmacist = make_professional("pharmacist")
    make_patient(NAME, "Quentinella")
    replica.wait_caught_up()
    client = professional_client(pharmacist)
    assert "Quentinella" in search(client)  # the standby, checked and usable
    # The last check stays valid: the next read goes to the standby, which has stopped meanwhile.
    settings.ESANTE_REPLICA_CHECK_SECONDS = 3600.0
    settings.ESANTE_REPLICA_RETRY_SECONDS = 3600.0
    errors = fallbacks("patient_search", "error")  # (a scrape checks the standby: before it stops)
    replica.stop()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="esante.replica"):
        assert "Quentinella" in search(client)
    assert any("failed on the standby" in r.getMessage() for r in caplog.records)
    status = monitor.cached()
    assert status is not None and (status.usable, status.reason) == (False, "error")
    # Until the retry period has passed, reads go straight to the primary.
    assert "Quentinella" in search(client)
    assert fallbacks("patient_search", "error") == errors + 2


def test_a_standby_lagging_beyond_the_setting_is_not_read(
    replica: Standby, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.ESANTE_REPLICA_MAX_LAG_SECONDS = 1.0
    pharmacist = make_professional("pharmacist")
    make_patient(NAME, "Quentinella")
    client = professional_client(pharmacist)
    replica.wait_caught_up()
    assert "Quentinella" in search(client)
    lagging = fallbacks("patient_search", "lag")  # (a scrape checks the standby: before it lags)
    replica.pause_replay()
    make_patient(NAME, "Rosalinde")  # on the primary only
    time.sleep(1.5)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="esante.replica"):
        body = search(client)

    assert "Quentinella" in body and "Rosalinde" in body  # the primary's answer
    assert fallbacks("patient_search", "lag") == lagging + 1
    assert any("lags beyond 1 s" in r.getMessage() for r in caplog.records)
    assert metric("esante_replica_lag_seconds") > 1.0
    assert metric("esante_replica_up") == 1 and metric("esante_replica_usable") == 0
    assert json.loads(Client().get(reverse("core:readyz")).content)["replica"]["state"] == "lag"

    replica.resume_replay()
    replica.wait_caught_up()
    served = reads("patient_search", "replica")
    assert "Rosalinde" in search(client)
    assert reads("patient_search", "replica") == served + 1
    assert metric("esante_replica_usable") == 1
