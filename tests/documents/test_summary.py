"""``DocumentSummary``: after every write path its rows are exactly the documents grouped by the
summary key — submission, the patient's hide and show, the withdrawal of a dispensation (the
document ``entered-in-error``), any status or key change, bulk loads (``bulk_create``, the national
simulation's ``COPY`` / ``executemany``), deletions and rolled-back transactions — and the check
command finds and repairs a summary someone altered."""

import datetime
import io
import random
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.models import Count

from esante.access.policy import Confidentiality
from esante.documents.models import SUMMARY_KEY, Document, DocumentSummary
from esante.documents.services import document_mark_entered_in_error, document_submit
from esante.documents.summary import summary_differences, summary_repair
from esante.documents.types import DOCUMENT_TYPES, Binder
from esante.espace.services import document_visibility_set
from esante.patients.models import Patient
from tests.access.factories import make_patient, make_professional
from tests.espace.conftest import active_account

from .conftest import AT, make_prescription
from .test_views import submit

FIELDS = [column.removesuffix("_id") for column in SUMMARY_KEY]


def grouped(patient: Patient | None = None) -> dict[tuple[Any, ...], int]:
    """The summary as the documents make it (the reference)."""
    documents = Document.objects.all() if patient is None else Document.objects.filter(patient=patient)
    return {
        tuple(row[f] for f in FIELDS): row["n"]
        for row in documents.order_by().values(*FIELDS).annotate(n=Count("id"))
    }


def stored(patient: Patient | None = None) -> dict[tuple[Any, ...], int]:
    rows = (
        DocumentSummary.objects.all() if patient is None else DocumentSummary.objects.filter(patient=patient)
    )
    result: dict[tuple[Any, ...], int] = {}
    for row in rows.values(*FIELDS, "document_count"):
        key = tuple(row[f] for f in FIELDS)
        assert key not in result, "one summary row per key"
        result[key] = row["document_count"]
    return result


def assert_exact(patient: Patient | None = None) -> None:
    expected = grouped(patient)
    assert stored(patient) == expected
    assert all(n > 0 for n in expected.values())  # no row left at zero
    assert summary_differences() == []


def bulk(patient: Patient, n: int, **fields: Any) -> list[Document]:
    pick = random.Random(n)
    authors = [make_professional("doctor") for _ in range(2)]
    types = list(DOCUMENT_TYPES.values())
    rows = []
    for i in range(n):
        document_type = pick.choice(types)
        values: dict[str, Any] = {
            "patient": patient,
            "type_code": document_type.code,
            "class_code": str(document_type.class_code),
            "title": f"Document {i}",
            "author": pick.choice([*authors, None]),
            "author_name": f"Dr {i % 3}",
            "source_system": "eServices",
            "binder": pick.choice(Binder.values),
            "confidentiality": pick.choice(Confidentiality.values),
            "hidden_by_patient": pick.random() < 0.2,
            "media_type": "text/plain",
            "content": "x",
            "sha256": "0" * 64,
            "size": 1,
            "clinical_at": AT - datetime.timedelta(hours=i),
        }
        values.update(fields)
        rows.append(Document(**values))
    return Document.objects.bulk_create(rows)


@pytest.mark.django_db
def test_a_submitted_document_is_counted_in_its_transaction(peppa: Patient) -> None:
    author = make_professional("doctor")
    assert stored(peppa) == {}
    submit(peppa, author=author, confidentiality="R")
    key = (peppa.pk, "report", "11488-4", "R", False, author.pk, "current", "hospital", "Dr Autre")
    assert stored(peppa) == {key: 1}
    submit(peppa, author=author, confidentiality="R", title="Deuxième")
    document_submit(content=make_prescription(), source_system="eServices")  # a CDA: its own metadata
    assert stored(peppa)[key] == 2 and len(stored(peppa)) == 2
    assert_exact(peppa)


@pytest.mark.django_db
def test_a_rolled_back_submission_leaves_no_count(peppa: Patient) -> None:
    submit(peppa)
    before = stored(peppa)

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        submit(peppa, title="Annulé")
        assert sum(stored(peppa).values()) == sum(before.values()) + 1
        raise Abort
    assert stored(peppa) == before
    assert_exact(peppa)


@pytest.mark.django_db
def test_the_patients_hide_and_show_move_the_document_between_rows(peppa: Patient) -> None:
    account = active_account(peppa)
    document = submit(peppa)
    key = (peppa.pk, "report", "11488-4", "N", False, None, "current", "hospital", "Dr Autre")
    hidden_key = key[:4] + (True,) + key[5:]
    assert stored(peppa) == {key: 1}
    document_visibility_set(account=account, document=document, hidden=True, client_address=None)
    assert stored(peppa) == {hidden_key: 1}
    document_visibility_set(account=account, document=document, hidden=True, client_address=None)  # no change
    assert stored(peppa) == {hidden_key: 1}
    submit(peppa, title="Autre")
    document_visibility_set(account=account, document=document, hidden=False, client_address=None)
    assert stored(peppa) == {key: 2}
    assert_exact(peppa)


@pytest.mark.django_db
def test_a_withdrawn_document_moves_to_entered_in_error(peppa: Patient) -> None:
    first, second = submit(peppa), submit(peppa, title="Deux")
    document_mark_entered_in_error(document_id=first.pk)
    key = (peppa.pk, "report", "11488-4", "N", False, None, "current", "hospital", "Dr Autre")
    assert stored(peppa) == {key: 1, key[:6] + ("entered-in-error",) + key[7:]: 1}
    assert second.pk
    assert_exact(peppa)


@pytest.mark.django_db
def test_bulk_loads_updates_of_every_key_column_and_deletions_keep_it_exact() -> None:
    patients = [make_patient(), make_patient()]
    for patient in patients:
        bulk(patient, 300)
    assert_exact()
    someone = make_professional("nurse")
    first = patients[0]
    ids = list(Document.objects.filter(patient=first).order_by("id").values_list("id", flat=True))
    changes: list[dict[str, Any]] = [
        {"status": Document.Status.SUPERSEDED},
        {"status": Document.Status.ENTERED_IN_ERROR},
        {"hidden_by_patient": True},
        {"confidentiality": "V"},
        {"author": someone},
        {"author": None},
        {"author_name": "Dr Renommé"},
        {"binder": "medication"},
        {"class_code": "psychiatry", "type_code": "11492-6"},
        {"patient": patients[1]},
        {"title": "Seul le titre change"},  # not a key column: nothing to do
    ]
    for n, change in enumerate(changes):
        Document.objects.filter(id__in=ids[n * 20 : n * 20 + 25]).update(**change)
        assert_exact()
    for document in Document.objects.filter(id__in=ids[200:230]):  # one row at a time, by save()
        document.hidden_by_patient = not document.hidden_by_patient
        document.save(update_fields=["hidden_by_patient"])
    assert_exact()
    Document.objects.filter(id__in=ids[250:]).delete()
    assert_exact()
    Document.objects.all().delete()
    assert DocumentSummary.objects.count() == 0


@pytest.mark.django_db
def test_random_operations_keep_it_exact(peppa: Patient) -> None:
    """Whatever the sequence of writes, the summary is the grouping of the documents."""
    pick = random.Random(7)
    authors = [make_professional("doctor"), None]
    bulk(peppa, 50)
    for _ in range(150):
        ids = list(Document.objects.filter(patient=peppa).values_list("id", flat=True))
        target = Document.objects.filter(id__in=pick.sample(ids, k=min(len(ids), pick.randint(1, 4))))
        operation = pick.randrange(5)
        if operation == 0:
            bulk(peppa, pick.randint(1, 5))
        elif operation == 1:
            target.update(hidden_by_patient=pick.random() < 0.5, confidentiality=pick.choice("NRV"))
        elif operation == 2:
            target.update(status=pick.choice(Document.Status.values), author=pick.choice(authors))
        elif operation == 3:
            target.update(binder=pick.choice(Binder.values), author_name=pick.choice(["Dr A", "Dr B"]))
        else:
            target.delete()
    assert_exact(peppa)


@pytest.fixture
def own_heads_files(settings: Any, tmp_path: Path) -> None:
    settings.AUDIT_HEADS_FILE = tmp_path / "heads.jsonl"
    settings.AUDIT_SIGNER_STATE_FILE = tmp_path / "signer-state.json"
    settings.AUDIT_HEADS_COPY_FILES = []
    settings.AUDIT_WITNESS_URL = ""


@pytest.mark.django_db
def test_the_national_loader_copy_is_counted(own_heads_files: None) -> None:
    """The national simulation writes documents with ``COPY`` (PostgreSQL) or ``executemany``
    (SQLite), not through the ORM: the triggers count them all the same."""
    call_command("simulate_national", "--scale", "0.0001", verbosity=0, stdout=io.StringIO())
    assert Document.objects.count() > 1000
    assert_exact()


@pytest.mark.django_db
def test_the_check_command_finds_and_repairs_an_altered_summary() -> None:
    patients = [make_patient(), make_patient(), make_patient()]
    for patient in patients:
        bulk(patient, 40)
    out = io.StringIO()
    call_command("check_document_summary", stdout=out)
    assert "exact" in out.getvalue()
    # Altered behind the triggers' back: a count changed, a row removed, a row invented.
    row = DocumentSummary.objects.filter(patient=patients[0]).first()
    assert row is not None
    DocumentSummary.objects.filter(pk=row.pk).update(document_count=row.document_count + 5)
    DocumentSummary.objects.filter(pk=DocumentSummary.objects.filter(patient=patients[1]).first().pk).delete()  # type: ignore[union-attr]
    DocumentSummary.objects.create(
        patient=patients[2],
        class_code="report",
        type_code="11488-4",
        confidentiality="N",
        hidden_by_patient=False,
        author=None,
        status="current",
        binder="general",
        author_name="Personne",
        document_count=1,
    )
    assert summary_differences() == sorted(p.pk for p in patients)
    assert summary_differences(patient_ids=[patients[1].pk]) == [patients[1].pk]
    with pytest.raises(CommandError, match="3 patient"):
        call_command("check_document_summary", stdout=io.StringIO())
    assert summary_differences() == sorted(p.pk for p in patients)  # the check alone changes nothing
    out = io.StringIO()
    call_command("check_document_summary", "--repair", stdout=out)
    assert "repaired" in out.getvalue()
    assert_exact()


@pytest.mark.django_db
def test_repair_of_nothing_changes_nothing(peppa: Patient) -> None:
    bulk(peppa, 10)
    before = list(DocumentSummary.objects.order_by("id").values_list("id", "document_count"))
    summary_repair(patient_ids=[])
    assert summary_differences(patient_ids=[]) == []
    assert list(DocumentSummary.objects.order_by("id").values_list("id", "document_count")) == before


@pytest.mark.django_db
def test_the_triggers_exist_on_this_database() -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'document_summary_%'"
            )
        else:
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'documents_document'::regclass "
                "AND tgname LIKE 'document_summary_%'"
            )
        names = sorted(row[0] for row in cursor.fetchall())
    assert names == ["document_summary_delete", "document_summary_insert", "document_summary_update"]


@pytest.mark.django_db
def test_the_migrations_backfill_counts_the_documents_already_stored() -> None:
    from esante.documents import summary

    for patient in (make_patient(), make_patient()):
        bulk(patient, 60)
    expected = grouped()
    DocumentSummary.objects.all().delete()  # as before the migration: documents, no summary
    summary.backfill(connection)
    assert stored() == expected
    assert_exact()
