"""Benchmark: the national simulation read through a hot standby, with dispensations written on
the primary meanwhile (issue 16).

PostgreSQL only (on SQLite it prints one line saying so and exits 0). In a fresh database
(``--database``, dropped at the end unless ``--keep``):

1. ``simulate_national --scale F`` (rows/s, sizes per table);
2. a hot standby of the primary's cluster (``tests/replica/standby.py``, as the replica tests
   start it: ``pg_basebackup`` of the WHOLE cluster on the primary, so the script refuses a
   cluster larger than ``--max-cluster-mib``), and ``ESANTE_REPLICA_DATABASE_URL`` pointed at it
   (the settings' defaults otherwise: lag at most 5 s, checked every second);
3. the portal's lag-tolerant reads, full stack (Django's test client): the patient search
   (matricule; name + first name), the record page's document lists (*Vue documentaire* of the
   longest record) and the patient's « Mon journal d'accès », ``--requests`` each, in
   alternating rounds with the routing off (primary alone) and on (standby), first idle, then
   while another process records dispensations on the primary as fast as it can
   (``prescription_mark_dispensed`` on the simulation's open prescriptions, audited, the
   follow-up job queued);
4. per read: p50 / p95 server time, CPU time of this process, SQL queries and their time on the
   primary and on the standby (proof of where each read went), the router's counters
   (``esante_replica_reads_total``, ``esante_replica_fallback_total``); dispensations/s alone, with
   the reads on the primary, with the reads on the standby; the replica lag sampled every 0.2 s
   during the write load (WAL bytes not yet replayed, ``pg_stat_replication.replay_lag``), and the
   WAL written meanwhile — by the whole cluster: PostgreSQL counts no WAL per database, so on a
   shared server the other databases' writes are in it (an upper bound of the load's own).

Primary and standby share this machine's cores: the standby adds no capacity here. What this
measures is where the reads go, what each costs on either server, and the lag under load.

    python benchmarks/national_replica.py --scale 0.001 --database postgres://postgres@127.0.0.1:5432/esante_bench
    python benchmarks/national_replica.py --scale 0.01 --requests 40 --database postgres://…/esante_bench
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # tests.replica.standby
sys.path.insert(0, str(HERE.parent / "src"))
from _setup import fresh_django, percentile  # noqa: E402

READS = ("patient_search", "record_documents", "patient_journal")


def writer(pharmacist_id: int) -> None:
    """The write load (a process of its own): dispensations by one pharmacist, one after the
    other, until SIGTERM or no open prescription is left; prints ``ready``, then one JSON line."""
    import django

    django.setup()
    import logging

    from esante.accounts.models import Professional
    from esante.dispensing.services import prescription_mark_dispensed
    from esante.documents.models import Prescription

    logging.disable(logging.WARNING)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    pharmacist = Professional.objects.get(pk=pharmacist_id)
    ids = list(
        Prescription.objects.filter(
            dispensation_state="open", document__patient__access_grants__professional=pharmacist
        )
        .values_list("pk", flat=True)
        .distinct()
        .order_by("pk")
    )
    print("ready", flush=True)
    times: list[float] = []
    errors: dict[str, int] = {}
    for pk in ids:
        if stop.is_set():
            break
        prescription = Prescription.objects.select_related("document__patient").get(pk=pk)
        try:
            prescription_mark_dispensed(
                prescription=prescription, pharmacist=pharmacist, kind="full", based_on_version=0,
                public_url="https://edocuments.example.lu",
            )  # fmt: skip
            times.append(time.time())
        except Exception as error:  # noqa: BLE001 - counted and reported
            name = f"{type(error).__name__} {getattr(error, 'code', '')}".strip()
            errors[name] = errors.get(name, 0) + 1
    print(json.dumps({"times": times, "errors": errors, "exhausted": not stop.is_set()}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=0.01)
    parser.add_argument("--requests", type=int, default=40, help="requests per read and mode")
    parser.add_argument("--rounds", type=int, default=2, help="alternations primary / standby")
    parser.add_argument("--database", default="")
    parser.add_argument("--keep", action="store_true", help="do not drop the database at the end")
    parser.add_argument("--max-cluster-mib", type=float, default=4096)
    parser.add_argument("--standby-shared-buffers", default="128MB")
    parser.add_argument("--writer", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.writer:
        writer(args.writer)
        return
    if not args.database.startswith("postgres"):
        print("SQLite national_replica: skipped (a hot standby needs PostgreSQL: --database postgres://…)")
        return
    sys.path.insert(0, str(HERE.parent))
    from tests.replica.standby import Standby

    url = urlsplit(args.database)
    name = url.path.lstrip("/")
    primary = {
        "HOST": url.hostname or "127.0.0.1",
        "PORT": url.port or 5432,
        "USER": url.username or "postgres",
    }
    standby = Standby(primary, shared_buffers=args.standby_shared_buffers)
    os.environ["ESANTE_REPLICA_DATABASE_URL"] = (
        f"postgres://{primary['USER']}@127.0.0.1:{standby.port}/{name}"
    )
    work: Path | None = None
    try:
        work = fresh_django(args.database)
        run(args, standby)
    finally:
        from django.db import connections

        connections.close_all()
        standby.remove()
        if not args.keep:
            subprocess.run(
                ["psql", "-h", primary["HOST"], "-p", str(primary["PORT"]), "-U", primary["USER"], "-qc",
                 f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
                check=False,
            )  # fmt: skip
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


class Stats:
    """One read in one mode: its samples, merged over the rounds."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.queries: dict[str, list[int]] = {"default": [], "replica": []}
        self.sql_ms: dict[str, list[float]] = {"default": [], "replica": []}

    def line(self) -> str:
        def alias(a: str) -> str:
            counts = sorted(set(self.queries[a]))
            return f"{counts} in {percentile(self.sql_ms[a], 0.5):.1f} ms"

        return (
            f"p50 {percentile(self.wall, 0.5):.1f} ms, p95 {percentile(self.wall, 0.95):.1f} ms, "
            f"CPU p50 {percentile(self.cpu, 0.5):.1f} ms; SQL p50 primary {alias('default')}, "
            f"standby {alias('replica')}"
        )


def routed() -> dict[tuple[str, str], float]:
    from esante.core.replica import FALLBACK_REASONS, REPLICA_FALLBACKS, REPLICA_READS

    counts = {}
    for read in READS:
        for database in ("primary", "replica"):
            counts[(read, database)] = REPLICA_READS.labels(read=read, database=database)._value.get()
        for reason in FALLBACK_REASONS:
            counts[(read, f"fallback {reason}")] = REPLICA_FALLBACKS.labels(
                read=read, reason=reason
            )._value.get()
    return counts


def run(args: argparse.Namespace, standby: Any) -> None:
    import datetime
    import logging
    import random

    from django.conf import settings
    from django.db import connections
    from django.db.models import Count
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone
    from national import sizes

    from esante.access.models import AccessGrant
    from esante.accounts.models import Professional, User
    from esante.core.replica import monitor
    from esante.demo.national import simulate_national
    from esante.documents.models import Document, Prescription
    from esante.espace.models import PatientAccount
    from esante.patients.models import Patient

    logging.disable(logging.WARNING)
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.ESANTE_SEARCH_RATE_LIMIT = 10**9
    out = "PostgreSQL"

    started = time.perf_counter()
    report = simulate_national(scale=args.scale, actor_label="benchmark")
    elapsed = time.perf_counter() - started
    total = sum(report.rows.values())
    print(
        f"{out} load at scale {args.scale}: {total} rows in {elapsed:.1f} s ({total / elapsed:,.0f} rows/s)"
    )
    for table in ("documents", "audit_events"):
        rows, seconds = report.rows[table], report.seconds[table]
        print(f"{out} load {table}: {rows} rows, {rows / seconds if seconds else 0:,.0f} rows/s")
    sizes(out)

    # The fixtures: the longest record and a doctor with a current grant on it, the patient's
    # account, a pharmacist with a current grant on every patient with an open prescription.
    now = timezone.now()
    patient_id, documents = (
        Document.objects.values("patient_id")
        .annotate(n=Count("id"))
        .order_by("-n")
        .values_list("patient_id", "n")
    ).first()  # type: ignore[misc]
    patient = Patient.objects.get(pk=patient_id)
    doctor = Professional.objects.filter(profession="doctor").order_by("pk").first()
    pharmacist = Professional.objects.filter(profession="pharmacist").order_by("pk").first()
    assert doctor is not None and pharmacist is not None
    later = now + datetime.timedelta(days=1)
    AccessGrant.objects.create(
        professional=doctor, patient=patient, mode="care", motif="Banc", expires_at=later
    )
    open_patients = set(
        Prescription.objects.filter(dispensation_state="open").values_list("document__patient_id", flat=True)
    )
    AccessGrant.objects.bulk_create(
        AccessGrant(professional=pharmacist, patient_id=pk, mode="care", motif="Délivrance", expires_at=later)
        for pk in open_patients
    )
    open_prescriptions = Prescription.objects.filter(dispensation_state="open").count()
    user = User.objects.create_user(username=f"patient:{patient.matricule}", password=None)
    PatientAccount.objects.create(user=user, patient=patient, state="active", email="p@example.lu")
    rng = random.Random(5)
    samples = list(Patient.objects.order_by("?").values_list("matricule", "birth_name", "first_names")[:500])

    cluster = standby.cluster_bytes()
    if cluster > args.max_cluster_mib * 2**20:
        raise SystemExit(
            f"the cluster holds {cluster / 2**20:.0f} MiB (every database on it), more than "
            f"--max-cluster-mib {args.max_cluster_mib:g}: pg_basebackup would copy all of it"
        )
    started = time.perf_counter()
    standby.create()
    print(
        f"{out} standby: pg_basebackup of the cluster ({cluster / 2**20:.0f} MiB) and start in "
        f"{time.perf_counter() - started:.1f} s (shared_buffers {args.standby_shared_buffers})"
    )

    professional = Client()
    professional.force_login(doctor.user)
    journal = Client()
    journal.force_login(user)
    record_url = f"/edocuments/patient/{patient.public_id}/?vue=documentaire"

    def search_matricule() -> None:
        response = professional.post("/edocuments/recherche/", {"matricule": rng.choice(samples)[0]})
        assert response.status_code == 200, response.status_code

    def search_name() -> None:
        _, last, given = rng.choice(samples)
        response = professional.post("/edocuments/recherche/", {"name": last[:4], "first_name": given[:2]})
        assert response.status_code == 200, response.status_code

    def record() -> None:
        response = professional.get(record_url)
        assert response.status_code == 200, response.status_code

    def journal_page() -> None:
        response = journal.get("/patient/journal/")
        assert response.status_code == 200, response.status_code

    reads = {
        "search page POST by matricule": search_matricule,
        "search page POST by name + first name": search_name,
        f"record page, Vue documentaire ({documents} documents)": record,
        "patient journal, first page": journal_page,
    }

    def measure(stats: dict[str, Stats], count: int) -> None:
        for label, call in reads.items():
            call()  # warm: the monitor's first check, caches
            for _ in range(count):
                with (
                    CaptureQueriesContext(connections["default"]) as on_primary,
                    CaptureQueriesContext(connections["replica"]) as on_standby,
                ):
                    t0, c0 = time.perf_counter(), time.process_time()
                    call()
                    wall, cpu = (time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000
                entry = stats.setdefault(label, Stats())
                entry.wall.append(wall)
                entry.cpu.append(cpu)
                for alias, captured in (("default", on_primary), ("replica", on_standby)):
                    entry.queries[alias].append(len(captured))
                    entry.sql_ms[alias].append(
                        sum(float(q["time"]) for q in captured.captured_queries) * 1000
                    )

    def modes(phase: str) -> dict[str, list[tuple[float, float]]]:
        """The reads in alternating rounds, routing off then on; prints and returns the windows."""
        stats: dict[str, dict[str, Stats]] = {"primary alone": {}, "reads on the standby": {}}
        windows: dict[str, list[tuple[float, float]]] = {mode: [] for mode in stats}
        before = routed()
        per_round = max(1, args.requests // args.rounds)
        for _ in range(args.rounds):
            for mode, on in (("primary alone", False), ("reads on the standby", True)):
                settings.ESANTE_REPLICA = on
                monitor.forget()
                t0 = time.time()
                measure(stats[mode], per_round)
                windows[mode].append((t0, time.time()))
        settings.ESANTE_REPLICA = False
        for mode, by_read in stats.items():
            for label, entry in by_read.items():
                print(f"{out} {phase}, {mode}: {label}: {entry.line()}")
        after = routed()
        moved = ", ".join(
            f"{read} {after[(read, 'replica')] - before[(read, 'replica')]:.0f} standby / "
            f"{after[(read, 'primary')] - before[(read, 'primary')]:.0f} primary"
            for read in READS
        )
        fell = {
            k: after[k] - before[k] for k in after if k[1].startswith("fallback") and after[k] > before[k]
        }
        print(f"{out} {phase}, routed with the routing on: {moved}; fallbacks {fell or 'none'}")
        return windows

    modes("idle")

    # The write load, in a process of its own.
    env = {k: v for k, v in os.environ.items() if k != "ESANTE_REPLICA_DATABASE_URL"}
    env.update(ESANTE_QUEUE="sqlite", ESANTE_QUEUE_NAME=f"esante-bench-{os.getpid()}")
    load = subprocess.Popen(  # noqa: S603
        [sys.executable, __file__, "--writer", str(pharmacist.pk)], stdout=subprocess.PIPE, text=True, env=env
    )
    samples_lag: list[Any] = []
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            try:
                samples_lag.append(standby.lag())
            except Exception:  # noqa: BLE001,S112 - a missed sample
                continue
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    try:
        assert load.stdout is not None
        assert load.stdout.readline().strip() == "ready"
        sampler.start()
        alone_from = time.time()
        time.sleep(10)
        alone = (alone_from, time.time())
        windows = modes("under write load")
    finally:
        load.send_signal(signal.SIGTERM)
        sampling.set()
        if sampler.is_alive():
            sampler.join()
        try:
            result_line = load.communicate(timeout=120)[0].strip().splitlines()
        except subprocess.TimeoutExpired:
            load.kill()
            load.wait()
            raise
    result = json.loads(result_line[-1])
    times = result["times"]

    def rate(spans: list[tuple[float, float]]) -> str:
        seconds = sum(b - a for a, b in spans)
        count = sum(1 for t in times for a, b in spans if a <= t < b)
        return f"{count / seconds:.1f}/s ({count} in {seconds:.0f} s)"

    print(
        f"{out} dispensations on the primary (1 process, {open_prescriptions} open prescriptions): "
        f"alone {rate([alone])}; reads on the primary {rate(windows['primary alone'])}; "
        f"reads on the standby {rate(windows['reads on the standby'])}; "
        f"errors {result['errors'] or 'none'}"
        f"{'; ran out of open prescriptions' if result['exhausted'] else ''}"
    )

    def wal(spans: list[tuple[float, float]]) -> tuple[int, int, float]:
        """WAL the primary wrote in the windows, the dispensations committed and the seconds,
        each between the first and the last lag sample taken in each window."""
        written = count = 0
        seconds = 0.0
        for a, b in spans:
            inside = [s for s in samples_lag if a <= s.at < b]
            if len(inside) >= 2:
                written += inside[-1].primary_lsn - inside[0].primary_lsn
                count += sum(1 for t in times if inside[0].at <= t < inside[-1].at)
                seconds += inside[-1].at - inside[0].at
        return written, count, seconds

    for label, spans in (
        ("the dispensations alone", [alone]),
        ("the dispensations and the reads on the primary", windows["primary alone"]),
        ("the dispensations and the reads on the standby", windows["reads on the standby"]),
    ):
        written, count, seconds = wal(spans)
        per = (
            f", at most {written / count / 1024:.1f} KiB per dispensation"
            if count and label.endswith("alone")
            else ""
        )
        print(
            f"{out} WAL written by the primary's whole cluster (other databases' too), {label}: "
            f"{written / max(seconds, 1e-9) / 1024:.0f} KiB/s{per}"
        )
    behind = [s.behind_bytes for s in samples_lag]
    lags = [s.replay_lag_seconds for s in samples_lag if s.replay_lag_seconds is not None]
    if behind:
        print(
            f"{out} replica lag under the write load ({len(behind)} samples, every 0.2 s): WAL not replayed "
            f"p50 {percentile(behind, 0.5) / 1024:.0f} KiB, p95 {percentile(behind, 0.95) / 1024:.0f} KiB, "
            f"max {max(behind) / 1024:.0f} KiB; replay_lag "
            + (
                f"p50 {percentile(lags, 0.5) * 1000:.0f} ms, p95 {percentile(lags, 0.95) * 1000:.0f} ms, "
                f"max {max(lags) * 1000:.0f} ms"
                if lags
                else "none reported"
            )
        )
    started = time.perf_counter()
    standby.wait_caught_up(timeout=120)
    print(f"{out} standby caught up {time.perf_counter() - started:.2f} s after the load stopped")


if __name__ == "__main__":
    main()
