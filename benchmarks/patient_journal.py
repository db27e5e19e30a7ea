"""Benchmark: « Mon journal d'accès » of a patient with 100,000 audit events.

Writes the patient's events in bulk (rows as the trail stores them; the chain is not what is
measured here), logs the patient in, then requests through Django's test client (the full
middleware stack, no network): the journal's first page, a filtered page (one professional),
an older page (``avant=``), and, as the floor, a bare authenticated page (the patients' portal
home, rendered with the same session and user), the pages taking turns. Reports p50 / p95, the
CPU time and the SQL query counts, which must not depend on the number of events; the audit
chaining is the settings' (``ESANTE_AUDIT_CHAINING=batched`` for the batched mode).

    python benchmarks/patient_journal.py
    python benchmarks/patient_journal.py --database postgres://postgres@127.0.0.1:5432/esante_bench
"""

import argparse
import datetime
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from _setup import fresh_django, percentile  # noqa: E402

ACTIONS = ["record.open", "record.view", "document.read", "access.grant", "prescription.dispense"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000, help="the patient's events (default: 100,000)")
    parser.add_argument("--requests", type=int, default=200, help="requests per page (default: 200)")
    parser.add_argument(
        "--database",
        default="",
        help="a PostgreSQL URL (its database is dropped and created); default: SQLite in a temporary dir",
    )
    args = parser.parse_args()
    fresh_django(args.database)
    import logging

    from django.conf import settings
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from esante.access.models import AccessGrant
    from esante.accounts.models import Professional, User
    from esante.audit.models import AuditChainHead, AuditEvent
    from esante.espace.models import PatientAccount
    from esante.patients.models import Patient

    logging.disable(logging.INFO)
    settings.ALLOWED_HOSTS = ["testserver"]
    patient = Patient.objects.create(
        matricule="1904112000166",
        birth_name="PIG",
        first_names="Peppa",
        birth_date=datetime.date(1904, 11, 20),
        sex="F",
        platform_identifier="1700000151",
    )
    user = User.objects.create_user(username="patient:1904112000166", password=None)
    PatientAccount.objects.create(user=user, patient=patient, state="active", email="p@example.lu")
    now = timezone.now()
    professionals = []
    for n in range(20):
        pro_user = User.objects.create_user(username=f"1970051712{n:02d}", password=None)
        professional = Professional.objects.create(
            user=pro_user,
            matricule=f"1970051712{n:02d}",
            profession="pharmacist" if n % 2 else "doctor",
            last_name=f"Pro{n}",
            first_name="Test",
            email=f"p{n}@example.lu",
            organisation="Pharmacie du Globe",
            state="active",
        )
        AccessGrant.objects.create(
            professional=professional,
            patient=patient,
            mode="care",
            motif="Suivi",
            granted_at=now,
            expires_at=now + datetime.timedelta(days=1),
        )
        professionals.append(professional)
    # Other patients' events too: the journal must find the patient's among many.
    other = Patient.objects.create(
        matricule="1904112000167",
        birth_name="WOLF",
        first_names="Zoé",
        birth_date=datetime.date(1904, 11, 20),
        sex="F",
        platform_identifier="1700000152",
    )
    started = time.perf_counter()
    batch: list[AuditEvent] = []
    total = args.events * 2
    for sequence in range(1, total + 1):
        professional = professionals[sequence % len(professionals)]
        batch.append(
            AuditEvent(
                sequence=sequence,
                created_at=now - datetime.timedelta(seconds=total - sequence),
                actor_id=professional.user_id,
                actor_label=professional.matricule,
                action=ACTIONS[sequence % len(ACTIONS)],
                outcome="success",
                patient=patient if sequence % 2 else other,
                motif="Délivrance de médicaments",
                details={"channel": "portal"},
                canonical="{}",
                prev_hash="0" * 64,
                hash=f"{sequence:064x}",
            )
        )
        if len(batch) == 5000:
            AuditEvent.objects.bulk_create(batch)
            batch = []
    AuditEvent.objects.bulk_create(batch)
    AuditChainHead.objects.update_or_create(pk=1, defaults={"sequence": total, "hash": f"{total:064x}"})
    backend = "PostgreSQL" if connection.vendor == "postgresql" else "SQLite"
    print(
        f"{backend}: {args.events} events of the patient (+{args.events} of another) written in "
        f"{time.perf_counter() - started:.1f} s"
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    client = Client()
    client.force_login(user)
    middle = total // 2 + 1
    pages = {
        "bare authenticated page (/patient/)": "/patient/",
        "journal, first page": "/patient/journal/",
        "journal, one professional": f"/patient/journal/?professionnel={professionals[3].matricule}",
        # « Accès plus anciens » pages by event id (here the ids are the sequences).
        "journal, older page": f"/patient/journal/?avant={middle}",
        "journal, one kind": "/patient/journal/?type=dispensations",
    }
    for url in pages.values():
        assert client.get(url).status_code == 200, url
    # The pages take turns (one request of each, then again): a change of the machine's load
    # while the benchmark runs weighs on every page alike, and the ratios stay comparable.
    times: dict[str, list[float]] = {name: [] for name in pages}
    cpu: dict[str, list[float]] = {name: [] for name in pages}
    queries: dict[str, set[int]] = {name: set() for name in pages}
    for _ in range(args.requests):
        for name, url in pages.items():
            # A full log (Django keeps 9,000 queries) would make the capture miscount.
            reset_queries()
            with CaptureQueriesContext(connection) as captured:
                t0, c0 = time.perf_counter(), time.process_time()
                response = client.get(url)
                times[name].append((time.perf_counter() - t0) * 1000)
                cpu[name].append((time.process_time() - c0) * 1000)
            assert response.status_code == 200
            queries[name].add(len(captured))
    results = {}
    for name in pages:
        results[name] = (percentile(times[name], 0.5), percentile(cpu[name], 0.5))
        print(
            f"{backend} {name}: p50 {percentile(times[name], 0.5):.1f} ms, "
            f"p95 {percentile(times[name], 0.95):.1f} ms, CPU p50 {percentile(cpu[name], 0.5):.1f} ms, "
            f"SQL queries {sorted(queries[name])}"
        )
    # The CPU time of this process (not the database server's) is what a loaded machine changes
    # least: both ratios are printed.
    bare, bare_cpu = results["bare authenticated page (/patient/)"]
    for name, (p50, cpu_p50) in results.items():
        if name.startswith("journal"):
            print(
                f"{backend} {name}: {p50 / bare:.2f}× the bare page, {cpu_p50 / bare_cpu:.2f}× in CPU time "
                "(goal ≤ 2×)"
            )


if __name__ == "__main__":
    main()
