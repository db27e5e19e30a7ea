"""Benchmark: dispensations as the pharmacist waits, before and after the job queue, and the time
until the certified copy is ready.

A pharmacist with an access, prescriptions of one line each (disjoint: no two attempts on the same
prescription), ``prescription_mark_dispensed`` called as the portal calls it, in 1 or more threads:

- **before** (``ESANTE_QUEUE=immediate``): the eDispensation CDA and the certified copy (WeasyPrint)
  are made in the call, as before the queue;
- **after** (``sqlite`` or ``redis``): the call commits and queues the job; a consumer
  (``esante run_jobs``, a process of its own) makes the copy. Dispensations/s as the pharmacist
  waits, then how fast the consumer drains the burst (copies/s);
- **copy latency**: dispensations paced at a rate the consumer sustains; time from the commit to
  the copy committed (p50 / p95; goal: p95 ≤ 2 s).

    python benchmarks/dispensation.py
    python benchmarks/dispensation.py --database postgres://postgres@127.0.0.1:5432/esante_bench --threads 4
    python benchmarks/dispensation.py --queue redis --redis-url redis://127.0.0.1:6379/14
"""

import argparse
import datetime
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from _setup import fresh_django, percentile  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default="")
    parser.add_argument("--queue", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--before", type=int, default=10, help="dispensations with the copy in the call")
    parser.add_argument("--after", type=int, default=100, help="dispensations with the copy queued")
    parser.add_argument("--paced", type=int, default=15, help="dispensations for the copy latency")
    parser.add_argument("--rate", type=float, default=1.0, help="paced dispensations per second")
    parser.add_argument("--threads", type=int, default=1, help="pharmacists at once")
    parser.add_argument("--workers", type=int, default=2, help="the consumer's workers")
    args = parser.parse_args()
    os.environ["ESANTE_QUEUE"] = args.queue
    os.environ["ESANTE_QUEUE_NAME"] = f"esante-bench-{os.getpid()}"
    if args.queue == "redis":
        os.environ["ESANTE_REDIS_URL"] = args.redis_url
    fresh_django(args.database)
    import logging

    from django.db import connection, connections
    from django.utils import timezone

    from esante.access.models import AccessGrant
    from esante.accounts.models import Professional, User
    from esante.core import jobs
    from esante.dispensing.models import CertifiedCopy
    from esante.dispensing.services import prescription_mark_dispensed
    from esante.documents.models import Document, Prescription, PrescriptionLine
    from esante.patients.models import Patient

    logging.disable(logging.WARNING)
    backend = "PostgreSQL" if connection.vendor == "postgresql" else "SQLite"
    now = timezone.now()
    patient = Patient.objects.create(
        matricule="1904112000166", birth_name="PIG", first_names="Peppa",
        birth_date=datetime.date(1904, 11, 20), sex="F", platform_identifier="1700000151",
    )  # fmt: skip
    pharmacists = []
    for n in range(args.threads):
        user = User.objects.create_user(username=f"1980010100{n}", password=None)
        pharmacist = Professional.objects.create(
            user=user, matricule=f"1980010100{n}", profession="pharmacist", last_name="Kremer",
            first_name="Claudine", email=f"c{n}@example.lu", state="active", organisation="Pharmacie",
        )  # fmt: skip
        AccessGrant.objects.create(
            professional=pharmacist, patient=patient, mode="care", motif="Délivrance",
            granted_at=now, expires_at=now + datetime.timedelta(days=1),
        )  # fmt: skip
        pharmacists.append(pharmacist)

    def prescriptions(count: int) -> list[Prescription]:
        made = []
        for n in range(count):
            document = Document.objects.create(
                patient=patient, type_code="57833-6", class_code="prescription", title=f"Ordonnance {n}",
                author_name="Dr Weber", source_system="eServices", binder="medication",
                media_type="text/plain", content="x", sha256="0" * 64, size=1,
                clinical_at=now - datetime.timedelta(days=1),
            )  # fmt: skip
            prescription = Prescription.objects.create(
                document=document, prescribed_at=now - datetime.timedelta(days=1), prescriber_name="Dr Weber"
            )
            PrescriptionLine.objects.create(
                prescription=prescription, position=1, medication="AMOXICILLINE", quantity=3
            )
            made.append(Prescription.objects.select_related("document__patient").get(pk=prescription.pk))
        return made

    def dispense(prescription: Prescription, pharmacist: Professional) -> Any:
        return prescription_mark_dispensed(
            prescription=prescription, pharmacist=pharmacist, kind="full", based_on_version=0,
            public_url="https://edocuments.example.lu",
        )  # fmt: skip

    def burst(batch: list[Prescription]) -> tuple[float, list[tuple[int, float]]]:
        """All of ``batch`` by ``args.threads`` pharmacists at once; (seconds, [(id, committed)])."""
        done: list[tuple[int, float]] = []
        lock = threading.Lock()
        shares = [batch[n :: args.threads] for n in range(args.threads)]

        def work(share: list[Prescription], pharmacist: Professional) -> None:
            try:
                for prescription in share:
                    dispensation = dispense(prescription, pharmacist)
                    with lock:
                        done.append((dispensation.pk, time.monotonic()))
            finally:
                connections.close_all()

        started = time.monotonic()
        threads = [threading.Thread(target=work, args=pair) for pair in zip(shares, pharmacists, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.monotonic() - started, done

    def ready_times(committed: dict[int, float], timeout: float) -> dict[int, float]:
        """When each dispensation's copy was first seen committed (polled every 10 ms)."""
        seen: dict[int, float] = {}
        deadline = time.monotonic() + timeout
        while len(seen) < len(committed) and time.monotonic() < deadline:
            waiting = [pk for pk in committed if pk not in seen]
            found = CertifiedCopy.objects.filter(dispensation_id__in=waiting).values_list(
                "dispensation_id", flat=True
            )
            at = time.monotonic()
            for pk in found:
                seen[pk] = at
            time.sleep(0.01)
        return seen

    rows: list[tuple[str, str]] = []
    # Before: the copy in the call (WeasyPrint loaded first, as in a warm worker).
    jobs.queue.use("immediate")
    dispense(prescriptions(1)[0], pharmacists[0])
    seconds, _ = burst(prescriptions(args.before))
    before = args.before / seconds
    rows.append(("dispensations/s, copy in the request (before)", f"{before:.1f}"))

    # After: a consumer of its own, then the burst.
    jobs.queue.use_settings()
    consumer = subprocess.Popen(  # noqa: S603
        [
            str(Path(sys.executable).with_name("esante")),
            "run_jobs",
            "--workers",
            str(args.workers),
            "--no-periodic",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        warm = dispense(prescriptions(1)[0], pharmacists[0])
        ready_times({warm.pk: time.monotonic()}, timeout=120)  # the consumer has loaded WeasyPrint
        batch = prescriptions(args.after)
        seconds, done = burst(batch)
        after = args.after / seconds
        rows.append((f"dispensations/s, copy queued ({args.queue}) (after)", f"{after:.1f}"))
        rows.append(("  ratio after / before", f"{after / before:.0f}x"))
        committed = dict(done)
        started = min(committed.values())
        seen = ready_times(committed, timeout=600)
        drained = max(seen.values()) - started if seen else float("nan")
        rows.append(
            (
                f"copies/s, the consumer draining the burst ({args.workers} workers)",
                f"{len(seen) / drained:.1f}",
            )
        )

        # Copy latency at a sustainable pace, watched while the dispensations go on.
        paced: dict[int, float] = {}
        ready: dict[int, float] = {}
        finished = threading.Event()

        def watch() -> None:
            try:
                while not finished.is_set() or len(ready) < len(paced):
                    waiting = [pk for pk in list(paced) if pk not in ready]
                    found = CertifiedCopy.objects.filter(dispensation_id__in=waiting).values_list(
                        "dispensation_id", flat=True
                    )
                    at = time.monotonic()
                    for pk in found:
                        ready[pk] = at
                    if finished.is_set() and time.monotonic() > finished_at + 120:
                        return
                    time.sleep(0.01)
            finally:
                connections.close_all()

        finished_at = float("inf")
        watcher = threading.Thread(target=watch)
        watcher.start()
        for prescription in prescriptions(args.paced):
            started = time.monotonic()
            dispensation = dispense(prescription, pharmacists[0])
            paced[dispensation.pk] = time.monotonic()
            time.sleep(max(0.0, 1 / args.rate - (time.monotonic() - started)))
        finished_at = time.monotonic()
        finished.set()
        watcher.join()
        latencies = [ready[pk] - paced[pk] for pk in paced if pk in ready]
        if latencies:
            rows.append(
                (
                    f"copy ready after the commit, {args.rate:g}/s (p50 / p95; goal p95 <= 2 s)",
                    f"{percentile(latencies, 0.5):.2f} s / {percentile(latencies, 0.95):.2f} s",
                )
            )
        missing = len(paced) - len(latencies)
        if missing:
            rows.append(("copies not ready within 120 s", str(missing)))
    finally:
        consumer.send_signal(2)
        try:
            consumer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            consumer.kill()
        jobs.queue.flush()
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{backend} {name.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
