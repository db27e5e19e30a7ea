import csv
import datetime
import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from esante.audit.models import AuditEvent
from esante.audit.verification import verify_chain
from esante.patients import bulk
from esante.patients.matricule import make_patient_matricule
from esante.patients.models import Patient
from esante.patients.services import patients_import_batch

HEADER = (
    "matricule,birth_name,usage_name,first_names,birth_date,sex,taux,"
    "dossier_number,platform_identifier,dossier_state\n"
)
PEPPA = "1904112000166,PIG,,Peppa,1904-11-20,F,100,1664927202,1700000151,active\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def rejects(path: Path) -> list[list[str]]:
    with path.with_name(path.name + ".rejets.csv").open(encoding="utf-8") as fh:
        return list(csv.reader(fh))[1:]


@pytest.mark.django_db
def test_csv_import_creates_patients_and_reports_rejects(tmp_path: Path) -> None:
    good = make_patient_matricule(datetime.date(1985, 3, 2), 41)
    text = (
        HEADER
        + PEPPA
        + f"{good},Gonçalves,Schmit,Ana Maria,02/03/1985,F,80,,,\n"
        + "1904112000167,BAD,,Check,1904-11-20,F,100,,,\n"  # wrong check digits
        + f"{good[:-2]}00,X,,Y,1985-03-02,F,80,,,\n"  # wrong check digits
        + "1904112000166,PIG,,Peppa,1904-11-20,Q,100,,,\n"  # bad sex
        # the birth date does not match the matricule's
        + f"{make_patient_matricule(datetime.date(1990, 1, 1), 1)},Weber,,Luc,1990-01-02,M,80,,,\n"
        + "too,few\n"
    )
    path = write(tmp_path, "patients.csv", text)
    call_command("import_patients", str(path), verbosity=0)
    assert Patient.objects.count() == 2
    ana = Patient.objects.get(matricule=good)
    assert (ana.birth_name_folded, ana.usage_name_folded, ana.first_names_folded) == (
        "GONCALVES",
        "SCHMIT",
        "ANA MARIA",
    )
    assert ana.platform_identifier.startswith("17") and len(ana.platform_identifier) == 10
    reasons = {int(line): reason for line, _, reason in rejects(path)}
    assert sorted(reasons) == [4, 5, 6, 7, 8]
    assert "chiffres de contrôle" in reasons[4]
    assert "sexe" in reasons[6]
    assert "ne correspond pas" in reasons[7]
    assert "2 colonnes au lieu de 10" in reasons[8]
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["patient.create"]
    event = AuditEvent.objects.get()
    assert event.details["count"] == 2 and set(event.details["matricules"]) == {"1904112000166", good}


@pytest.mark.django_db
def test_reimport_is_idempotent_and_audits_changes(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", HEADER + PEPPA)
    call_command("import_patients", str(path), verbosity=0)
    call_command("import_patients", str(path), verbosity=0)
    assert Patient.objects.count() == 1
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["patient.create"]
    changed = write(
        tmp_path, "p2.csv", HEADER + PEPPA.replace(",100,", ",80,").replace("PIG,,", "PIG,Pig-Wolf,")
    )
    call_command("import_patients", str(changed), verbosity=0)
    peppa = Patient.objects.get()
    assert (peppa.taux, peppa.usage_name, peppa.usage_name_folded) == (80, "Pig-Wolf", "PIG WOLF")
    update = AuditEvent.objects.get(action="patient.update")
    assert update.patient == peppa
    assert update.details["changes"] == {"usage_name": ["", "Pig-Wolf"], "taux": ["100", "80"]}


@pytest.mark.django_db
def test_fhir_ndjson_import(tmp_path: Path) -> None:
    peppa = {
        "resourceType": "Patient",
        "identifier": [
            {"system": "urn:oid:1.3.182.4.4", "value": "1904112000166"},
            {"system": "urn:esante:dossier-number", "value": "1664927202"},
            {"system": "urn:esante:platform-identifier", "value": "1700000151"},
        ],
        "name": [{"use": "official", "family": "PIG", "given": ["Peppa"]}],
        "gender": "female",
        "birthDate": "1904-11-20",
        "extension": [{"url": "urn:esante:taux", "valueInteger": 100}],
    }
    lines = [json.dumps(peppa), "{not json", json.dumps({"resourceType": "Observation"}), ""]
    path = write(tmp_path, "patients.ndjson", "\n".join(lines) + "\n")
    call_command("import_patients", str(path), verbosity=0)
    patient = Patient.objects.get()
    assert (patient.birth_name, patient.first_names, patient.sex, patient.taux) == ("PIG", "Peppa", "F", 100)
    assert (patient.dossier_number, patient.platform_identifier) == ("1664927202", "1700000151")
    reasons = {int(line): reason for line, _, reason in rejects(path)}
    assert reasons == {2: "JSON invalide", 3: "ressource FHIR de type « Observation » au lieu de Patient"}


@pytest.mark.django_db
def test_bad_header_is_refused_and_nothing_written(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.csv", "matricule,nom\n1904112000166,PIG\n")
    with pytest.raises(CommandError, match="colonnes manquantes"):
        call_command("import_patients", str(path), verbosity=0)
    assert not Patient.objects.exists() and not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_platform_identifier_of_another_patient_is_rejected(tmp_path: Path) -> None:
    other = make_patient_matricule(datetime.date(1970, 1, 1), 5)
    path = write(tmp_path, "p.csv", HEADER + PEPPA + f"{other},Klein,,Tom,1970-01-01,M,80,,1700000151,\n")
    call_command("import_patients", str(path), verbosity=0)
    assert Patient.objects.count() == 1
    assert "déjà attribué" in rejects(path)[0][2]


def test_interrupted_import_keeps_completed_batches(committed_db: None) -> None:
    rows = [
        (
            n,
            {
                "matricule": make_patient_matricule(
                    datetime.date(1960, 1, 1) + datetime.timedelta(days=n), 7
                ),
                "birth_name": "Hoffmann",
                "first_names": "Jos",
                "sex": "M",
                "taux": 80,
                "birth_date": datetime.date(1960, 1, 1) + datetime.timedelta(days=n),
                "dossier_state": "active",
            },
        )
        for n in range(1, 31)
    ]

    def run_until_interrupted() -> None:
        for start in range(0, 30, 10):
            if start == 20:
                raise KeyboardInterrupt  # the operator's Ctrl-C between two batches
            patients_import_batch(rows=rows[start : start + 10], source="t", actor_label="test")

    with pytest.raises(KeyboardInterrupt):
        run_until_interrupted()
    assert Patient.objects.count() == 20
    # Re-running the whole file completes it without duplicates.
    for start in range(0, 30, 10):
        patients_import_batch(rows=rows[start : start + 10], source="t", actor_label="test")
    assert Patient.objects.count() == 30


def _population(count: int, *, first_names: str = "Jos") -> str:
    lines = []
    for n in range(count):
        birth = datetime.date(1950, 1, 1) + datetime.timedelta(days=n)
        lines.append(f"{make_patient_matricule(birth, 3)},Müller,,{first_names},{birth},M,80,,,\n")
    return HEADER + "".join(lines)


@pytest.mark.django_db
def test_update_heavy_second_import_audits_each_changed_patient(tmp_path: Path) -> None:
    call_command("import_patients", str(write(tmp_path, "a.csv", _population(25))), verbosity=0)
    before = {p.matricule: p for p in Patient.objects.all()}
    # Second file: every patient renamed except the last five, batches of 7 rows.
    text = _population(20, first_names="Jean-Émile") + "".join(_population(25).splitlines(True)[21:])
    second = write(tmp_path, "b.csv", text)
    out = io.StringIO()
    call_command("import_patients", str(second), "--batch-size", "7", stdout=out, verbosity=0)
    assert "0 créés, 20 mis à jour, 5 inchangés, 0 rejetés" in out.getvalue()
    assert Patient.objects.count() == 25
    updates = list(AuditEvent.objects.filter(action="patient.update").order_by("sequence"))
    assert len(updates) == 20
    renamed = Patient.objects.filter(first_names="Jean-Émile")
    assert {e.patient_id for e in updates} == set(renamed.values_list("pk", flat=True))
    for event in updates:
        assert event.details["changes"] == {"first_names": ["Jos", "Jean-Émile"]}
        assert event.details["source"] == "b.csv" and event.actor_label.startswith("operator:")
        assert 2 <= event.details["line"] <= 21
    for patient in renamed:
        old = before[patient.matricule]
        assert patient.first_names_folded == "JEAN EMILE"
        assert (patient.public_id, patient.platform_identifier, patient.birth_name_folded) == (
            old.public_id,
            old.platform_identifier,
            "MULLER",
        )
        assert patient.updated_at > old.updated_at and patient.created_at == old.created_at
    # The events written together still form one chain, each linked to the one before.
    assert verify_chain().ok
    sequences = list(AuditEvent.objects.values_list("sequence", flat=True))
    assert sequences == list(range(1, len(sequences) + 1))


@pytest.mark.django_db
def test_duplicates_inside_one_batch_last_line_wins(tmp_path: Path) -> None:
    other = make_patient_matricule(datetime.date(1970, 1, 1), 5)
    third = make_patient_matricule(datetime.date(1971, 1, 1), 6)
    text = (
        HEADER
        + PEPPA
        + f"{other},Klein,,Tom,1970-01-01,M,80,,,\n"
        + PEPPA.replace(",Peppa,", ",Peppa Rose,")  # the same matricule again
        # the identifier another row of this batch already claimed
        + f"{third},Weber,,Ana,1971-01-01,F,80,,1700000151,\n"
    )
    path = write(tmp_path, "dup.csv", text)
    out = io.StringIO()
    call_command("import_patients", str(path), stdout=out, verbosity=0)
    assert "2 créés, 0 mis à jour, 0 inchangés, 1 rejetés" in out.getvalue()
    peppa = Patient.objects.get(matricule="1904112000166")
    assert (peppa.first_names, peppa.first_names_folded, peppa.platform_identifier) == (
        "Peppa Rose",
        "PEPPA ROSE",
        "1700000151",
    )
    assert set(Patient.objects.values_list("matricule", flat=True)) == {"1904112000166", other}
    assert rejects(path) == [["5", third, "identifiant 1700000151 déjà attribué à un autre patient"]]
    event = AuditEvent.objects.get()
    assert event.action == "patient.create"
    assert sorted(event.details["matricules"]) == sorted(["1904112000166", other])
    assert event.details["count"] == 2


@pytest.mark.django_db
def test_import_writes_what_the_orm_reads_back(tmp_path: Path) -> None:
    # The rows are written as plain SQL; the model must read them as if it had saved them.
    path = write(tmp_path, "p.csv", HEADER + PEPPA.replace(",1700000151,", ",,"))
    call_command("import_patients", str(path), verbosity=0)
    patient = Patient.objects.get()
    assert isinstance(patient.public_id, uuid.UUID) and patient.public_id.version == 4
    assert patient.birth_date == datetime.date(1904, 11, 20)
    assert (patient.taux, patient.sex, patient.dossier_state, patient.alerts) == (100, "F", "active", "")
    assert patient.referring_doctor is None and patient.dossier_number == "1664927202"
    assert patient.created_at == patient.updated_at and patient.created_at.tzinfo is not None
    assert Patient.objects.get(public_id=patient.public_id) == patient
    assert patient.platform_identifier.startswith("17") and len(patient.platform_identifier) == 10


def test_bulk_insert_columns_cover_the_patient_model() -> None:
    # The import writes rows in SQL: a column added to Patient must be given a value there (or be
    # nullable, as the referring doctor), or the import would fail or store a wrong default.
    columns = {field.column for field in Patient._meta.concrete_fields}
    assert columns == {*bulk.INSERT_COLUMNS, "id", "referring_doctor_id"}


@pytest.mark.django_db
def test_progress_bar_reaches_the_file_size(tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", _population(40))
    err, out = io.StringIO(), io.StringIO()
    call_command("import_patients", str(path), "--batch-size", "15", stdout=out, stderr=err)
    size = path.stat().st_size
    assert "Import des patients" in err.getvalue() and "100%" in err.getvalue()
    assert f"{size / 1000:.2f}k/{size / 1000:.2f}k" in err.getvalue()
    assert "40 créés" in out.getvalue()


def test_value_order_is_the_one_the_import_service_reads() -> None:
    from esante.patients.importing import VALUE_COLUMNS
    from esante.patients.services import IMPORTED_COLUMNS

    assert VALUE_COLUMNS == IMPORTED_COLUMNS


def test_dictionary_normalise_gives_the_positional_values() -> None:
    from esante.patients.importing import CSV_COLUMNS, normalise, normalise_fields

    row = {"matricule": "1904112000166", "birth_name": "PIG", "first_names": "Peppa"}
    row |= {"birth_date": "20/11/1904", "sex": "f", "taux": "100%"}
    fields = tuple(row.get(column, "") for column in CSV_COLUMNS)
    values = normalise_fields(fields)
    assert values == (
        "1904112000166",
        "PIG",
        "",
        "Peppa",
        datetime.date(1904, 11, 20),
        "F",
        100,
        "",
        None,
        "active",
    )
    assert normalise(row) == {
        "matricule": "1904112000166",
        "birth_name": "PIG",
        "usage_name": "",
        "first_names": "Peppa",
        "birth_date": datetime.date(1904, 11, 20),
        "sex": "F",
        "taux": 100,
        "dossier_number": "",
        "dossier_state": "active",
    }
    # A matricule typed with spaces is stored in its compact form; its date is still checked.
    spaced = normalise_fields(("1904 1120 00166", *fields[1:]))
    assert spaced[0] == "1904112000166"
    with pytest.raises(ValidationError, match="ne correspond pas"):
        normalise_fields(("1904 1120 00166", *fields[1:4], "1904-11-21", *fields[5:]))


@pytest.mark.django_db
def test_csv_columns_in_any_order_semicolons_bom_crlf_and_bad_bytes(tmp_path: Path) -> None:
    good = make_patient_matricule(datetime.date(1985, 3, 2), 41)
    text = (
        "\ufeffSex;First_Names;Birth_Date;Birth_Name;Matricule\r\n"
        "F;Peppa;1904-11-20;PIG;1904112000166\r\n"
        "\r\n"
        f"F;Ana;1985-03-02;Gon\x00;{good}\r\n"
        ";;;;\r\n"
        "M;Tom;1970-01-01;Klein\r\n"
    )
    raw = text.encode("utf-8").replace(b"\x00", b"\xff")  # an invalid UTF-8 byte in line 4
    path = tmp_path / "reordered.csv"
    path.write_bytes(raw)
    out = io.StringIO()
    call_command("import_patients", str(path), stdout=out, verbosity=0)
    assert "1 créés, 0 mis à jour, 0 inchangés, 2 rejetés" in out.getvalue()
    peppa = Patient.objects.get()
    assert (peppa.matricule, peppa.birth_name, peppa.first_names, peppa.sex) == (
        "1904112000166",
        "PIG",
        "Peppa",
        "F",
    )
    assert (peppa.usage_name, peppa.taux, peppa.dossier_state) == ("", 80, "active")
    assert rejects(path) == [
        ["4", good, "encodage invalide (UTF-8 attendu)"],
        ["6", "", "4 colonnes au lieu de 5"],
    ]


def _rows(count: int, *, first_names: str = "Jos", start: int = 0) -> list[str]:
    return [
        f"{make_patient_matricule(datetime.date(1930, 1, 1) + datetime.timedelta(days=n), 9)},"
        f"Weber,,{first_names},{datetime.date(1930, 1, 1) + datetime.timedelta(days=n)},F,80,,,\n"
        for n in range(start, start + count)
    ]


@pytest.mark.django_db
def test_batch_boundaries_duplicates_rejects_and_reimport(tmp_path: Path) -> None:
    # 2,500 distinct patients in batches of 1,000 valid rows (the file: 2,503 lines of rows): a
    # rejected line just before a boundary (it does not count in a batch), a patient of the second
    # batch again in the third (unchanged there), one of the first changed in the third (an update,
    # traced).
    rows = _rows(2500)
    rows.insert(999, "1904112000167,BAD,,Check,1904-11-20,F,100,,,\n")  # line 1001
    rows.insert(2002, rows[1500])  # valid row 2,002: the third batch's third
    rows.append(rows[10].replace(",Jos,", ",Jos Marie,"))  # patient 11, changed, in batch 3
    path = write(tmp_path, "large.csv", HEADER + "".join(rows))
    out = io.StringIO()
    call_command("import_patients", str(path), "--batch-size", "1000", stdout=out, verbosity=0)
    assert "2500 créés, 1 mis à jour, 1 inchangés, 1 rejetés" in out.getvalue()
    assert Patient.objects.count() == 2500
    assert len(set(Patient.objects.values_list("platform_identifier", flat=True))) == 2500
    assert Patient.objects.get(first_names="Jos Marie").first_names_folded == "JOS MARIE"
    assert rejects(path) == [["1001", "1904112000167", rejects(path)[0][2]]]
    creations = list(AuditEvent.objects.filter(action="patient.create").order_by("sequence"))
    assert [event.details["count"] for event in creations] == [1000, 1000, 500]
    created = [m for event in creations for m in event.details["matricules"]]
    assert sorted(created) == sorted(Patient.objects.values_list("matricule", flat=True))
    update = AuditEvent.objects.get(action="patient.update")
    assert update.details["changes"] == {"first_names": ["Jos", "Jos Marie"]}
    assert update.details["line"] == 2504
    assert verify_chain().ok
    # The same file again, in one batch of the default size: nothing changes, nothing is audited
    # (a patient repeated in a batch counts once, from its last line: patient 11's change is in).
    events = AuditEvent.objects.count()
    again = io.StringIO()
    call_command("import_patients", str(path), stdout=again, verbosity=0)
    assert "0 créés, 0 mis à jour, 2500 inchangés, 1 rejetés" in again.getvalue()
    assert AuditEvent.objects.count() == events


@pytest.mark.django_db
def test_debug_query_log_is_emptied_after_each_batch(tmp_path: Path, settings: Any) -> None:
    # With DEBUG on, Django keeps each statement's text (a batch's keys, its creation event):
    # the import empties that log after each batch, so its memory does not grow with the file.
    from django.db import connection

    settings.DEBUG = True
    path = write(tmp_path, "p.csv", HEADER + "".join(_rows(60)))
    call_command("import_patients", str(path), "--batch-size", "10", verbosity=0)
    assert len(connection.queries_log) == 0  # emptied after the last batch too
    assert Patient.objects.count() == 60
    assert len(connection.queries_log) == 1  # the log is on: the count above is in it
