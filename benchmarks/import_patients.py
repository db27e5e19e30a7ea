"""Benchmark: `esante import_patients` on N generated patients (default 100,000), against the
bare bulk-load floor measured in the same run.

Runs the real command in a subprocess against a fresh database and reports its rate (rows/s, the
command's wall time, Python's and Django's start included), the peak resident memory of the
importing process itself (not of the migration before it), and the rejected-line count (every
1,000th line is made invalid on purpose and must show up in the report, none dropped silently).
Then the same file again: nothing may change (idempotence), and the audit chain is verified.

The floor: the same rows, already in database form, written to a fresh patient table by the
import's own bulk statements (``executemany`` on SQLite, ``COPY`` on PostgreSQL) in batches of
the import's size, one transaction per batch; no reading, no validation, no lookup, no audit.
The import's rate is printed as a ratio of it.

``--compare-rows M`` imports a second file of M rows into a fresh database and prints both peak
memories: an import whose memory is constant in the file size shows about the same figure.

    python benchmarks/import_patients.py                         # SQLite, 100,000 rows
    python benchmarks/import_patients.py --compare-rows 1000000  # and memory at 1 million rows
    python benchmarks/import_patients.py --database postgres://postgres@127.0.0.1:5432/esante_bench
    python benchmarks/import_patients.py --reimport              # then every patient changed again
"""

import argparse
import contextlib
import csv
import datetime
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from esante.patients.matricule import make_patient_matricule  # noqa: E402

BATCH_SIZE = 20_000  # the command's default --batch-size


def generate(path: Path, rows: int, *, renamed: bool = False) -> int:
    rng = random.Random(7)
    bad = 0
    used: set[str] = set()
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["matricule", "birth_name", "usage_name", "first_names", "birth_date", "sex", "taux"])
        written = 0
        while written < rows:
            birth = datetime.date(1900, 1, 1) + datetime.timedelta(days=rng.randrange(45_000))
            matricule = make_patient_matricule(birth, rng.randrange(1000))
            if matricule in used:
                continue
            used.add(matricule)
            written += 1
            if written % 1000 == 0:
                matricule = matricule[:-1] + str((int(matricule[-1]) + 1) % 10)  # broken check digit
                bad += 1
            name = rng.choice(
                ["Schmit", "Müller", "Gonçalves", "Dupont-Martin", "Rossi", "Weber", "Da Silva"]
            )
            out.writerow(
                [
                    matricule,
                    name,
                    "",
                    rng.choice(["Léa", "João", "Luc", "Anna"]) + ("-Marie" if renamed else ""),
                    birth.isoformat(),
                    rng.choice("FM"),
                    rng.choice([40, 80, 100]),
                ]
            )
    return bad


def fresh_database(database: str, env: dict[str, str]) -> None:
    """Drops and creates the PostgreSQL database (if any), or removes the SQLite file, then migrates."""
    if database:
        name = database.rsplit("/", 1)[1]
        for sql in (f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"):
            subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], check=True)
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(env["ESANTE_DATA_DIR"], f"esante.sqlite3{suffix}").unlink(missing_ok=True)
    subprocess.run([esante(), "migrate", "-v0"], env=env, check=True)


def drop_database(database: str) -> None:
    if database:
        name = database.rsplit("/", 1)[1]
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"DROP DATABASE IF EXISTS {name}"],
            check=True,
        )


def esante() -> str:
    return str(Path(sys.executable).with_name("esante"))


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Runs ``command``; its wall time (s), its own peak RSS (MiB) and its standard output (the
    first line then its CPU time, user and system: less sensitive than the wall time to a loaded
    machine, but without the PostgreSQL server's share)."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)  # noqa: S603
    assert process.stdout is not None
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        sys.exit(f"{' '.join(command)} failed ({process.returncode})")
    cpu = usage.ru_utime + usage.ru_stime
    return elapsed, usage.ru_maxrss / 1024, f"{out.splitlines()[0] if out else ''}\n{cpu:.1f}"


def floor_load(source: Path, batch_size: int) -> None:
    """(In a subprocess with the benchmark's environment.) Writes the file's valid rows, prepared
    beforehand, with the import's bulk statements; prints the rows/s of the writing alone."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "esante.settings")
    import django

    django.setup()
    from django.core.exceptions import ValidationError
    from django.db import transaction
    from django.utils import timezone

    from esante.patients import bulk
    from esante.patients.folding import fold
    from esante.patients.matricule import validate_patient_matricule

    stamp = bulk.db_datetime(timezone.now())
    db_date = bulk.db_date_form()
    rows = []
    with source.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            with contextlib.suppress(ValidationError):  # the invalid lines the import rejects
                validate_patient_matricule(row["matricule"])
                rows.append(row)
    prepared = []
    public_ids = bulk.new_public_ids(len(rows))
    for number, (row, public_id) in enumerate(zip(rows, public_ids, strict=True)):
        prepared.append(
            (
                public_id,
                row["matricule"],
                row["birth_name"],
                row["usage_name"],
                row["first_names"],
                db_date(datetime.date.fromisoformat(row["birth_date"])),
                row["sex"],
                int(row["taux"]),
                "",
                f"17{number:08d}",
                "active",
                "",
                fold(row["birth_name"]),
                fold(row["usage_name"]),
                fold(row["first_names"]),
                stamp,
                stamp,
            )
        )
    started, cpu_started = time.perf_counter(), time.process_time()
    for start in range(0, len(prepared), batch_size):
        batch = sorted(prepared[start : start + batch_size], key=lambda row: row[1])
        with transaction.atomic():
            bulk.insert_rows(batch)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(f"{len(prepared) / elapsed:.0f} {cpu:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--compare-rows", type=int, default=0, help="also import a file of this many rows: memory"
    )
    parser.add_argument("--database", default="", help="DATABASE_URL (default: a fresh SQLite file)")
    parser.add_argument(
        "--reimport",
        action="store_true",
        help="then import the same patients again with every first name changed (update-heavy: "
        "one audited update per patient), and time that too",
    )
    parser.add_argument("--floor-load", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_load:
        floor_load(args.floor_load, BATCH_SIZE)
        return
    work = Path(tempfile.mkdtemp(prefix="esante-bench-"))
    env = dict(os.environ, ESANTE_DATA_DIR=str(work), ESANTE_DEBUG="1")
    env.pop("DJANGO_SETTINGS_MODULE", None)
    if args.database:
        env["DATABASE_URL"] = args.database
    else:
        env.pop("DATABASE_URL", None)
    backend = "PostgreSQL" if args.database else "SQLite"
    try:
        run(args, work, env, backend)
    finally:
        drop_database(args.database)


def run(args: argparse.Namespace, work: Path, env: dict[str, str], backend: str) -> None:
    source = work / "patients.csv"
    expected_bad = generate(source, args.rows)
    empty = work / "empty.csv"
    empty.write_text("matricule,birth_name,first_names,birth_date,sex\n", encoding="utf-8")

    fresh_database(args.database, env)
    start_up, start_rss, _ = timed([esante(), "import_patients", str(empty), "-v0"], env)
    elapsed, peak_mib, out = timed([esante(), "import_patients", str(source), "-v0"], env)
    cpu = float(out.splitlines()[-1])
    with (work / "patients.csv.rejets.csv").open(encoding="utf-8") as fh:
        rejected = sum(1 for _ in fh) - 1
    rate = args.rows / elapsed
    print(
        f"{backend}: import of {args.rows:,} rows  {elapsed:.1f} s = {rate:,.0f} rows/s "
        f"(command wall time; CPU {cpu:.1f} s; its start alone, an empty file: {start_up:.1f} s, "
        f"{start_rss:.0f} MiB); "
        f"peak RSS {peak_mib:.0f} MiB; rejected {rejected} (expected {expected_bad})"
    )
    if rejected != expected_bad:
        sys.exit("rejected lines do not match the invalid lines written")
    again, _, out = timed([esante(), "import_patients", str(source), "-v0"], env)
    summary = out.splitlines()[0]
    print(f"{backend}: same file again  {args.rows / again:,.0f} rows/s ({summary})")
    if f" 0 créés, 0 mis à jour, {args.rows - expected_bad} inchangés" not in summary:
        sys.exit("re-importing the same file changed something")
    if args.reimport:
        changed = work / "patients-renamed.csv"
        generate(changed, args.rows, renamed=True)
        elapsed_changed, _, out = timed([esante(), "import_patients", str(changed), "-v0"], env)
        print(
            f"{backend}: update-heavy second import  {args.rows / elapsed_changed:,.0f} rows/s "
            f"({out.splitlines()[0]})"
        )
    # Sign the head (as `esante serve` would), then check the whole chain against it.
    subprocess.run([esante(), "anchor_audit", "--initial", "-v0"], env=env, check=True, capture_output=True)
    verified = subprocess.run(
        [esante(), "verify_audit", "-v0"], env=env, capture_output=True, text=True, check=False
    )
    print(f"{backend}: verify_audit after the imports  exit {verified.returncode}")
    if verified.returncode:
        sys.exit(verified.stdout + verified.stderr)

    fresh_database(args.database, env)
    floor_text, floor_cpu_text = subprocess.run(
        [sys.executable, __file__, "--floor-load", str(source)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-2:]
    floor, floor_cpu = float(floor_text), float(floor_cpu_text)
    print(
        f"{backend}: bare bulk load (floor)  {floor:,.0f} rows/s; the import at "
        f"{rate / floor:.2f}x the floor ({args.rows / (elapsed - start_up) / floor:.2f}x without "
        f"the command's start); in CPU time {floor_cpu / cpu:.2f}x (floor {floor_cpu:.1f} s, "
        f"import {cpu:.1f} s{', without the server' if args.database else ''})"
    )

    if args.compare_rows:
        larger = work / "larger.csv"
        generate(larger, args.compare_rows)
        fresh_database(args.database, env)
        elapsed_larger, peak_larger, _ = timed([esante(), "import_patients", str(larger), "-v0"], env)
        print(
            f"{backend}: memory  peak RSS {peak_mib:.0f} MiB at {args.rows:,} rows, "
            f"{peak_larger:.0f} MiB at {args.compare_rows:,} rows "
            f"({args.compare_rows / elapsed_larger:,.0f} rows/s)"
        )


if __name__ == "__main__":
    main()
