"""Benchmark: the FHIR API's transactions against an authenticated Patient read, on a live server.

A pharmacist's token (stored as the authorization server stores it), a patient with 1,000
documents and an access. Four kinds of request: ``GET Patient/{id}`` (the baseline: token check,
gate, one audit event), Patient search by identifier (POST _search), DocumentReference search
(first page of 20 of the 1,000), MedicationDispense create (one line of a fresh prescription
each time; it queues its certified copy for the job queue, as on the portal, and no consumer
runs here: see ``dispensation.py`` for the copy). They are sent round-robin, so that each kind
meets the same load on a shared machine: first through Django's test client in this process
(the full middleware stack, no network), which counts their SQL queries; then over HTTP to
``esante serve`` on a free local port (gunicorn, one worker, one thread, no job consumer, no
leader), one request at a time. Reports p50 / p95, the ratio to the baseline of the same run
(goal: at most 1.5x) and the SQL query counts (goal: constant; the server's own are not visible
from here, they are the same code's).

    python benchmarks/fhir_api.py
    python benchmarks/fhir_api.py --database postgres://postgres@127.0.0.1:5432/esante_bench
"""

import argparse
import datetime
import http.client
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from _setup import fresh_django, percentile  # noqa: E402

ESANTE = Path(sys.executable).with_name("esante")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def served(work: Path, *, environment: dict[str, str]) -> Iterator[str]:
    """``esante serve`` on the benchmark's data dir and database, on a free port; its URL."""
    port = free_port()
    log = (work / "server.log").open("wb")
    process = subprocess.Popen(  # noqa: S603
        [str(ESANTE), "serve", "--port", str(port), "--workers", "1", "--threads", "1", "--no-jobs",
         "--no-leader"],
        env={**os.environ, **environment}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"esante serve exited: {(work / 'server.log').read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("esante serve did not listen within 60 s") from None
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(timeout=10)
        log.close()


def over_http(address: str, bearer: str) -> Callable[..., tuple[int, bytes]]:
    """A sender of one request to the live server (a new connection each time, as a client
    without keep-alive); returns the status and the body."""

    def send(method: str, path: str, body: str = "", content_type: str = "") -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(address, timeout=30)
        headers = {"Authorization": f"Bearer {bearer}", "Accept": "application/fhir+json"}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            connection.request(method, path, body=body.encode() if body else None, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    return send


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--database", default="")
    args = parser.parse_args()
    work = fresh_django(args.database)
    import json
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
    from esante.fhir.outcome import FHIR_JSON
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
    for n in range(2 * (args.requests + 1)):  # a fresh prescription for each dispensation
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

    def dispense_body() -> str:
        document = next(remaining)
        return json.dumps(
            {
                "resourceType": "MedicationDispense",
                "status": "completed",
                "quantity": {"value": 1},
                "authorizingPrescription": [{"reference": f"MedicationRequest/{document.public_id}-1"}],
            }  # fmt: skip
        )

    documents_path = "/fhir/R4/DocumentReference?" + urllib.parse.urlencode(
        {"patient": str(patient.public_id)}
    )
    requests: dict[str, tuple[str, str, Callable[[], str], str]] = {
        "Patient read (baseline)": ("GET", f"/fhir/R4/Patient/{patient.public_id}", str, ""),
        "Patient search by identifier": (
            "POST", "/fhir/R4/Patient/_search", lambda: f"identifier={patient.matricule}",
            "application/x-www-form-urlencoded",
        ),
        f"DocumentReference search ({args.documents} documents)": ("GET", documents_path, str, ""),
        "MedicationDispense create": ("POST", "/fhir/R4/MedicationDispense", dispense_body, FHIR_JSON),
    }  # fmt: skip

    def in_process(method: str, path: str, body: str, content_type: str) -> tuple[int, bytes]:
        if method == "GET":
            response = client.get(path)
        else:
            response = client.post(path, body, content_type=content_type)
        return response.status_code, response.content

    def report(how: str, send: Callable[..., tuple[int, bytes]], queries: dict[str, set[int]]) -> None:
        """Sends the requests round-robin (each kind after the other, ``--requests`` rounds), so
        that every kind meets the same load on a shared machine; prints each kind's figures."""
        times: dict[str, list[float]] = {name: [] for name in requests}
        for _ in range(args.requests + 1):  # the first round warms up
            for name, (method, path, body, content_type) in requests.items():
                with CaptureQueriesContext(connection) as captured:
                    started = time.perf_counter()
                    status, content = send(method, path, body(), content_type)
                    times[name].append((time.perf_counter() - started) * 1000)
                assert status < 300, (name, status, content[:300])
                if how == "in-process":
                    queries[name].add(len(captured))
        baseline = percentile(times[next(iter(requests))][1:], 0.5)
        for name, measured in times.items():
            p50 = percentile(measured[1:], 0.5)
            print(
                f"{backend} {how} {name}: p50 {p50:.1f} ms, p95 {percentile(measured[1:], 0.95):.1f} ms, "
                f"{p50 / baseline:.2f}x the baseline, SQL queries {sorted(queries[name])}"
            )

    # Through Django's test client in this process (the full middleware stack, no network): the
    # SQL queries of each request, and its time without the server's own costs.
    queries: dict[str, set[int]] = {name: set() for name in requests}
    report("in-process", in_process, queries)
    connection.close()
    # Then over HTTP, to the platform as an operator serves it.
    with served(work, environment={"ESANTE_SEARCH_RATE_LIMIT": str(10**9)}) as address:
        report("over HTTP", over_http(address, bearer), queries)


if __name__ == "__main__":
    main()
