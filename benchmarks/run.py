"""``make bench``: runs every benchmark script of this folder, on SQLite and on PostgreSQL, and
prints one table: benchmark, database, operation, figure, floor, ratio, goal, run time.

Each ``benchmarks/*.py`` (but this file and ``_*.py``) runs in a process of its own, with a fresh
database (the scripts make their own): once without ``--database`` (SQLite) and, when the script
takes ``--database`` and PostgreSQL answers, once more on ``--postgres`` (a database that is
dropped and created again). By default the sizes are reduced so that the whole run takes minutes;
``--full`` runs the scripts' own sizes (the issue's: 1.2 million patients, 1 million audit events).
A script that fails gives a row saying so, and the run exits 1.

Each line a script prints becomes a row of the table, in one of two forms:

- **A row line** (the protocol; ``pages_http.py`` prints them, any script may)::

      ROW | operation=search | figure=812 req/s | floor=bare page: 1,203 req/s | ratio=1.48× | goal=≤ 1.5×

  ``ROW`` then `` | ``-separated ``key=value`` cells: ``operation`` and ``figure`` (the
  measurement), ``floor`` (what it is compared with, measured in the same run), ``ratio`` (a number
  followed by ``×`` or ``x``: the figure against the floor, for a page its cost over the floor's),
  ``goal`` (``≤ N×``: judged against the ratio).
  Missing keys are empty, unknown keys ignored; a value holds no `` | ``.
- **A plain line** (every other line): operation and figure are the line cut at its first run of
  two spaces, else at its first ": " (a leading ``SQLite``/``PostgreSQL`` is dropped). The floor and
  the ratio are read from the figure where a script already prints them (``1.44x the baseline``,
  ``2.16× the bare page``, ``0.34x the floor``, ``0.89 x the single chain``, a figure that is only a
  ratio such as ``16x``, and ``p50 A ms … bare SQL p50 B ms``), and a goal from ``(goal ≤ 2×)``.

Then ``GOALS`` (the issues' goals: performance 15, patients' portal 13, audit 14, FHIR 12) fills the
goal of the rows it names, by benchmark, operation pattern and database, and the goal cell says
whether the row meets it (``met`` / ``not met``) where the row gives the figure the goal is about.

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
from collections.abc import Callable
from dataclasses import dataclass, replace
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
    # wrk against esante serve: 3 rounds of 3 s per page (7 pages), about 1.5 min per database.
    "pages_http": ["--patients", "10000", "--events", "20000", "--seconds", "3", "--rounds", "3"],
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


@dataclass(frozen=True)
class Row:
    operation: str
    figure: str
    floor: str = ""
    ratio: str = ""
    goal: str = ""


ROW_PREFIX = "ROW | "
ROW_KEYS = ("operation", "figure", "floor", "ratio", "goal")
NUMBER = r"\d[\d,]*(?:\.\d+)?"
#: "1.44x the baseline", "2.16× the bare page", "0.34x the floor", "0.89 x the single chain".
RATIO_IN_FIGURE = re.compile(rf"({NUMBER})\s?[x×] (the (?:baseline|bare page|floor|single chain))")
RATIO_ONLY = re.compile(rf"^({NUMBER})\s?[x×]$")
#: search_patients: "p50 2.87 ms, … bare SQL p50 0.04 ms".
P50_AND_BARE_SQL = re.compile(rf"^p50 ({NUMBER}) ms\b.*\bbare SQL p50 ({NUMBER}) ms")
GOAL_IN_TEXT = re.compile(rf"\(goal\s+((?:≤|<=|≥|>=)\s*{NUMBER}\s*[x×]?)\)")
BOUND = re.compile(rf"(≤|<=|≥|>=)\s*({NUMBER})")


def number(text: str) -> float:
    return float(text.replace(",", ""))


def ratio_value(ratio: str) -> float | None:
    found = re.match(rf"\s*({NUMBER})\s*[x×]?", ratio)
    return number(found.group(1)) if found else None


def parse_line(line: str) -> Row:
    """One printed line as a row: the protocol's ``ROW | key=value | …``, else a plain line with
    its floor, ratio and goal read from the figure where the script prints them."""
    stripped = BACKEND_PREFIX.sub("", line.strip())
    if stripped.startswith(ROW_PREFIX):
        cells: dict[str, str] = {}
        for cell in stripped[len(ROW_PREFIX) :].split(" | "):
            key, _, value = cell.partition("=")
            if key.strip() in ROW_KEYS:
                cells[key.strip()] = " ".join(value.split())
        return Row(**{"figure": "", **cells}) if "operation" in cells else Row(*split(stripped))
    operation, figure = split(line)
    floor = ratio = goal = ""
    if found := RATIO_IN_FIGURE.search(figure):
        ratio, floor = f"{number(found.group(1)):.2f}×", found.group(2)
    elif found := RATIO_ONLY.match(figure):
        ratio = f"{number(found.group(1)):g}×"
    elif (found := P50_AND_BARE_SQL.search(figure)) and number(found.group(2)):
        ratio = f"{number(found.group(1)) / number(found.group(2)):.1f}×"
        floor = f"bare SQL p50 {found.group(2)} ms"
    if found := GOAL_IN_TEXT.search(f"{operation} {figure}"):
        goal = " ".join(found.group(1).replace("<=", "≤").replace(">=", "≥").split())
    return Row(operation, figure, floor, ratio, goal)


@dataclass(frozen=True)
class Goal:
    """A goal of the issues for the rows of ``benchmark`` whose operation matches ``operation``
    (a regular expression searched in it), on ``database`` only when given. ``measure`` gives the
    figure the goal is about: ``"ratio"`` (the row's ratio: rows without one are left alone), a
    regular expression whose first group is searched in the figure, or a function of the row;
    ``bound`` and ``at_most`` then say whether the row meets it. Without ``measure`` the goal is
    shown, not judged; without ``bound``, the measured value is shown with it."""

    benchmark: str
    operation: str
    text: str
    measure: str | Callable[[Row], float | None] | None = None
    bound: float | None = None
    at_most: bool = True
    database: str = ""


def verify_seconds(row: Row) -> float | None:
    """The seconds of ``verify_audit over N events | S s`` when N is at least the goal's 1,000,000
    (a smaller run is mostly the command's start: not extrapolated)."""
    events, seconds = (
        re.search(rf"over ({NUMBER}) events", row.operation),
        re.match(rf"({NUMBER}) s", row.figure),
    )
    if not (events and seconds) or number(events.group(1)) < 1_000_000:
        return None
    return number(seconds.group(1))


def memory_growth(row: Row) -> float | None:
    """``peak RSS A MiB at N rows, B MiB at M rows``: B / A."""
    sizes = [number(size) for size in re.findall(rf"({NUMBER}) MiB", row.figure)]
    return sizes[-1] / sizes[0] if len(sizes) >= 2 and sizes[0] else None


GOALS: list[Goal] = [
    # Issue 14: audited actions with concurrent writers, on PostgreSQL.
    Goal("audit_throughput", r"^batched chaining, (4|16) writers", "≥ 2,000 audited actions/s",
         rf"({NUMBER}) audited actions/s", 2000, at_most=False, database="PostgreSQL"),
    # Issue 15: dispensations with 4 clients on PostgreSQL; the certified copy ready ≤ 2 s (p95).
    Goal("dispensation", r"^dispensations/s, copy queued", "≥ 200 dispensations/s", rf"^({NUMBER})", 200,
         at_most=False, database="PostgreSQL"),
    Goal("dispensation", rf"^copy ready after the commit, {NUMBER}/s", "p95 ≤ 2 s", rf"/ ({NUMBER}) s", 2),
    # Issue 15: import at bulk speed, memory constant in the file size.
    Goal("import_patients", r"^import of", "≥ 30,000 rows/s", rf"({NUMBER}) rows/s", 30_000, at_most=False),
    Goal("import_patients", r"^memory$", "constant in the file size (larger file's peak / smaller's)",
         memory_growth),
    # Issues 15 and 14: 1,000,000 events verified in ≤ 5 s (judged on --full's 1,000,000 events).
    Goal("verify_audit", r"^verify_audit over", "1,000,000 events ≤ 5 s", verify_seconds, 5),
    # Issue 15: the tree and the filter choices ≤ 1 ms; the record page ≤ 2× a bare page (pages_http).
    Goal("record_page", r"^(tree|filter choices), ", "p50 ≤ 1 ms", rf"p50 ({NUMBER}) ms", 1),
    Goal("record_page", r"^record page, .*Vue documentaire", "≤ 2× a bare page (see pages_http)"),
    # Issue 12: each API transaction ≤ 1.5× an authenticated Patient read.
    Goal("fhir_api", r"^(in-process|over HTTP) (?!Patient read \(baseline\))", "≤ 1.5×", "ratio", 1.5),
    # Issue 13: the journal ≤ 2× a bare page (its rows also say it: "(goal ≤ 2×)").
    Goal("patient_journal", r"^journal, ", "≤ 2×", "ratio", 2),
    # Issue 15: the search selector against its bare SQL: the page goals are pages_http's.
    Goal("search_patients", r"^(matricule|name \+ first name)$",
         "page ≤ 1.5× / ≤ 2× a bare page (see pages_http)"),
]  # fmt: skip


def judged(goal_text: str, value: float, bound: float, at_most: bool, shown: str = "") -> str:
    met = value <= bound if at_most else value >= bound
    return f"{goal_text}: {shown + ', ' if shown else ''}{'met' if met else 'not met'}"


def with_goal(benchmark: str, database: str, row: Row) -> Row:
    """The row with its goal from ``GOALS`` (else the one it states), judged where it can be."""
    for goal in GOALS:
        if goal.benchmark != benchmark or not re.search(goal.operation, row.operation):
            continue
        if goal.database and goal.database != database:
            continue
        if goal.measure == "ratio" and not row.ratio:
            continue  # the goal is about the ratio: a row without one is not what it judges
        value: float | None
        if goal.measure == "ratio":
            value, shown = ratio_value(row.ratio), ""
        elif callable(goal.measure):
            value = goal.measure(row)
            shown = "" if value is None else f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
        elif goal.measure:
            found = re.search(goal.measure, row.figure)
            value, shown = (number(found.group(1)), found.group(1)) if found else (None, "")
        else:
            value, shown = None, ""
        if value is None:
            return replace(row, goal=goal.text)
        if goal.bound is None:
            return replace(row, goal=f"{goal.text}: {shown}")
        return replace(row, goal=judged(goal.text, value, goal.bound, goal.at_most, shown))
    # A goal the row states itself ("≤ 2×"), about its ratio.
    found = BOUND.match(row.goal)
    value = ratio_value(row.ratio) if row.ratio else None
    if found and value is not None and row.goal.rstrip().endswith(("×", "x")):
        return replace(
            row, goal=judged(row.goal, value, number(found.group(2)), found.group(1) in ("≤", "<="))
        )
    return row


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
    rows: list[tuple[str, str, Row, str]] = []
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
                rows.append((script.stem, shown, with_goal(script.stem, label, parse_line(line)), seconds))
            if error:
                failed = True
                rows.append((script.stem, shown, Row(error, ""), seconds))

    print(f"Machine: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"Sizes: {'full (the scripts own)' if args.full else 'reduced (benchmarks/run.py QUICK)'}")
    print()
    print("| benchmark | database | operation | figure | floor | ratio | goal | run time |")
    print("|---|---|---|---|---|---|---|---|")
    for benchmark, database, row, seconds in rows:
        cells = (benchmark, database, row.operation, row.figure, row.floor, row.ratio, row.goal, seconds)
        print("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
