"""Benchmark: dispensations as the pharmacists wait, before and after the job queue, where their
time goes, and the time until the certified copy is ready.

``--clients`` pharmacists (4 by default: the issue's "4 workers"), each a process of its own as
a worker of ``esante serve`` is, each with its own access and its own prescriptions of one line
(disjoint: no two attempts on the same prescription), call ``prescription_mark_dispensed`` as the
portal and the API call it (with the access the request's gate checked, ``checked_access``;
``--no-gate-access`` reads it again in the service). HTTP, sessions and page rendering are not
part of the figure: this is the dispensation itself.

- **before** (``ESANTE_QUEUE=immediate``): the eDispensation CDA and the certified copy (WeasyPrint)
  are made in the call, as before the queue;
- **after** (``sqlite`` or ``redis``): the call commits and queues the job; a consumer
  (``esante run_jobs``, a process of its own) makes the copies. Dispensations/s as the pharmacists
  wait (and each call's p50 / p95), where the time of a call goes (the database's statements by
  kind, the audit chain head's lock, the commit, queuing the job, the rest in Python), then how
  fast the consumer drains the burst (copies/s) and how long the burst's copies took (from each
  commit: what a burst faster than the consumer costs);
- **CPU per copy**: ``--cost`` copies made in this process (the job alone: the CDA, the PDF,
  their records), their median processor time, and the cores of copy workers 200
  dispensations/s would need at that cost;
- **copy latency**: dispensations paced at ``--rate`` (by default 80 % of the drain rate just
  measured: a rate the consumer sustains), time from the commit to the copy committed (p50 / p95;
  goal: p95 <= 2 s).

The audit trail is chained as in production (``--chaining``; by default ``batched`` on
PostgreSQL, as the README recommends, and ``inline`` on SQLite). In batched chaining the chainer
runs as in production: ``esante sequence_log --every 0.2`` (what the leader's ``esante serve``
runs every ``ESANTE_AUDIT_CHAIN_SECONDS``), a process of its own during the whole run, and the
figures say how long after the burst the last event was chained. On PostgreSQL in batched mode
the burst is first run with inline chaining (no chainer, its jobs dropped) for comparison:
``--no-inline-comparison`` skips it.

    python benchmarks/dispensation.py
    python benchmarks/dispensation.py --database postgres://postgres@127.0.0.1:5432/esante_bench
    python benchmarks/dispensation.py --queue redis --redis-url redis://127.0.0.1:6379/14
    python benchmarks/dispensation.py --workers 2 --worker-type process
"""

import argparse
import collections
import datetime
import multiprocessing
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

#: Where a call's time goes: the kinds of statements, by what their SQL names.
KINDS = (
    ("prescription lock and line states (one round trip)", "FOR UPDATE", "SUM("),
    ("audit head lock", "audit_auditchainhead", "FOR UPDATE"),
    ("audit head update", "UPDATE", "audit_auditchainhead"),
    ("audit event insert", "INSERT", "audit_auditevent"),
    ("prescription lock", "documents_prescription", "FOR UPDATE"),
    ("line states", "documents_prescriptionline", "SUM"),
    ("dispensation writes", "INSERT", "dispensing_dispensation"),
    ("prescription update", "UPDATE", "documents_prescription"),
    ("copies superseded", "UPDATE", "dispensing_certifiedcopy"),
    ("savepoints", "SAVEPOINT", ""),
    ("BEGIN IMMEDIATE (SQLite: waiting for the write lock)", "BEGIN IMMEDIATE", ""),
)


def kind_of(sql: str) -> str:
    for name, first, second in KINDS:
        if first in sql and second in sql:
            return name
    return "other statements"


def client(args: Any, mode: str, pharmacist_id: int, grant_id: int, pks: list[int], start: Any) -> Any:
    """One pharmacist's process: dispenses ``pks`` one after the other once ``start`` is set;
    returns [(dispensation id, committed at, seconds)] and the time per component."""
    from django.db import connection, connections

    from esante.access.models import AccessGrant
    from esante.accounts.models import Professional
    from esante.core import jobs
    from esante.dispensing.services import prescription_mark_dispensed
    from esante.documents.models import Prescription

    connections.close_all()  # never the parent's connection
    if mode == "immediate":
        jobs.queue.use("immediate")
    else:
        jobs.queue.use_settings()
    pharmacist = Professional.objects.select_related("user").get(pk=pharmacist_id)
    grant = AccessGrant.objects.select_related("patient").get(pk=grant_id)
    prescriptions = list(Prescription.objects.select_related("document__patient").filter(pk__in=pks))
    spent: dict[str, float] = collections.defaultdict(float)
    counts: dict[str, int] = collections.defaultdict(int)

    def timed(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            spent[kind_of(sql)] += time.perf_counter() - began
            counts["statements"] += 1

    raw_commit = connection._commit

    def commit() -> None:
        began = time.perf_counter()
        try:
            raw_commit()
        finally:
            spent["commit"] += time.perf_counter() - began

    raw_enqueue = jobs.enqueue

    def enqueue(task: Any, *a: Any, **kw: Any) -> bool:
        began = time.perf_counter()
        try:
            return raw_enqueue(task, *a, **kw)
        finally:
            spent["queuing the job"] += time.perf_counter() - began

    connection._commit = commit  # type: ignore[method-assign]
    jobs.enqueue = enqueue  # type: ignore[assignment]
    done = []
    start.wait()
    with connection.execute_wrapper(timed):
        for prescription in prescriptions:
            began = time.perf_counter()
            dispensation = prescription_mark_dispensed(
                prescription=prescription, pharmacist=pharmacist, kind="full", based_on_version=0,
                public_url="https://edocuments.example.lu",
                checked_access=None if args.no_gate_access else (grant.patient, grant),
            )  # fmt: skip
            took = time.perf_counter() - began
            spent["call"] += took
            done.append((dispensation.pk, time.monotonic(), took))
    connections.close_all()
    return done, dict(spent), dict(counts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", default="")
    parser.add_argument("--queue", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--before", type=int, default=20, help="dispensations with the copy in the call")
    parser.add_argument("--after", type=int, default=800, help="dispensations with the copy queued")
    parser.add_argument("--paced", type=int, default=30, help="dispensations for the copy latency")
    parser.add_argument("--cost", type=int, default=8, help="copies made in-process for their CPU time")
    parser.add_argument("--rate", type=float, default=0.0, help="paced per s (0: 80%% of the drain)")
    parser.add_argument("--clients", "--threads", type=int, default=4, help="pharmacists at once (processes)")
    parser.add_argument("--no-gate-access", action="store_true", help="the service reads the access again")
    parser.add_argument("--workers", type=int, default=2, help="the consumer's workers")
    parser.add_argument("--worker-type", choices=["thread", "process"], default="thread")
    parser.add_argument(
        "--no-copies", action="store_true", help="the burst alone: no consumer, no copy in the call"
    )
    parser.add_argument(
        "--chaining", choices=["auto", "inline", "batched"], default="auto",
        help="audit chaining (auto: batched on PostgreSQL, inline on SQLite)",
    )  # fmt: skip
    parser.add_argument("--chain-seconds", type=float, default=0.2, help="the chainer's interval (batched)")
    parser.add_argument("--no-inline-comparison", action="store_true", help="batched: no inline burst first")
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
    from esante.documents.models import Document, Prescription, PrescriptionLine
    from esante.patients.models import Patient

    logging.disable(logging.WARNING)
    backend = "PostgreSQL" if connection.vendor == "postgresql" else "SQLite"
    chaining = args.chaining
    if chaining == "auto":
        chaining = "batched" if connection.vendor == "postgresql" else "inline"
    from django.conf import settings

    from esante.audit.models import AuditEvent

    settings.AUDIT_CHAINING = "inline"  # until the comparison ran (the clients inherit it)
    now = timezone.now()
    patient = Patient.objects.create(
        matricule="1904112000166", birth_name="PIG", first_names="Peppa",
        birth_date=datetime.date(1904, 11, 20), sex="F", platform_identifier="1700000151",
    )  # fmt: skip
    pharmacists: list[tuple[int, int]] = []
    for n in range(args.clients):
        user = User.objects.create_user(username=f"1980010100{n}", password=None)
        pharmacist = Professional.objects.create(
            user=user, matricule=f"1980010100{n}", profession="pharmacist", last_name="Kremer",
            first_name="Claudine", email=f"c{n}@example.lu", state="active", organisation="Pharmacie",
        )  # fmt: skip
        grant = AccessGrant.objects.create(
            professional=pharmacist, patient=patient, mode="care", motif="Délivrance",
            granted_at=now, expires_at=now + datetime.timedelta(days=1),
        )  # fmt: skip
        pharmacists.append((pharmacist.pk, grant.pk))

    def prescriptions(count: int) -> list[int]:
        documents = Document.objects.bulk_create(
            Document(
                patient=patient,
                type_code="57833-6",
                class_code="prescription",
                title=f"Ordonnance {n}",
                author_name="Dr Weber",
                source_system="eServices",
                binder="medication",
                media_type="text/plain",
                content="x",
                sha256="0" * 64,
                size=1,
                clinical_at=now - datetime.timedelta(days=1),
            )  # fmt: skip
            for n in range(count)
        )
        made = Prescription.objects.bulk_create(
            Prescription(document=d, prescribed_at=now - datetime.timedelta(days=1), prescriber_name="Dr W")
            for d in documents
        )
        PrescriptionLine.objects.bulk_create(
            PrescriptionLine(prescription=p, position=1, medication="AMOXICILLINE", quantity=3) for p in made
        )
        return [p.pk for p in made]

    context = multiprocessing.get_context("fork")

    def burst(mode: str, batch: list[int], clients: int) -> tuple[float, list[Any], dict[str, float], int]:
        """All of ``batch`` by ``clients`` pharmacists at once: (seconds, [(id, committed, took)],
        seconds per component, statements)."""
        connections.close_all()  # the children open their own
        with context.Manager() as manager, context.Pool(clients) as pool:
            start = manager.Event()
            waiting = [
                pool.apply_async(client, (args, mode, *pharmacists[n], batch[n::clients], start))
                for n in range(clients)
            ]
            time.sleep(1.0)  # every child has loaded its prescriptions
            began = time.monotonic()
            start.set()
            results = [result.get(timeout=3600) for result in waiting]
        done = [row for rows, _, _ in results for row in rows]
        seconds = max(at for _, at, _ in done) - began
        spent: dict[str, float] = collections.defaultdict(float)
        statements = 0
        for _, shares, counts in results:
            for name, value in shares.items():
                spent[name] += value
            statements += counts.get("statements", 0)
        return seconds, done, spent, statements

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

    from esante.dispensing.services import prescription_mark_dispensed

    def dispense(pk: int, follow_up: bool = True) -> Any:
        pharmacist = Professional.objects.select_related("user").get(pk=pharmacists[0][0])
        grant = AccessGrant.objects.select_related("patient").get(pk=pharmacists[0][1])
        return prescription_mark_dispensed(
            prescription=Prescription.objects.select_related("document__patient").get(pk=pk),
            pharmacist=pharmacist, kind="full", based_on_version=0,
            public_url="https://edocuments.example.lu", checked_access=(grant.patient, grant),
            follow_up=follow_up,
        )  # fmt: skip

    def breakdown(
        label: str, seconds: float, done: list[Any], spent: dict[str, float], statements: int
    ) -> None:
        rate = len(done) / seconds
        rows.append(
            (f"dispensations/s, copy queued ({args.queue}), {label}, {args.clients} clients", f"{rate:.1f}")
        )
        took = [row[2] for row in done]
        rows.append(
            (
                "  one call as the pharmacist waits (p50 / p95)",
                f"{percentile(took, 0.5) * 1000:.1f} ms / {percentile(took, 0.95) * 1000:.1f} ms",
            )
        )
        rows.append(("  statements per dispensation", f"{statements / len(done):.1f}"))
        total = spent.pop("call")
        accounted = sum(spent.values())
        spent["Python (Django, the service, audit hashing)"] = total - accounted
        for name, value in sorted(spent.items(), key=lambda item: -item[1]):
            rows.append(
                (
                    f"  time per call: {name}",
                    f"{value / len(done) * 1000:.2f} ms ({value / total:.0%})",
                )
            )

    rows: list[tuple[str, str]] = []
    chainer = None

    def start_chainer() -> Any:
        """``esante sequence_log --every`` as in production, once the public log has caught up."""
        from esante.audit.models import AuditChainHead
        from esante.tlog.models import LogState

        settings.AUDIT_CHAINING = os.environ["ESANTE_AUDIT_CHAINING"] = "batched"
        os.environ["ESANTE_AUDIT_CHAIN_SECONDS"] = str(args.chain_seconds)
        process = subprocess.Popen(  # noqa: S603
            [
                str(Path(sys.executable).with_name("esante")),
                "sequence_log",
                "--every",
                str(args.chain_seconds),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            state = LogState.objects.values_list("last_sequence", flat=True).first()
            if state == AuditChainHead.objects.get(pk=1).sequence:
                break
            time.sleep(0.1)
        return process

    compared: dict[str, float] = {}
    if chaining == "batched" and not args.no_inline_comparison:
        # The same burst, no consumer running (its jobs dropped), with inline chaining (every
        # event locks the chain head) then batched chaining, for comparison.
        for mode in ("inline", "batched"):
            if mode == "batched":
                chainer = start_chainer()
            jobs.queue.use_settings()
            seconds, done, spent, statements = burst(args.queue, prescriptions(args.after), args.clients)
            compared[mode] = len(done) / seconds
            breakdown(
                f"{mode} chaining, no copy made meanwhile (comparison)", seconds, done, spent, statements
            )
            jobs.queue.flush()
        rows.append(("  ratio batched / inline chaining", f"{compared['batched'] / compared['inline']:.2f}x"))
    elif chaining == "batched":
        chainer = start_chainer()

    def chained_after(last_commit: float) -> tuple[int, float]:
        """(events still waiting for the chainer when looked at first, seconds from ``last_commit``
        until none waits)."""
        waiting = first = AuditEvent.objects.filter(sequence__isnull=True).count()
        deadline = time.monotonic() + 120
        while waiting and time.monotonic() < deadline:
            time.sleep(0.01)
            waiting = AuditEvent.objects.filter(sequence__isnull=True).count()
        return first, (time.monotonic() - last_commit) if not waiting else float("nan")

    # Before: the copy in the call (WeasyPrint loaded and used once before the clients fork, as in
    # a warm worker).
    warm_before = prescriptions(1)
    batch_before = prescriptions(args.before)
    batch_after = prescriptions(args.after)
    warm_after = prescriptions(1)
    batch_paced = prescriptions(args.paced)
    batch_cost = prescriptions(args.cost)
    before = float("nan")
    if not args.no_copies:
        jobs.queue.use("immediate")
        dispense(warm_before[0])
        seconds, _, _, _ = burst("immediate", batch_before, args.clients)
        before = args.before / seconds
        rows.append((f"dispensations/s, copy in the call (before), {args.clients} clients", f"{before:.1f}"))
        # What one copy costs in processor time (the job alone, in this warm process: the CDA,
        # the PDF, their records), and what the goal would take in copy workers at that cost.
        from esante.dispensing.jobs import dispensation_complete

        costs = []
        for pk in batch_cost:
            dispensation = dispense(pk, follow_up=False)
            began = time.process_time()
            dispensation_complete.call_local(dispensation.pk, public_url="https://edocuments.example.lu")
            costs.append(time.process_time() - began)
        cost = percentile(costs, 0.5)
        rows.append(
            (
                f"CPU per copy (the job: CDA, PDF, records; median of {len(costs)})",
                f"{cost * 1000:.0f} ms: one core makes {1 / cost:.1f} copies/s; 200 dispensations/s "
                f"need {200 * cost:.0f} cores of copy workers",
            )
        )

    # After: a consumer of its own, then the burst.
    jobs.queue.use_settings()
    consumer = (
        None
        if args.no_copies
        else subprocess.Popen(  # noqa: S603
            [
                str(Path(sys.executable).with_name("esante")),
                "run_jobs",
                "--workers",
                str(args.workers),
                "--worker-type",
                args.worker_type,
                "--no-periodic",
            ],
            stdout=subprocess.DEVNULL,
        )
    )
    try:
        if consumer is not None:
            warm = dispense(warm_after[0])
            ready_times({warm.pk: time.monotonic()}, timeout=120)  # the consumer has loaded WeasyPrint
        seconds, done, spent, statements = burst(args.queue, batch_after, args.clients)
        after = args.after / seconds
        breakdown(f"{chaining} chaining, copies made meanwhile (after)", seconds, done, spent, statements)
        if not args.no_copies:
            rows.append(("  ratio after / before", f"{after / before:.0f}x"))
        committed = {pk: at for pk, at, _ in done}
        if chainer is not None:
            waiting, lag = chained_after(max(committed.values()))
            rows.append(
                (
                    f"  audit events chained (esante sequence_log --every {args.chain_seconds:g})",
                    f"{waiting} waiting after the burst; the last chained {lag:.2f} s after the last commit",
                )
            )
        if consumer is None:
            return _print(backend, rows)
        started = min(committed.values())
        seen = ready_times(committed, timeout=1800)
        drained = max(seen.values()) - started if seen else float("nan")
        drain_rate = len(seen) / drained
        rows.append(
            (
                f"copies/s, the consumer draining the burst ({args.workers} {args.worker_type} workers)",
                f"{drain_rate:.1f}",
            )
        )
        burst_latency = [seen[pk] - committed[pk] for pk in committed if pk in seen]
        if burst_latency:
            rows.append(
                (
                    f"  copy ready after the commit, burst of {args.after} at {after:.0f}/s (p50 / p95)",
                    f"{percentile(burst_latency, 0.5):.1f} s / {percentile(burst_latency, 0.95):.1f} s",
                )
            )

        # Copy latency at a sustainable pace, watched while the dispensations go on.
        rate = args.rate or max(0.5, round(0.8 * drain_rate, 1))
        paced: dict[int, float] = {}
        ready: dict[int, float] = {}
        finished = threading.Event()
        finished_at = float("inf")

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

        watcher = threading.Thread(target=watch)
        watcher.start()
        for pk in batch_paced:
            began = time.monotonic()
            dispensation = dispense(pk)
            paced[dispensation.pk] = time.monotonic()
            time.sleep(max(0.0, 1 / rate - (time.monotonic() - began)))
        finished_at = time.monotonic()
        finished.set()
        watcher.join()
        latencies = [ready[pk] - paced[pk] for pk in paced if pk in ready]
        if latencies:
            rows.append(
                (
                    f"copy ready after the commit, {rate:g}/s (p50 / p95; goal p95 <= 2 s)",
                    f"{percentile(latencies, 0.5):.2f} s / {percentile(latencies, 0.95):.2f} s",
                )
            )
        missing = len(paced) - len(latencies)
        if missing:
            rows.append(("copies not ready within 120 s", str(missing)))
    finally:
        for process in (consumer, chainer):
            if process is None:
                continue
            process.send_signal(2 if process is consumer else 15)  # huey stops on SIGINT
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        jobs.queue.flush()
    _print(backend, rows)


def _print(backend: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{backend} {name.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
