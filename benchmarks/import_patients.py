"""Benchmark: `esante import_patients` on N generated patients (default 100,000).

Runs the real command in a subprocess against a fresh database and reports the rate (rows/s),
the peak resident memory of the importing process, and the rejected-line count (every 1,000th
line is made invalid on purpose and must show up in the report, none dropped silently).

    python benchmarks/import_patients.py                         # SQLite, 100,000 rows
    python benchmarks/import_patients.py --database postgres://postgres@127.0.0.1:5432/esante_bench
    python benchmarks/import_patients.py --reimport              # then every patient changed again
"""

import argparse
import csv
import datetime
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from esante.patients.matricule import make_patient_matricule  # noqa: E402


def generate(path: Path, rows: int, *, renamed: bool = False) -> int:
    rng = random.Random(7)
    bad = 0
    used: set[str] = set()
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["matricule", "birth_name", "usage_name", "first_names", "birth_date", "sex", "taux"])
        written = 0
        while written < rows:
            birth = datetime.date(1930, 1, 1) + datetime.timedelta(days=rng.randrange(33_000))
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database", default="", help="DATABASE_URL (default: a fresh SQLite file)")
    parser.add_argument(
        "--reimport",
        action="store_true",
        help="then import the same patients again with every first name changed (update-heavy: "
        "one audited update per patient), and time that too",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="esante-bench-"))
    source = work / "patients.csv"
    expected_bad = generate(source, args.rows)
    env = dict(os.environ, ESANTE_DATA_DIR=str(work), ESANTE_DEBUG="1")
    if args.database:
        env["DATABASE_URL"] = args.database
        name = args.database.rsplit("/", 1)[1]
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"DROP DATABASE IF EXISTS {name}"],
            check=True,
        )
        subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", f"CREATE DATABASE {name}"], check=True
        )
    esante = str(Path(sys.executable).with_name("esante"))
    subprocess.run([esante, "migrate", "-v0"], env=env, check=True)
    started = time.perf_counter()
    subprocess.run([esante, "import_patients", str(source), "-v0"], env=env, check=True)
    elapsed = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    with (work / "patients.csv.rejets.csv").open(encoding="utf-8") as fh:
        rejected = sum(1 for _ in fh) - 1
    backend = "PostgreSQL" if args.database else "SQLite"
    print(
        f"{backend}: {args.rows} rows in {elapsed:.1f} s = {args.rows / elapsed:,.0f} rows/s; "
        f"peak RSS {peak_mib:.0f} MiB; rejected {rejected} (expected {expected_bad})"
    )
    if rejected != expected_bad:
        sys.exit("rejected lines do not match the invalid lines written")
    if args.reimport:
        changed = work / "patients-renamed.csv"
        generate(changed, args.rows, renamed=True)
        started = time.perf_counter()
        done = subprocess.run(
            [esante, "import_patients", str(changed), "-v0"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - started
        print(
            f"{backend}, update-heavy second import: {args.rows} rows in {elapsed:.1f} s = "
            f"{args.rows / elapsed:,.0f} rows/s ({done.stdout.splitlines()[0]})"
        )


if __name__ == "__main__":
    main()
