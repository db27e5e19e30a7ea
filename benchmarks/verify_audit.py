"""Benchmark: `esante verify_audit` over N events (default 1,000,000).

Builds a valid chain of N events directly in a fresh database (computing the same canonical
content and hashes as `audit_record`, inserted in bulk for speed), signs its head, then times
the real `esante verify_audit` command.

    python benchmarks/verify_audit.py
    python benchmarks/verify_audit.py --database postgres://postgres@127.0.0.1:5432/esante_bench
    python benchmarks/verify_audit.py --data-dir /tmp/trail --processes 2   # builds once, reused

With ``--data-dir`` the chain is built on the first run only (the directory holds the SQLite
database, the keys and the heads; for PostgreSQL, keep the same ``--database`` as well), so that
runs can be timed against each other on the same trail.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = r"""
import datetime, hashlib, sys
import django
django.setup()
from esante.audit.models import AuditChainHead, AuditEvent
from esante.audit.services import GENESIS_HASH, canonical_bytes
from esante.audit.anchoring import audit_anchor
from esante.audit.keys import event_mac
from django.db import transaction

count = int(sys.argv[1])
prev = GENESIS_HASH
start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
batch = []
for seq in range(1, count + 1):
    at = start + datetime.timedelta(seconds=seq)
    payload = {"seq": seq, "time": at.isoformat(), "actor": None, "actor_label": "bench",
               "action": "record.open", "outcome": "success", "patient": None, "object_type": "",
               "object_id": "", "motif": "Soins", "client_address": None, "details": {"n": seq},
               "prev": prev}
    canonical = canonical_bytes(payload)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    batch.append(AuditEvent(sequence=seq, created_at=at, actor_label="bench", action="record.open",
                            outcome="success", motif="Soins", details={"n": seq}, canonical=canonical,
                            prev_hash=prev, hash=digest, mac=event_mac(digest)))
    prev = digest
    if len(batch) == 20000 or seq == count:
        with transaction.atomic():
            AuditEvent.objects.bulk_create(batch)
        batch = []
AuditChainHead.objects.filter(pk=1).update(sequence=count, hash=prev)
audit_anchor(initial=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--database", default="")
    parser.add_argument("--data-dir", type=Path, default=None, help="build once there, then reuse")
    parser.add_argument("--processes", type=int, default=1, help="verify_audit --processes")
    args = parser.parse_args()
    work = args.data_dir or Path(tempfile.mkdtemp(prefix="esante-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    built_marker = work / f"built-{args.events}"
    env = dict(
        os.environ, ESANTE_DATA_DIR=str(work), ESANTE_DEBUG="1", DJANGO_SETTINGS_MODULE="esante.settings"
    )
    if args.database:
        env["DATABASE_URL"] = args.database
    esante = str(Path(sys.executable).with_name("esante"))
    if not built_marker.exists():
        if args.database:
            name = args.database.rsplit("/", 1)[1]
            for sql in (f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"):
                subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], check=True)
        subprocess.run([esante, "migrate", "-v0"], env=env, check=True)
        built = time.perf_counter()
        subprocess.run([sys.executable, "-c", SCRIPT, str(args.events)], env=env, check=True)
        print(f"built {args.events} events in {time.perf_counter() - built:.0f} s")
        if args.data_dir:
            built_marker.touch()
    command = [esante, "verify_audit", "-v0"]
    if args.processes > 1:
        command += ["--processes", str(args.processes)]
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    backend = "PostgreSQL" if args.database else "SQLite"
    print(f"{backend}: verify_audit over {args.events:,} events: {elapsed:.1f} s (exit {result.returncode})")
    print(result.stdout.strip() or result.stderr.strip())


if __name__ == "__main__":
    main()
