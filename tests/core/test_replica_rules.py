"""The router's rules that need no standby (every database): what counts as a write, WAL positions,
the settings' refusals, and the routing off (the suite's own state: nothing reaches ``replica``)."""

from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from esante.core.replica import (
    format_lsn,
    lag_tolerant,
    parse_lsn,
    statement_writes,
    trace_tables,
)
from esante.patients.models import Patient
from tests.access.factories import make_patient, make_professional
from tests.core.test_core import esante_start


@pytest.mark.parametrize(
    ("sql", "writes"),
    [
        ('INSERT INTO "access_accessgrant" ("patient_id") VALUES (%s)', True),
        ('UPDATE "dispensing_dispensation" SET "state" = %s', True),
        ('DELETE FROM "espace_representation" WHERE id = %s', True),
        ('INSERT INTO "audit_auditevent" ("action") VALUES (%s)', False),
        ('UPDATE "audit_auditchainhead" SET "sequence" = 2', False),
        ('INSERT INTO "access_recordopening" ("patient_id") VALUES (%s)', False),
        ('UPDATE "django_session" SET "session_data" = %s', False),
        ('SELECT "accounts_professional"."id" FROM "accounts_professional" FOR UPDATE', False),
        ('SAVEPOINT "s1"', False),
        ('RELEASE SAVEPOINT "s1"', False),
        ("  select pg_current_wal_lsn()", False),
        # Deny by default: a statement not known to be a read is a write.
        ("WITH moved AS (DELETE FROM x RETURNING *) INSERT INTO y SELECT * FROM moved", True),
        ("COPY documents_document FROM STDIN", True),
        ("LOCK TABLE access_accessgrant", True),
    ],
)
def test_what_counts_as_a_write(sql: str, writes: bool) -> None:
    assert statement_writes(sql) is writes


def test_the_access_app_registers_its_trace_tables() -> None:
    assert "access_recordopening" in trace_tables()
    assert "access_accessgrant" not in trace_tables()


def test_wal_positions_compare_as_numbers() -> None:
    assert parse_lsn("0/16B3748") == 0x16B3748
    assert parse_lsn("1/0") > parse_lsn("0/FFFFFFFF")
    assert format_lsn(parse_lsn("16/B374D848")) == "16/B374D848"


@pytest.mark.django_db
def test_without_a_standby_every_read_is_the_primarys_and_nothing_is_marked(client: Client) -> None:
    patient = make_patient("Zyxwaldor", "Quentinella")
    # (A query on the ``replica`` alias would fail here: the test allows the default alias only.)
    assert lag_tolerant("patient_search", lambda: [p._state.db for p in Patient.objects.all()]) == ["default"]
    client.force_login(make_professional("doctor").user)
    response = client.post(reverse("access:search"), {"name": "zyxwaldor", "first_name": "q"})
    assert response.status_code == 200 and patient.first_names in response.content.decode()
    assert "_replica_pin" not in client.session
    ready = Client().get(reverse("core:readyz"))
    assert "replica" not in ready.json()


def test_a_pin_shorter_than_the_tolerated_lag_is_refused(tmp_path: Path) -> None:
    result = esante_start(
        tmp_path,
        "check",
        ESANTE_DEBUG="1",
        ESANTE_REPLICA_MAX_LAG_SECONDS="10",
        ESANTE_REPLICA_PIN_SECONDS="5",
    )
    assert result.returncode == 2
    assert (
        "ESANTE_REPLICA_PIN_SECONDS must be at least ESANTE_REPLICA_MAX_LAG_SECONDS (5 < 10)" in result.stderr
    )


def test_unknown_reads_and_a_replica_without_a_postgresql_primary_are_refused(tmp_path: Path) -> None:
    result = esante_start(
        tmp_path, "check", ESANTE_DEBUG="1", ESANTE_REPLICA_READS="patient_search,documents"
    )
    assert result.returncode == 2 and "ESANTE_REPLICA_READS names unknown reads: documents" in result.stderr
    env: dict[str, Any] = {
        "ESANTE_DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "ESANTE_REPLICA_DATABASE_URL": "postgres://esante@standby:5432/esante",
    }
    result = esante_start(tmp_path, "check", **env)
    assert result.returncode == 2 and "needs a PostgreSQL DATABASE_URL (the primary)" in result.stderr
