"""Benchmark: `esante verify_audit` over N events (default 1,000,000), public log included.

Builds a valid chain of N events in a fresh database at bulk speed (``audit_record_many``: the
same canonical content, hashes and MACs as ``audit_record``, inserted by ``COPY`` on PostgreSQL
and ``executemany`` on SQLite), signs its head, puts every event into the public log (salted
leaves, tiles and a signed checkpoint every ``TLOG_BATCH_SIZE`` leaves, as the sequencer writes
them, in bulk), then times the real `esante verify_audit` command, which checks the chain, the
signed heads and the tree against the checkpoints.

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
        for _ in range(args.runs):
            started = time.perf_counter()
            result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            elapsed = time.perf_counter() - started
            print(
                f"{backend}: verify_audit over {args.events:,} events"
                f"{f' (--processes {args.processes})' if args.processes > 1 else ''}: "
                f"{elapsed:.1f} s (exit {result.returncode})"
            )
            print(result.stdout.strip() or result.stderr.strip())
    finally:
        if args.data_dir is None or args.drop:
            shutil.rmtree(work, ignore_errors=True)
            if name:
                psql(f"DROP DATABASE IF EXISTS {name}")


if __name__ == "__main__":
    main()
