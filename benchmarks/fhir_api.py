"""Benchmark: the FHIR API's transactions against an authenticated Patient read, on a live server.

A pharmacist's token (stored as the authorization server stores it), a patient with 1,000
documents and an access. Four kinds of request: ``GET Patient/{id}`` (the baseline: token check,
gate, one audit event), Patient search by identifier (POST _search), DocumentReference search
(first page of 20 of the 1,000), MedicationDispense create (one line of a fresh prescription
each time; it queues its certified copy for the job queue, as on the portal, and no consumer
runs here: see ``dispensation.py`` for the copy). They are sent round-robin, so that each kind
meets the same load on a shared machine: first through Django's test client in this process
(the full middleware stack, no network, ``DEBUG`` off), which counts their SQL queries; then over
HTTP to ``esante serve`` on a free local port (gunicorn, one worker, one thread, no job consumer,
no leader), one request at a time. The server runs as in production: ``ESANTE_DEBUG`` off (no
query log), an explicit secret key, plain HTTP (``ESANTE_HTTPS=0``: no TLS terminator here); its
own queries are not visible from here, so the counts are the in-process ones (the same code).
Reports p50 / p95, the ratio to the baseline of the same run (goal: at most 1.5x) and the SQL
query counts (goal: constant).

``--compare SRC`` serves a second ``esante serve`` from another checkout's ``src`` (e.g. the
old ``main``) on the same database, and sends every request of a round to both servers, one
after the other (the order alternating each round): the two are measured under the same load.
``--compare-env NAME=VALUE`` sets a setting of the compared server only (``--compare src
--compare-env ESANTE_CONN_MAX_AGE=0``: this code with a connection per request).
``--chaining batched`` runs the servers (and the in-process part) with
``ESANTE_AUDIT_CHAINING=batched`` (no leader runs here: the events wait unchained, off the
request, as they wait for the sequencer). ``--redis URL`` queues the certified copies in Redis,
as production does (a queue of the run's own, emptied at the end), instead of the SQLite file of
the embedded default. The data dir is removed at the end of a run that went well.

    python benchmarks/fhir_api.py
    python benchmarks/fhir_api.py --database postgres://postgres@127.0.0.1:5432/esante_bench
    python benchmarks/fhir_api.py --compare ../main/src --chaining batched
    python benchmarks/fhir_api.py --database postgres://... --chaining batched --redis redis://127.0.0.1:6379/0
"""

import argparse
import contextlib
import datetime
import http.client
import os
import secrets
import shutil
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
def served(
    work: Path, *, environment: dict[str, str], source: str = "", name: str = "server"
) -> Iterator[str]:
    """``esante serve`` on the benchmark's data dir and database, on a free port; its address.
    With ``source``, the ``esante`` package of that ``src`` directory is served instead."""
    port = free_port()
    log = (work / f"{name}.log").open("wb")
    if source:
        environment = {**environment, "PYTHONPATH": str(Path(source).resolve())}
    process = subprocess.Popen(  # noqa: S603
        [str(ESANTE), "serve", "--port", str(port), "--workers", "1", "--threads", "1", "--no-jobs",
         "--no-leader"],
        env={**os.environ, **environment}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"esante serve exited: {(work / f'{name}.log').read_text()[-2000:]}")
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


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--database", default="")
    parser.add_argument("--compare", default="", metavar="SRC", help="also serve this src directory's code")
    parser.add_argument(
        "--compare-env", action="append", default=[], metavar="NAME=VALUE",
        help="a setting of the compared server only (e.g. ESANTE_CONN_MAX_AGE=0)",
    )  # fmt: skip
    parser.add_argument("--chaining", choices=("inline", "batched"), default="inline")
    parser.add_argument("--show-queries", action="store_true", help="print each kind's SQL once")
    parser.add_argument(
        "--redis", default="", metavar="URL", help="queue the copies in this Redis (production's queue)"
    )
    args = parser.parse_args()
    os.environ["ESANTE_AUDIT_CHAINING"] = args.chaining
    if args.redis:
        # A queue of this run's own on a shared Redis, emptied at the end (no consumer runs).
        os.environ.update(ESANTE_REDIS_URL=args.redis, ESANTE_QUEUE_NAME=f"bench-fhir-{secrets.token_hex(4)}")
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
    # As served in production: no query log (the counts below capture the queries themselves).
    settings.DEBUG = False
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
    # A fresh prescription for each dispensation (of each server).
    for n in range(2 * (args.requests + 1) * (2 if args.compare else 1)):
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

    Sender = Callable[..., tuple[int, bytes]]

    def report(how: str, senders: dict[str, Sender], queries: dict[str, set[int]]) -> None:
        """Sends the requests round-robin (each kind after the other, ``--requests`` rounds; each
        request to every sender, their order alternating each round), so that every kind and
        every server meet the same load on a shared machine; prints each kind's figures."""
        times = {(who, name): [] for who in senders for name in requests}  # type: ignore[var-annotated]
        order = list(senders)
        for round_number in range(args.requests + 1):  # the first round warms up
            for name, (method, path, body, content_type) in requests.items():
                for who in order if round_number % 2 == 0 else reversed(order):
                    # (Its log holds at most 9,000 queries: emptied first, it never overflows.)
                    connection.queries_log.clear()
                    with CaptureQueriesContext(connection) as captured:
                        started = time.perf_counter()
                        status, content = senders[who](method, path, body(), content_type)
                        times[who, name].append((time.perf_counter() - started) * 1000)
                    assert status < 300, (who, name, status, content[:300])
                    if how == "in-process":
                        queries[name].add(len(captured))
                        if args.show_queries and round_number == 1:
                            print(f"--- {name}")
                            for query in captured.captured_queries:
                                print("   ", query["sql"][:200])
        for who in senders:
            label = f"{how} ({who})" if len(senders) > 1 else how
            baseline = percentile(times[who, next(iter(requests))][1:], 0.5)
            for name in requests:
                measured = times[who, name][1:]
                p50 = percentile(measured, 0.5)
                # The queries are counted in this process, of this code only.
                counted = f", SQL queries {sorted(queries[name])}" if who == "this" else ""
                print(
                    f"{backend} {label} {name}: p50 {p50:.1f} ms, p95 {percentile(measured, 0.95):.1f} ms, "
                    f"{p50 / baseline:.2f}x the baseline{counted}"
                )

    # Through Django's test client in this process (the full middleware stack, no network): the
    # SQL queries of each request, and its time without the server's own costs.
    queries: dict[str, set[int]] = {name: set() for name in requests}
    report("in-process", {"this": in_process}, queries)
    connection.close()
    print(f"{backend} in-process load average: {load_average()} (chaining {args.chaining})")
    # Then over HTTP, to the platform as an operator serves it: DEBUG off, an explicit secret key
    # (the one the data dir's events were written with), plain HTTP.
    environment = {
        "ESANTE_SEARCH_RATE_LIMIT": str(10**9),
        "ESANTE_DEBUG": "0",
        "ESANTE_SECRET_KEY": settings.SECRET_KEY,
        "ESANTE_HTTPS": "0",
        "ESANTE_ALLOW_FILE_OUTBOX": "1",
        "ESANTE_AUDIT_CHAINING": args.chaining,
    }
    queue = f"queue {'redis' if args.redis else 'sqlite'}"
    with contextlib.ExitStack() as stack:
        senders = {"this": over_http(stack.enter_context(served(work, environment=environment)), bearer)}
        if args.compare:
            senders["compared"] = over_http(
                stack.enter_context(
                    served(
                        work,
                        environment={**environment, **dict(item.split("=", 1) for item in args.compare_env)},
                        source=args.compare,
                        name="compared",
                    )
                ),
                bearer,
            )
        report("over HTTP", senders, queries)
    print(f"{backend} over HTTP load average: {load_average()} (chaining {args.chaining}, {queue})")
    if args.redis:
        from esante.core.jobs import queue as jobs

        jobs.flush()
    shutil.rmtree(work)  # the data dir, once all went well (kept with the servers' logs otherwise)


if __name__ == "__main__":
    main()
