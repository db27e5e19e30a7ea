"""``make bench``: runs every benchmark script of this folder, on SQLite and on PostgreSQL, and
prints one table.

Each ``benchmarks/*.py`` (but this file and ``_*.py``) runs in a process of its own, with a fresh
database (the scripts make their own): once without ``--database`` (SQLite) and, when the script
takes ``--database`` and PostgreSQL answers, once more on ``--postgres`` (a database that is
dropped and created again). By default the sizes are reduced so that the whole run takes minutes;
``--full`` runs the scripts' own sizes (the issue's: 1.2 million patients, 1 million audit events).
Each line a script prints becomes a row of the table (operation, figure: the line cut at its
first run of two spaces, else at its first ": "); a script that fails gives a row saying so, and
the run exits 1.

    python benchmarks/run.py
    python benchmarks/run.py --full --only search_patients --only verify_audit
    python benchmarks/run.py --no-postgres
"""

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: Reduced sizes of the default run (``--full`` uses each script's own defaults).
QUICK: dict[str, list[str]] = {
    "audit_throughput": ["--seconds", "3"],
    "dispensation": ["--before", "10", "--after", "100", "--paced", "15"],
    "fhir_api": ["--documents", "1000", "--requests", "30"],
    "import_patients": ["--rows", "50000", "--compare-rows", "200000"],
    "national": ["--scale", "0.001", "--requests", "20"],
    # A standby of the whole PostgreSQL cluster (pg_basebackup): about 2 min at this size, loaded box.
    "national_replica": ["--scale", "0.001", "--requests", "10"],
    "patient_journal": ["--events", "20000", "--requests", "50"],
    "pdf_inspect": ["--pages", "10"],
    "record_page": ["--documents", "1000", "--requests", "50"],
    "search_patients": ["--patients", "50000", "--searches", "100"],
    "verify_audit": ["--events", "20000"],
}
#: Further runs of a script when Redis answers on 127.0.0.1:6379 (the job queue's production storage).
WITH_REDIS: dict[str, list[str]] = {"dispensation": ["--queue", "redis"]}
BACKEND_PREFIX = re.compile(r"^(SQLite|PostgreSQL)\b[:\s]*")


def split(line: str) -> tuple[str, str]:
    """A printed line as (operation, figure): cut at the first run of 2+ spaces, else at ": "."""
    line = BACKEND_PREFIX.sub("", line.strip())
    parts = re.split(r"\s{2,}", line, maxsplit=1)
    if len(parts) == 1 and ": " in line:
        parts = line.split(": ", 1)
    operation, figure = (parts[0], parts[1]) if len(parts) == 2 else (line, "")
    return operation.strip(), " ".join(figure.split())


def scripts() -> list[Path]:
    return sorted(p for p in HERE.glob("*.py") if p.name != "run.py" and not p.name.startswith("_"))


def postgres_answers() -> bool:
    if shutil.which("pg_isready") is None:
        return False
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"], check=False).returncode == 0


def redis_answers() -> bool:
    if shutil.which("redis-cli") is None:
        return False
    result = subprocess.run(["redis-cli", "-h", "127.0.0.1", "ping"], capture_output=True, check=False)
    return result.returncode == 0 and b"PONG" in result.stdout


def run_one(script: Path, database: str, extra: list[str], timeout: float) -> tuple[list[str], str]:
    """The script's output lines, and an error ("" when it succeeded)."""
    command = [sys.executable, str(script), *extra, *(["--database", database] if database else [])]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    try:
        result = subprocess.run(  # noqa: S603
            command, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return [], f"timed out after {timeout:.0f} s"
    lines = [line.rstrip() for line in result.stdout.splitlines() if line.strip()]
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no error output)"])[-1]
        return lines, f"failed (exit {result.returncode}): {last[:160]}"
    return lines, ""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", action="store_true", help="the scripts' own (large) sizes")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="this script only")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/esante_bench")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per script and database")
    args = parser.parse_args()

    selected = [s for s in scripts() if not args.only or s.stem in args.only]
    databases = [("SQLite", "")]
    if not args.no_postgres and postgres_answers():
        databases.append(("PostgreSQL", args.postgres))
    redis = redis_answers()
    rows: list[tuple[str, str, str, str, str]] = []
    failed = False
    for script in selected:
        takes_database = '"--database"' in script.read_text()
        variants = [[]] + ([WITH_REDIS[script.stem]] if redis and script.stem in WITH_REDIS else [])
        runs = [(db, v) for v in variants for db in (databases if takes_database else [("SQLite", "")])]
        for (label, url), variant in runs:
            extra = ([] if args.full else QUICK.get(script.stem, [])) + variant
            print(f"== {script.stem} on {label} {' '.join(extra)}", file=sys.stderr, flush=True)
            started = time.monotonic()
            lines, error = run_one(script, url, extra, args.timeout)
            seconds = f"{time.monotonic() - started:.0f} s"
            shown = label if takes_database else "-"
            for line in lines:
                rows.append((script.stem, shown, *split(line), seconds))
            if error:
                failed = True
                rows.append((script.stem, shown, error, "", seconds))

    print(f"Machine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"Sizes: {'full (the scripts own)' if args.full else 'reduced (benchmarks/run.py QUICK)'}")
    print()
    print("| benchmark | database | operation | figure | run time |")
    print("|---|---|---|---|---|")
    for benchmark, database, operation, figure, seconds in rows:
        cells = (benchmark, database, operation, figure, seconds)
        print("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
