"""Benchmark: `esante sequence_log` putting N audit events (default 200,000) into the public log.

Builds a valid chain of N events in bulk in a fresh database (the same canonical content, hashes
and MACs as `audit_record`), then times the real `esante sequence_log` command: chain and MAC
checks, salts and commitments, leaves, tiles and one signed checkpoint per batch.

    python benchmarks/tlog_sequencer.py [--events N] [--batch B]
    python benchmarks/tlog_sequencer.py --database postgres://postgres@127.0.0.1:5432/esante_bench
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from verify_audit import SCRIPT as BUILD

BUILD_ONLY = BUILD.replace("audit_anchor(initial=True)\n", "")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--database", default="")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="esante-bench-"))
    env = dict(
        os.environ, ESANTE_DATA_DIR=str(work), ESANTE_DEBUG="1", DJANGO_SETTINGS_MODULE="esante.settings"
    )
    if args.database:
        env["DATABASE_URL"] = args.database
        name = args.database.rsplit("/", 1)[1]
        for sql in (f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"):
            subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], check=True)
    esante = str(Path(sys.executable).with_name("esante"))
    subprocess.run([esante, "migrate", "-v0"], env=env, check=True)
    subprocess.run([sys.executable, "-c", BUILD_ONLY, str(args.events)], env=env, check=True)
    started = time.perf_counter()
    result = subprocess.run(
        [esante, "sequence_log", "--batch", str(args.batch)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    backend = "PostgreSQL" if args.database else "SQLite"
    print(
        f"{backend}: sequence_log of {args.events:,} events in batches of {args.batch}: {elapsed:.1f} s, "
        f"{args.events / elapsed:,.0f} events/s (exit {result.returncode})"
    )
    print((result.stdout.strip().splitlines() or [result.stderr.strip()])[-1])


if __name__ == "__main__":
    main()
