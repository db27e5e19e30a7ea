"""Benchmark: audited actions per second with 1, 4 and 16 concurrent writers, against the single
chain's figure measured in the same run.

Every audited action is ``audit_record`` in a transaction of its own: one durable commit per
event, with the chain's head row locked (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's
``BEGIN IMMEDIATE`` takes the database's write lock), as every action of the platform does.
Nothing is weakened: no ``synchronous=off``, no batching of the events' own commits.

- ``single chain``: one writer, no sequencer: the reference figure.
- ``N writers + sequencer``: N writer processes (forked, each with its own connection) write for
  the given time while the public log's sequencer (``sequence_batch``, its own process) puts the
  events into the Merkle tree in batches; the figure is the events committed per second, then
  how long the sequencer took to catch up once the writers stopped, and the events per second
  that reached a signed checkpoint (written / (writing time + catch-up)).

    python benchmarks/audit_throughput.py [--seconds S] [--writers 1,4,16]
    python benchmarks/audit_throughput.py --database postgres://postgres@127.0.0.1:5432/esante_bench
"""

import argparse
import multiprocessing
import sys
import time
from multiprocessing.synchronize import Event

from _setup import fresh_django


def _writer(deadline: float, counts: "multiprocessing.Queue[int]", start: Event) -> None:
    from django.db import connection

    from esante.audit.catalogue import AuditAction
    from esante.audit.services import audit_record

    start.wait()
    written = 0
    while time.monotonic() < deadline:
        audit_record(action=AuditAction.LOGOUT, actor_label="bench", details={"n": written})
        written += 1
    connection.close()
    counts.put(written)


def _sequencer(stop: Event, start: Event) -> None:
    from django.db import connection

    from esante.tlog.sequencer import sequence_batch

    start.wait()
    while not stop.is_set():
        if not sequence_batch().added:
            time.sleep(0.05)
    connection.close()


def _sequenced() -> int:
    from esante.tlog.storage import log_state

    return log_state().size


def _written() -> int:
    from esante.audit.models import AuditChainHead

    return AuditChainHead.objects.get(pk=1).sequence


def run(writers: int, seconds: float, *, sequencer: bool) -> tuple[int, float, float]:
    """(events written, writing seconds, catch-up seconds of the sequencer)."""
    from django.db import connections

    from esante.tlog.sequencer import sequence_pending

    sequence_pending()
    before = _written()
    connections.close_all()  # never a connection shared across fork
    context = multiprocessing.get_context("fork")
    counts: multiprocessing.Queue[int] = context.Queue()
    start, stop = context.Event(), context.Event()
    started = time.monotonic()
    deadline = started + 0.5 + seconds
    children = [context.Process(target=_writer, args=(deadline, counts, start)) for _ in range(writers)]
    if sequencer:
        sequencing = context.Process(target=_sequencer, args=(stop, start))
        sequencing.start()
    for child in children:
        child.start()
    time.sleep(max(0.0, started + 0.5 - time.monotonic()))
    start.set()
    for child in children:
        child.join()
    elapsed = time.monotonic() - (started + 0.5)
    total = sum(counts.get() for _ in children)
    catch_up = 0.0
    if sequencer:
        caught = time.monotonic()
        while _sequenced() < before + total:
            time.sleep(0.02)
        catch_up = time.monotonic() - caught
        stop.set()
        sequencing.join()
    connections.close_all()
    return total, elapsed, catch_up


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--writers", default="1,4,16")
    parser.add_argument("--database", default="")
    args = parser.parse_args()
    fresh_django(args.database)
    backend = "PostgreSQL" if args.database else "SQLite"
    total, elapsed, _ = run(1, args.seconds, sequencer=False)
    single = total / elapsed
    label = "single chain, 1 writer (durable commit per event, locked head)"
    print(f"{backend}: {label}  {single:,.0f} events/s")
    for writers in (int(n) for n in args.writers.split(",")):
        total, elapsed, catch_up = run(writers, args.seconds, sequencer=True)
        rate = total / elapsed
        print(
            f"{backend}: {writers} writers + sequencer  {rate:,.0f} audited actions/s "
            f"({rate / single:.2f} x the single chain); in a signed checkpoint {catch_up:.1f} s after "
            f"the last write: {total / (elapsed + catch_up):,.0f} events/s end to end"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
