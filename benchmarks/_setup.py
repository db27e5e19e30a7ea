"""Shared set-up for the in-process benchmarks: a fresh database, migrated, and Django ready."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path


def fresh_django(database: str) -> Path:
    work = Path(tempfile.mkdtemp(prefix="esante-bench-"))
    os.environ.update(ESANTE_DATA_DIR=str(work), ESANTE_DEBUG="1", DJANGO_SETTINGS_MODULE="esante.settings")
    if database:
        os.environ["DATABASE_URL"] = database
        name = database.rsplit("/", 1)[1]
        for sql in (f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}"):
            subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", sql], check=True)
    esante = str(Path(sys.executable).with_name("esante"))
    subprocess.run([esante, "migrate", "-v0"], check=True)
    import django

    django.setup()
    return work


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
