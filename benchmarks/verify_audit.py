"""Benchmark: `esante verify_audit` over N events (default 1,000,000), public log included.

Builds a valid chain of N events in a fresh database at bulk speed (``audit_record_many``: the
same canonical content, hashes and MACs as ``audit_record``, inserted by ``COPY`` on PostgreSQL
and ``executemany`` on SQLite), signs its head, puts every event into the public log (salted
leaves, tiles and a signed checkpoint every ``TLOG_BATCH_SIZE`` leaves, as the sequencer writes
them, in bulk), then times the real `esante verify_audit` command, which checks the chain, the
signed heads and the tree against the checkpoints. Each run first times the floor: reading the
stored canonical bytes and hashing them, nothing else, in as many processes; both lines give the
wall time, the CPU time (user + system) and the load average they ran under (and, on a local
PostgreSQL, the CPU of the server's backends that ended meanwhile).

    python benchmarks/verify_audit.py
    python benchmarks/verify_audit.py --database postgres://postgres@127.0.0.1:5432/esante_bench
    python benchmarks/verify_audit.py --data-dir /tmp/trail --processes 2   # builds once, reused

Without ``--data-dir`` what it builds is dropped at the end (the temporary directory, the
PostgreSQL database). With ``--data-dir`` the chain is built on the first run only (the
directory holds the SQLite database, the keys and the heads; for PostgreSQL, keep the same
``--database`` as well, and drop it yourself when done: ``--drop`` does), so that runs can be
timed against each other on the same trail.
"""

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = r"""
import datetime, secrets, sys, time
import django
django.setup()
from django.conf import settings
from django.db import connection, transaction
from esante.audit.anchoring import audit_anchor
from esante.audit.catalogue import AuditAction
from esante.audit.models import AuditEvent
from esante.audit.services import audit_record_many
from esante.tlog import leaf, merkle, tiles
from esante.tlog.models import LogCheckpoint, LogLeaf, LogState, LogTile
from esante.tlog.sequencer import sign_checkpoint

count, batch = int(sys.argv[1]), 20_000
started = time.perf_counter()
for first in range(0, count, batch):
    audit_record_many(
        action=AuditAction.RECORD_OPEN,
        entries=[(None, {"n": n}) for n in range(first, min(first + batch, count))],
        actor_label="bench",
    )
events = time.perf_counter()
audit_anchor(initial=True)
signed = time.perf_counter()
# The public log, as the sequencer would write it, in bulk.
every = settings.TLOG_BATCH_SIZE
hashes, checkpoints = [], []
now = datetime.datetime.now(datetime.UTC)
stack = []
rows = AuditEvent.objects.order_by("sequence").values_list("id", "canonical").iterator(chunk_size=20_000)
leaves = []
for index, (event_id, canonical) in enumerate(rows):
    salt = secrets.token_bytes(leaf.SALT_BYTES)
    commitment = leaf.commitment(salt, canonical)
    leaves.append(LogLeaf(index=index, event_id=event_id, salt=salt, commitment=commitment))
    hashes.append(merkle.leaf_hash(commitment))
    if len(leaves) == 20_000:
        LogLeaf.objects.bulk_create(leaves)
        leaves = []
if leaves:
    LogLeaf.objects.bulk_create(leaves)
memory = tiles.MemoryTiles(tiles.append_hashes(0, hashes, lambda level, index: b""))
LogTile.objects.bulk_create(
    [LogTile(level=level, index=index, hashes=data) for (level, index), data in memory.tiles.items()],
    batch_size=5_000,
)
sizes = list(range(every, len(hashes), every)) + [len(hashes)]
LogCheckpoint.objects.bulk_create(
    [
        LogCheckpoint(size=size, root=(root := tiles.tree_root(memory, size)),
                      note=sign_checkpoint(size, root), created_at=now)
        for size in sizes
    ]
)
last = AuditEvent.objects.order_by("-sequence").values_list("sequence", "hash", "mac").first()
LogState.objects.update_or_create(
    pk=1,
    defaults=dict(size=len(hashes), root=tiles.tree_root(memory, len(hashes)), last_sequence=last[0],
                  last_hash=last[1], last_keyed=last[2] is not None),
)
if connection.vendor == "postgresql":
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
print(f"built {count} events in {events - started:.0f} s, signed their head in {signed - events:.0f} s, "
      f"their {len(sizes)} checkpoints in {time.perf_counter() - signed:.0f} s")
"""

# The floor, measured in the same run: reading each event's stored canonical bytes and hashing
# them (SHA-256), nothing else, by ranges of the sequence in as many processes as verify_audit.
FLOOR = r"""
import hashlib, multiprocessing, sys
import django
django.setup()
from django.db import connection, connections
from esante.audit.models import AuditChainHead

def hash_range(bounds):
    after, upto = bounds
    sha = hashlib.sha256
    with connection.cursor() as cursor:
        while after < upto:
            until = min(after + 10_000, upto)
            cursor.execute(
                "SELECT canonical FROM audit_auditevent WHERE sequence > %s AND sequence <= %s",
                [after, until],
            )
            for (canonical,) in cursor.fetchall():
                sha(canonical.encode("utf-8")).hexdigest()
            after = until
    return upto - bounds[0]

processes, total = int(sys.argv[1]), AuditChainHead.objects.get(pk=1).sequence
ranges = [(after, min(after + 65_536, total)) for after in range(0, total, 65_536)]
if processes > 1:
    connections.close_all()
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        assert sum(pool.map(hash_range, ranges)) == total
else:
    assert sum(map(hash_range, ranges)) == total
"""


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Wall time and CPU time (user + system, the process and its children) of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, result


def _server_cpu(database: str) -> float | None:
    """The CPU time of the PostgreSQL server's ended backends so far (the postmaster's children),
    seconds; None when not readable (another host). Counts every session's backends that ended:
    on a shared server, an upper bound of this run's."""
    query = "SELECT pg_backend_pid()"
    try:
        pid = subprocess.run(
            ["psql", database, "-tAc", query], capture_output=True, text=True, check=True
        ).stdout.strip()
        parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
        fields = Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, subprocess.CalledProcessError, IndexError):
        return None
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--database", default="")
    parser.add_argument("--data-dir", type=Path, default=None, help="build once there, then reuse")
    parser.add_argument("--processes", type=int, default=1, help="verify_audit --processes")
    parser.add_argument("--runs", type=int, default=1, help="time verify_audit that many times")
    parser.add_argument("--drop", action="store_true", help="with --data-dir: drop it all after the runs")
    args = parser.parse_args()
    work = args.data_dir or Path(tempfile.mkdtemp(prefix="esante-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    built_marker = work / f"built-{args.events}"
    env = dict(
        os.environ, ESANTE_DATA_DIR=str(work), ESANTE_DEBUG="1", DJANGO_SETTINGS_MODULE="esante.settings"
    )
    name = args.database.rsplit("/", 1)[1] if args.database else ""
    if args.database:
        env["DATABASE_URL"] = args.database

    def psql(sql: str) -> None:
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], check=True)

    esante = str(Path(sys.executable).with_name("esante"))
    try:
        if not built_marker.exists():
            if name:
                psql(f"DROP DATABASE IF EXISTS {name}")
                psql(f"CREATE DATABASE {name}")
            subprocess.run([esante, "migrate", "-v0"], env=env, check=True)
            subprocess.run([sys.executable, "-c", SCRIPT, str(args.events)], env=env, check=True)
            built_marker.touch()
        command = [esante, "verify_audit", "-v0"]
        if args.processes > 1:
            command += ["--processes", str(args.processes)]
        backend = "PostgreSQL" if name else "SQLite"
        processes = f" (--processes {args.processes})" if args.processes > 1 else ""
        floor = [sys.executable, "-c", FLOOR, str(args.processes)]
        for _ in range(args.runs):
            # The floor and the command back to back, each with the load average it ran under.
            for label, run in (
                ("floor: read + SHA-256 of the canonical bytes", floor),
                ("verify_audit", command),
            ):
                load = os.getloadavg()[0]
                server = _server_cpu(args.database) if name else None
                elapsed, cpu, result = _timed(run, env)
                server_after = _server_cpu(args.database) if name else None
                on_server = (
                    f", server backends {server_after - server:.1f} s CPU (all sessions' that ended)"
                    if server is not None and server_after is not None
                    else ""
                )
                print(
                    f"{backend}: {label} over {args.events:,} events{processes}: {elapsed:.1f} s wall, "
                    f"{cpu:.1f} s CPU (user + sys){on_server}, load {load:.1f} (exit {result.returncode})"
                )
                if run is command or result.returncode:
                    print(result.stdout.strip() or result.stderr.strip())
    finally:
        if args.data_dir is None or args.drop:
            shutil.rmtree(work, ignore_errors=True)
            if name:
                psql(f"DROP DATABASE IF EXISTS {name}")


if __name__ == "__main__":
    main()
