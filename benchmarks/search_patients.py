"""Benchmark: patient search by matricule and by name + first name over 1.2 million patients.

Loads N synthetic patients (bulk insert; COPY on PostgreSQL), then times the portal's search
selector (``patient_search_page``: criteria, capped count and one page with the professional's
columns) and, as the floor, the bare SQL lookup for the same criteria. Reports p50 and p95
server time and the number of SQL queries per search.

    python benchmarks/search_patients.py                      # SQLite, 1,200,000 patients
    python benchmarks/search_patients.py --database postgres://postgres@127.0.0.1:5432/esante_bench
"""

import argparse
import datetime
import io
import random
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from _setup import fresh_django, percentile  # noqa: E402

NAMES = [
    "Schmit",
    "Muller",
    "Weber",
    "Wagner",
    "Hoffmann",
    "Da Silva",
    "Dos Santos",
    "Pereira",
    "Gonçalves",
    "Ferreira",
    "Dupont",
    "Martin",
    "Rossi",
    "Müller",
    "Schneider",
    "Klein",
    "Thill",
    "Kremer",
    "Reuter",
]
GIVEN = ["Léa", "Emma", "Luc", "Jean", "Ana", "João", "Marie", "Paul", "Sofia", "Tom", "Inês", "Max"]


def load(count: int) -> list[tuple[str, str, str]]:
    from django.db import connection

    from esante.patients.folding import fold
    from esante.patients.matricule import make_patient_matricule

    rng = random.Random(3)
    samples: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    rows = []
    now = datetime.datetime.now(datetime.UTC).isoformat()
    while len(rows) < count:
        birth = datetime.date(1920, 1, 1) + datetime.timedelta(days=rng.randrange(36_000))
        matricule = make_patient_matricule(birth, rng.randrange(1000))
        if matricule in seen:
            continue
        seen.add(matricule)
        name, given = (
            rng.choice(NAMES) + ("" if rng.random() < 0.7 else f"-{rng.choice(NAMES)}"),
            rng.choice(GIVEN),
        )
        rows.append(
            (
                uuid.uuid4().hex,
                matricule,
                name,
                "",
                given,
                birth.isoformat(),
                rng.choice("FM"),
                80,
                "",
                f"{len(rows):010d}",
                "active",
                "",
                fold(name),
                "",
                fold(given),
                now,
                now,
            )
        )
        if len(samples) < 2000 and rng.random() < 0.01:
            samples.append((matricule, name, given))
    columns = (
        "public_id, matricule, birth_name, usage_name, first_names, birth_date, sex, taux, dossier_number, "
        "platform_identifier, dossier_state, alerts, birth_name_folded, usage_name_folded, "
        "first_names_folded, created_at, updated_at"
    )
    started = time.perf_counter()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            buffer = io.StringIO()
            for row in rows:
                buffer.write("\t".join(str(v) for v in row) + "\n")
            buffer.seek(0)
            with cursor.cursor.copy(f"COPY patients_patient ({columns}) FROM STDIN") as copy:
                copy.write(buffer.read())
            cursor.execute("ANALYZE patients_patient")
        else:
            placeholders = ", ".join(["%s"] * 17)
            insert = f"INSERT INTO patients_patient ({columns}) VALUES ({placeholders})"  # noqa: S608 - constants
            cursor.executemany(insert, rows)
            cursor.execute("ANALYZE")
    print(f"loaded {count:,} patients in {time.perf_counter() - started:.0f} s")
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=1_200_000)
    parser.add_argument("--searches", type=int, default=300)
    parser.add_argument("--database", default="")
    args = parser.parse_args()
    fresh_django(args.database)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from esante.access.selectors import patient_search_page
    from esante.accounts.models import Professional, User
    from esante.patients.folding import fold, prefix_upper_bound
    from esante.patients.selectors import patient_search_criteria

    samples = load(args.patients)
    user = User.objects.create_user(username="19800101000", password=None)
    professional = Professional.objects.create(
        user=user,
        matricule="19800101000",
        profession="pharmacist",
        last_name="Bench",
        first_name="B",
        email="b@example.lu",
        state="active",
    )
    backend = "PostgreSQL" if connection.vendor == "postgresql" else "SQLite"
    for kind in ("matricule", "name + first name"):
        times: list[float] = []
        floors: list[float] = []
        queries: set[int] = set()
        for matricule, name, given in samples[: args.searches]:
            started = time.perf_counter()
            with CaptureQueriesContext(connection) as captured:
                if kind == "matricule":
                    criteria = patient_search_criteria(matricule=matricule)
                else:
                    criteria = patient_search_criteria(name=name[:4], first_name=given[:2])
                page = patient_search_page(professional=professional, criteria=criteria, page=1, page_size=25)
                assert isinstance(page.rows, list)
            times.append((time.perf_counter() - started) * 1000)
            queries.add(len(captured))
            with connection.cursor() as cursor:
                started = time.perf_counter()
                if kind == "matricule":
                    cursor.execute("SELECT * FROM patients_patient WHERE matricule = %s", [matricule])
                else:
                    prefix, first = fold(name[:4]), fold(given[:2])
                    cursor.execute(
                        "SELECT * FROM patients_patient "
                        "WHERE birth_name_folded >= %s AND birth_name_folded < %s "
                        "AND first_names_folded >= %s AND first_names_folded < %s "
                        "ORDER BY birth_name_folded, first_names_folded, id LIMIT 25",
                        [prefix, prefix_upper_bound(prefix), first, prefix_upper_bound(first)],
                    )
                cursor.fetchall()
                floors.append((time.perf_counter() - started) * 1000)
        print(
            f"{backend} {kind}: p50 {percentile(times, 0.5):.2f} ms, p95 {percentile(times, 0.95):.2f} ms, "
            f"SQL queries per search {sorted(queries)}; bare SQL p50 {percentile(floors, 0.5):.2f} ms, "
            f"p95 {percentile(floors, 0.95):.2f} ms"
        )


if __name__ == "__main__":
    main()
