"""Benchmark: the FHIR API's transactions against an authenticated Patient read on the same run.

A pharmacist's token (stored as the authorization server stores it), a patient with 1,000
documents and an access, then through Django's test client (the full middleware stack, no
network): Patient search by identifier (POST _search), DocumentReference search (first page of
20 of the 1,000), MedicationDispense create (one line of a fresh prescription each time), each
against ``GET Patient/{id}`` (token check, gate, one audit event). A dispensation queues its
certified copy (PDF) for the job queue, as on the portal (no consumer runs here: see
``dispensation.py`` for the copy itself). Reports p50 / p95, the ratio
to the baseline (goal: at most 1.5x) and the SQL query counts (goal: constant).

    python benchmarks/fhir_api.py
    python benchmarks/fhir_api.py --database postgres://postgres@127.0.0.1:5432/esante_bench
"""

import argparse
import datetime
import secrets
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from _setup import fresh_django, percentile  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--database", default="")
    args = parser.parse_args()
    fresh_django(args.database)
    import logging

    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from esante.access.models import AccessGrant
    from esante.accounts.models import Professional, User
    from esante.documents.models import Document, Prescription, PrescriptionLine
    from esante.fhir.models import Token, token_digest
    from esante.fhir.services import software_client_register
    from esante.patients.models import Patient

    logging.disable(logging.INFO)
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.ESANTE_SEARCH_RATE_LIMIT = 10**9
    now = timezone.now()
    patient = Patient.objects.create(
        matricule="1904112000166", birth_name="PIG", first_names="Peppa",
        birth_date=datetime.date(1904, 11, 20), sex="F", platform_identifier="1700000151",
    )  # fmt: skip
    user = User.objects.create_user(username="19800101001", password=None)
    pharmacist = Professional.objects.create(
        user=user, matricule="19800101001", profession="pharmacist", last_name="Kremer",
        first_name="Claudine", email="c@example.lu", state="active", organisation="Pharmacie",
    )  # fmt: skip
    AccessGrant.objects.create(
        professional=pharmacist, patient=patient, mode="care", motif="Délivrance",
        granted_at=now, expires_at=now + datetime.timedelta(days=1),
    )  # fmt: skip
    Document.objects.bulk_create(
        Document(
            patient=patient, type_code="10160-0", class_code="medication", title=f"Document {n}",
            author_name="Dr Auteur", source_system="eServices", binder="medication", media_type="text/plain",
            content="x", sha256="0" * 64, size=1, clinical_at=now - datetime.timedelta(hours=n),
        )
        for n in range(args.documents)
    )  # fmt: skip
    prescriptions = []
    for n in range(args.requests + 1):
        document = Document.objects.create(
            patient=patient, type_code="57833-6", class_code="prescription", title=f"Ordonnance {n}",
            author_name="Dr Weber", source_system="eServices", binder="medication", media_type="text/plain",
            content="x", sha256="0" * 64, size=1, clinical_at=now - datetime.timedelta(days=1),
        )  # fmt: skip
        prescription = Prescription.objects.create(
            document=document, prescribed_at=now - datetime.timedelta(days=1), prescriber_name="Dr Weber"
        )
        PrescriptionLine.objects.create(
            prescription=prescription, position=1, medication="AMOXICILLINE", quantity=3
        )
        prescriptions.append(document)
    software, _ = software_client_register(
        name="Bench", organisation="Bench", kind="interactive", public=True,
        redirect_uris=["https://b.example/cb"],
        scopes=["user/Patient.rs", "user/DocumentReference.rs", "user/MedicationDispense.cu"],
    )  # fmt: skip
    bearer = secrets.token_urlsafe(32)
    Token.objects.create(
        client=software, user=user, access_digest=token_digest(bearer), issued_at=int(time.time()),
        expires_in=3600, scope=software.scopes,
    )  # fmt: skip
    client = Client(headers={"Authorization": f"Bearer {bearer}"})
    backend = "PostgreSQL" if connection.vendor == "postgresql" else "SQLite"
    remaining = iter(prescriptions)

    def dispense() -> Any:
        document = next(remaining)
        body = {
            "resourceType": "MedicationDispense", "status": "completed", "quantity": {"value": 1},
            "authorizingPrescription": [{"reference": f"MedicationRequest/{document.public_id}-1"}],
        }  # fmt: skip
        return client.post("/fhir/R4/MedicationDispense", body, content_type="application/fhir+json")

    calls = {
        "Patient read (baseline)": lambda: client.get(f"/fhir/R4/Patient/{patient.public_id}"),
        "Patient search by identifier": lambda: client.post(
            "/fhir/R4/Patient/_search",
            f"identifier={patient.matricule}",
            content_type="application/x-www-form-urlencoded",
        ),
        f"DocumentReference search ({args.documents} documents)": lambda: client.get(
            "/fhir/R4/DocumentReference", {"patient": str(patient.public_id)}
        ),
        "MedicationDispense create": dispense,
    }
    baseline = 0.0
    for name, call in calls.items():
        assert call().status_code < 300, name
        times, queries = [], set()
        for _ in range(args.requests - 1 if name == "MedicationDispense create" else args.requests):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = call()
                times.append((time.perf_counter() - started) * 1000)
            assert response.status_code < 300, (name, response.content[:200])
            queries.add(len(captured))
        p50 = percentile(times, 0.5)
        baseline = baseline or p50
        print(
            f"{backend} {name}: p50 {p50:.1f} ms, p95 {percentile(times, 0.95):.1f} ms, "
            f"{p50 / baseline:.2f}x the baseline, SQL queries {sorted(queries)}"
        )


if __name__ == "__main__":
    main()
