"""Benchmark: audited actions per second with 1, 4 and 16 concurrent writers, inline and batched
chaining, against the single chain's figure measured in the same run.

Every audited action is ``audit_record`` in a transaction of its own: one durable commit per
event, as every action of the platform does. Nothing is weakened: no ``synchronous=off`` (SQLite
keeps the platform's WAL + ``synchronous=NORMAL``, PostgreSQL its ``synchronous_commit = on``), no
batching of the events' own commits.

- inline chaining (``ESANTE_AUDIT_CHAINING=inline``): each event locks the chain's head row
  (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` takes the database's
  write lock) until its commit;
- batched chaining (``batched``): each event is inserted without a lock; the sequencer chains the
  waiting events in batches (``esante.audit.chaining``) in the transaction that puts them into the
  Merkle tree and signs a checkpoint. Concurrent writers' commits are independent, and
  PostgreSQL's group commit shares their WAL flushes.

- ``single chain``: one writer, no sequencer: the reference figure.
- ``N writers + sequencer``: N writer processes (forked, each with its own connection) write for
  the given time while the public log's sequencer (``sequence_batch``, its own process) puts the
  events into the Merkle tree in batches (a pass every 0.2 s taking all that waits, as ``esante
  serve`` does in batched mode); the figure is the events committed per second, then how long the
  sequencer took to catch up once the writers stopped, the events per second that reached a signed
  checkpoint (written / (writing time + catch-up)), and how long after its write an event was in
  a signed checkpoint (median, 99th percentile, max: the checkpoint's time minus the event's).
- CPU per action: the writers' Python and their PostgreSQL backends' CPU (``/proc``), the
  sequencer's and its backend's, divided by the events written; the rates depend on what else the
  machine runs, this much less, and ``2 cores / CPU per action`` bounds the rate a CPU-bound run
  can reach. Django runs with ``DEBUG`` off, as in production (no record of every query).

    python benchmarks/audit_throughput.py [--seconds S] [--writers 1,4,16] [--modes inline,batched]
    python benchmarks/audit_throughput.py --database postgres://postgres@127.0.0.1:5432/esante_bench
"""

import argparse
import multiprocessing
import os
import sys
import time
from multiprocessing.synchronize import Event
from pathlib import Path

from _setup import fresh_django


def _backend_seconds() -> float:
    """CPU seconds used so far by this connection's PostgreSQL backend (0 on SQLite)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return 0.0
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _writer(deadline: float, counts: "multiprocessing.Queue[tuple[int, float, float]]", start: Event) -> None:
    from django.db import connection

    from esante.audit.catalogue import AuditAction
    from esante.audit.services import audit_record

    backend = _backend_seconds()
    start.wait()
    cpu, written = time.process_time(), 0
    while time.monotonic() < deadline:
        audit_record(action=AuditAction.LOGOUT, actor_label="bench", details={"n": written})
        written += 1
    cpu = time.process_time() - cpu
    backend = _backend_seconds() - backend
    connection.close()
    counts.put((written, cpu, backend))


def _sequencer(stop: Event, start: Event, cpus: "multiprocessing.Queue[tuple[float, float]]") -> None:
    from django.db import connection

    from esante.tlog.sequencer import sequence_pending

    backend = _backend_seconds()
    start.wait()
    cpu = time.process_time()
    while not stop.wait(PASS_SECONDS):  # as ``sequence_loop`` in ``esante serve``
        sequence_pending()
    cpus.put((time.process_time() - cpu, _backend_seconds() - backend))
    connection.close()


PASS_SECONDS = 0.2  # between the sequencer's passes (ESANTE_AUDIT_CHAIN_SECONDS)


def _latencies(after_index: int) -> list[float]:
    """Seconds from each event's write to the first signed checkpoint that covers it, for the
    leaves from ``after_index`` on."""
    import bisect

    from esante.tlog.models import LogCheckpoint, LogLeaf

    checkpoints = list(
        LogCheckpoint.objects.filter(size__gt=after_index).order_by("size").values_list("size", "created_at")
    )
    sizes = [size for size, _ in checkpoints]
    leaves = LogLeaf.objects.filter(index__gte=after_index).values_list("index", "event__created_at")
    latencies = []
    for index, written in leaves.iterator(chunk_size=5_000):
        covering = checkpoints[bisect.bisect_right(sizes, index)][1]
        latencies.append((covering - written).total_seconds())
    return latencies


def _sequenced() -> int:
    from esante.tlog.storage import log_state

    return log_state().size


def _written() -> int:
    from esante.audit.models import AuditChainHead

    return AuditChainHead.objects.get(pk=1).sequence


def run(
    writers: int, seconds: float, *, sequencer: bool, mode: str = "inline"
) -> tuple[int, float, float, list[float], tuple[float, float, float, float]]:
    """(events written, writing seconds, catch-up seconds of the sequencer, each event's seconds
    from its write to a signed checkpoint, CPU seconds: the writers' Python, their PostgreSQL
    backends', the sequencer's Python, its backend's)."""
    from django.conf import settings
    from django.db import connections

    from esante.tlog.sequencer import sequence_pending

    settings.AUDIT_CHAINING = mode  # inherited by the forked writers
    sequence_pending()
    before = _written()
    connections.close_all()  # never a connection shared across fork
    context = multiprocessing.get_context("fork")
    counts: multiprocessing.Queue[tuple[int, float, float]] = context.Queue()
    cpus: multiprocessing.Queue[tuple[float, float]] = context.Queue()
    start, stop = context.Event(), context.Event()
    started = time.monotonic()
    deadline = started + 0.5 + seconds
    children = [context.Process(target=_writer, args=(deadline, counts, start)) for _ in range(writers)]
    if sequencer:
        sequencing = context.Process(target=_sequencer, args=(stop, start, cpus))
        sequencing.start()
    for child in children:
        child.start()
    time.sleep(max(0.0, started + 0.5 - time.monotonic()))
    start.set()
    for child in children:
        child.join()
    elapsed = time.monotonic() - (started + 0.5)
    written = [counts.get() for _ in children]
    total = sum(count for count, _, _ in written)
    cpu = [sum(python for _, python, _ in written), sum(backend for _, _, backend in written), 0.0, 0.0]
    catch_up = 0.0
    if sequencer:
        caught = time.monotonic()
        while _sequenced() < before + total:
            time.sleep(0.02)
        catch_up = time.monotonic() - caught
        stop.set()
        cpu[2:] = cpus.get()
        sequencing.join()
    latencies = _latencies(before) if sequencer else []
    connections.close_all()
    return total, elapsed, catch_up, latencies, (cpu[0], cpu[1], cpu[2], cpu[3])


def _cpu_text(cpu: tuple[float, float, float, float], total: int) -> str:
    """CPU per audited action, which the machine's load changes less than the rates: the writers'
    Python, their database backends (PostgreSQL), the sequencer and its backend; then what it
    would allow on this machine's cores were they all ours."""
    writers, writer_db, sequencer, sequencer_db = (seconds / total * 1e3 for seconds in cpu)
    whole = writers + writer_db + sequencer + sequencer_db
    cores = os.cpu_count() or 1
    return (
        f"CPU per action {whole:.3f} ms (writers {writers:.3f} + their backends {writer_db:.3f}, "
        f"sequencer {sequencer:.3f} + its backend {sequencer_db:.3f}): at most {cores / whole * 1e3:,.0f}/s "
        f"on {cores} cores"
    )


def main() -> None:
    from _setup import percentile

    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--writers", default="1,4,16")
    parser.add_argument("--modes", default="inline,batched")
    parser.add_argument("--database", default="")
    args = parser.parse_args()
    fresh_django(args.database)
    from django.conf import settings

    settings.DEBUG = False  # as in production: no record of every query (``ESANTE_DEBUG`` above)
    backend = "PostgreSQL" if args.database else "SQLite"
    total, elapsed, _, _, cpu = run(1, args.seconds, sequencer=False)
    single = total / elapsed
    label = "single chain, 1 writer (durable commit per event, locked head)"
    print(f"{backend}: {label}  {single:,.0f} events/s; {_cpu_text(cpu, total)}")
    for mode in args.modes.split(","):
        for writers in (int(n) for n in args.writers.split(",")):
            total, elapsed, catch_up, latencies, cpu = run(writers, args.seconds, sequencer=True, mode=mode)
            rate = total / elapsed
            delay = (
                f"; write to signed checkpoint p50 {percentile(latencies, 0.5):.2f} s, "
                f"p99 {percentile(latencies, 0.99):.2f} s, max {max(latencies):.2f} s"
                if latencies
                else ""
            )
            print(
                f"{backend}: {mode} chaining, {writers} writers + sequencer  {rate:,.0f} audited actions/s "
                f"({rate / single:.2f} x the single chain); in a signed checkpoint {catch_up:.1f} s after "
                f"the last write: {total / (elapsed + catch_up):,.0f} events/s end to end{delay}; "
                f"{_cpu_text(cpu, total)}"
            )
            sys.stdout.flush()


if __name__ == "__main__":
    main()
