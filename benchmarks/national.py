"""Benchmark: the national simulation (``esante simulate_national``) at a given scale, then the
portal's read paths on it.

Loads the synthetic data set into a fresh database (``--reuse``: into none, the database at
``--database`` already holds a simulation), and reports: rows/s per table, the size of each
table and of its indexes (PostgreSQL: ``pg_relation_size`` / ``pg_indexes_size``), the server's
own COPY ingestion rate for the two big tables (rows copied out, then copied into an empty twin
table with the same indexes: what the database sustains without this process's row building),
and p50 / p95 server time, CPU time of this process and SQL queries of: the patient search
(matricule; name + first name), the record page (Vue documentaire) of the patient with the
longest record, a document's content, and the patient's « Mon journal d'accès ».

    python benchmarks/national.py --scale 0.001
    python benchmarks/national.py --scale 0.01 --database postgres://postgres@127.0.0.1:5432/esante_bench
"""

import argparse
import io
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from _setup import fresh_django, percentile  # noqa: E402


def timed_requests(label: str, call: Any, requests: int, backend: str) -> float:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    call()
    times, cpu, queries = [], [], set()
    for _ in range(requests):
        with CaptureQueriesContext(connection) as captured:
            t0, c0 = time.perf_counter(), time.process_time()
            call()
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        queries.add(len(captured))
    print(
        f"{backend} {label}: p50 {percentile(times, 0.5):.1f} ms, p95 {percentile(times, 0.95):.1f} ms, "
        f"CPU p50 {percentile(cpu, 0.5):.1f} ms, SQL queries {sorted(queries)}"
    )
    return percentile(times, 0.5)


def sizes(backend: str) -> None:
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    tables = (
        "patients_patient documents_document documents_prescription documents_prescriptionline "
        "dispensing_dispensation dispensing_dispensationline access_accessgrant audit_auditevent"
    ).split()
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(
                f"SELECT count(*), pg_relation_size('{table}'), pg_indexes_size('{table}'), "  # noqa: S608
                f"pg_total_relation_size('{table}') FROM {table}"
            )
            rows, heap, indexes, total = cursor.fetchone()
            per_row = total / rows if rows else 0
            print(
                f"{backend} size {table}: {rows} rows, table {heap / 2**20:.1f} MiB, indexes "
                f"{indexes / 2**20:.1f} MiB, total {total / 2**20:.1f} MiB ({per_row:.0f} B/row)"
            )
        cursor.execute("SELECT pg_database_size(current_database())")
        print(f"{backend} size database: {cursor.fetchone()[0] / 2**20:.1f} MiB")


def server_copy_rate(backend: str) -> None:
    """The server's ingestion of COPY text into an indexed table, without row building here."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for table in ("documents_document", "audit_auditevent"):
            buffer = io.BytesIO()
            with cursor.cursor.copy(f"COPY {table} TO STDOUT") as copy:  # noqa: S608 (constants)
                for chunk in copy:
                    buffer.write(chunk)
            data = buffer.getvalue()
            rows = data.count(b"\n")
            twin = f"bench_{table}"
            cursor.execute(f"DROP TABLE IF EXISTS {twin}")
            cursor.execute(f"CREATE TABLE {twin} (LIKE {table} INCLUDING ALL)")
            started = time.perf_counter()
            with cursor.cursor.copy(f"COPY {twin} FROM STDIN") as copy:  # noqa: S608 (constants)
                for start in range(0, len(data), 1 << 20):
                    copy.write(data[start : start + (1 << 20)])
            seconds = time.perf_counter() - started
            cursor.execute(f"DROP TABLE {twin}")
            print(
                f"{backend} server COPY into {table} (with its indexes): {rows / seconds:,.0f} rows/s "
                f"({len(data) / seconds / 2**20:.0f} MiB/s of COPY text)"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--database", default="")
    parser.add_argument("--reuse", action="store_true", help="the database already holds a simulation")
    args = parser.parse_args()
    if args.reuse:
        import os

        import django

        os.environ.update(DJANGO_SETTINGS_MODULE="esante.settings", ESANTE_DEBUG="1")
        if args.database:
            os.environ["DATABASE_URL"] = args.database
        django.setup()
    else:
        fresh_django(args.database)
    import logging

    from django.conf import settings
    from django.db import connection
    from django.db.models import Count
    from django.test import Client

    from esante.access.models import AccessGrant
    from esante.access.selectors import patient_search_page
    from esante.accounts.models import User
    from esante.audit.models import AuditEvent
    from esante.demo.national import simulate_national
    from esante.documents.models import Document
    from esante.espace.models import PatientAccount
    from esante.patients.models import Patient
    from esante.patients.selectors import patient_search_criteria

    logging.disable(logging.INFO)
    settings.ALLOWED_HOSTS = ["testserver"]
    backend = "PostgreSQL" if connection.vendor == "postgresql" else "SQLite"
    if not args.reuse:
        started = time.perf_counter()
        report = simulate_national(scale=args.scale, actor_label="benchmark")
        elapsed = time.perf_counter() - started
        total = sum(report.rows.values())
        print(
            f"{backend} load at scale {args.scale}: {total} rows in {elapsed:.1f} s "
            f"({total / elapsed:,.0f} rows/s)"
        )
        for table, rows in report.rows.items():
            seconds = report.seconds[table]
            print(f"{backend} load {table}: {rows} rows, {rows / seconds if seconds else 0:,.0f} rows/s")
        events = report.rows["audit_events"]
        print(
            f"{backend} load: head signed in {report.signing_seconds:.1f} s (the signer re-checks the "
            f"{events} new events: {events / report.signing_seconds:,.0f} events/s)"
        )
    sizes(backend)
    server_copy_rate(backend)

    # The patient with the longest record, and a professional with a current grant on it.
    patient_id = (
        Document.objects.values("patient_id")
        .annotate(n=Count("id"))
        .order_by("-n")
        .values_list("patient_id", "n")
    ).first()
    assert patient_id is not None
    patient = Patient.objects.get(pk=patient_id[0])
    grant = AccessGrant.objects.filter(patient=patient).select_related("professional__user").first()
    assert grant is not None
    professional = grant.professional
    from django.utils import timezone

    if grant.expires_at <= timezone.now():  # the benchmark's own grant, through the ORM
        grant = AccessGrant.objects.create(
            professional=professional,
            patient=patient,
            mode="care",
            motif="Banc d'essai",
            expires_at=timezone.now() + timezone.timedelta(days=1),
        )
    print(f"{backend} record of patient #{patient.pk}: {patient_id[1]} documents")

    rng = random.Random(5)
    samples = list(Patient.objects.order_by("?").values_list("matricule", "birth_name", "first_names")[:500])

    def search_matricule() -> None:
        matricule = rng.choice(samples)[0]
        criteria = patient_search_criteria(matricule=matricule)
        patient_search_page(professional=professional, criteria=criteria, page=1, page_size=25)

    def search_name() -> None:
        _, name, given = rng.choice(samples)
        criteria = patient_search_criteria(name=name[:4], first_name=given[:2])
        patient_search_page(professional=professional, criteria=criteria, page=1, page_size=25)

    timed_requests("search by matricule (selector)", search_matricule, args.requests, backend)
    timed_requests("search by name + first name (selector)", search_name, args.requests, backend)

    client = Client()
    client.force_login(professional.user)
    record_url = f"/edocuments/patient/{patient.public_id}/?vue=documentaire"
    document = Document.objects.filter(patient=patient).order_by("-clinical_at").first()
    assert document is not None
    content_url = f"/edocuments/patient/{patient.public_id}/document/{document.public_id}/contenu"

    def get(url: str) -> Any:
        def call() -> None:
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)
            if response.streaming:
                b"".join(response.streaming_content)

        return call

    statuses: list[int] = []

    def post_search() -> None:
        response = client.post("/edocuments/recherche/", {"matricule": rng.choice(samples)[0]})
        statuses.append(response.status_code)

    timed_requests("search page POST by matricule (full stack)", post_search, min(args.requests, 20), backend)
    print(f"{backend} search page statuses: {sorted(set(statuses))} (429 = the search rate limit)")
    timed_requests("record page, Vue documentaire (full stack)", get(record_url), args.requests, backend)
    timed_requests("document content (full stack)", get(content_url), args.requests, backend)

    user = User.objects.create_user(username=f"patient:{patient.matricule}", password=None)
    PatientAccount.objects.create(user=user, patient=patient, state="active", email="p@example.lu")
    events = AuditEvent.objects.filter(patient=patient).count()
    print(f"{backend} journal of patient #{patient.pk}: {events} events")
    journal = Client()
    journal.force_login(user)

    def get_journal() -> None:
        assert journal.get("/patient/journal/").status_code == 200

    timed_requests("patient journal, first page (full stack)", get_journal, args.requests, backend)


if __name__ == "__main__":
    main()
