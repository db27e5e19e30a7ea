"""``benchmarks/run.py``'s table: the row protocol, the ratios read from the lines the scripts
already print, and the goals judged. The plain lines are the scripts' own output, as recorded in
``benchmarks/RESULTS.md`` (``make bench`` of 2026-12-04)."""

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

RUN = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_row_line_fills_every_column(bench: ModuleType) -> None:
    line = (
        "ROW | operation=search page POST by matricule | figure=812 req/s, p50 4.6 ms, p99 12.1 ms "
        "| floor=bare authenticated professional page, GET /edocuments/recherche/: 1,203 req/s "
        "| ratio=1.48× | goal=≤ 1.5×"
    )
    row = bench.with_goal("pages_http", "SQLite", bench.parse_line(line))
    assert row.operation == "search page POST by matricule"
    assert row.figure == "812 req/s, p50 4.6 ms, p99 12.1 ms"
    assert row.floor == "bare authenticated professional page, GET /edocuments/recherche/: 1,203 req/s"
    assert row.ratio == "1.48×"
    assert row.goal == "≤ 1.5×: met"


def test_a_row_line_over_its_goal_and_with_missing_or_unknown_keys(bench: ModuleType) -> None:
    row = bench.with_goal(
        "pages_http",
        "PostgreSQL",
        bench.parse_line("ROW | operation=name search | ratio=2.40x | goal=≤ 2× | x=1"),
    )
    assert (row.operation, row.figure, row.floor, row.ratio) == ("name search", "", "", "2.40x")
    assert row.goal == "≤ 2×: not met"
    # No ratio, no goal: shown as given, not judged.
    row = bench.with_goal(
        "pages_http", "SQLite", bench.parse_line("ROW | operation=raw HTTP floor | figure=1 req/s")
    )
    assert (row.operation, row.figure, row.floor, row.ratio, row.goal) == (
        "raw HTTP floor",
        "1 req/s",
        "",
        "",
        "",
    )


def test_the_fhir_baseline_ratio(bench: ModuleType) -> None:
    line = (
        "SQLite over HTTP DocumentReference search (1000 documents): p50 8.2 ms, p95 12.7 ms, "
        "1.44x the baseline, SQL queries [10]"
    )
    row = bench.with_goal("fhir_api", "SQLite", bench.parse_line(line))
    assert row.operation == "over HTTP DocumentReference search (1000 documents)"
    assert (row.floor, row.ratio, row.goal) == ("the baseline", "1.44×", "≤ 1.5×: met")
    line = (
        "PostgreSQL over HTTP MedicationDispense create: p50 17.4 ms, p95 22.4 ms, 1.79x the baseline, "
        "SQL queries [15]"
    )
    assert bench.with_goal("fhir_api", "PostgreSQL", bench.parse_line(line)).goal == "≤ 1.5×: not met"
    # The baseline itself is not judged against itself.
    line = (
        "SQLite over HTTP Patient read (baseline): p50 5.7 ms, p95 6.4 ms, 1.00x the baseline, "
        "SQL queries [8]"
    )
    row = bench.with_goal("fhir_api", "SQLite", bench.parse_line(line))
    assert (row.ratio, row.goal) == ("1.00×", "")


def test_the_journal_ratio_and_its_stated_goal(bench: ModuleType) -> None:
    line = "SQLite journal, first page: 2.16× the bare page, 2.16× in CPU time (goal ≤ 2×)"
    row = bench.parse_line(line)
    assert (row.operation, row.floor, row.ratio, row.goal) == (
        "journal, first page",
        "the bare page",
        "2.16×",
        "≤ 2×",
    )
    assert bench.with_goal("patient_journal", "SQLite", row).goal == "≤ 2×: not met"
    # The same goal stated by a line of a benchmark GOALS does not name is judged too.
    assert bench.with_goal("other", "SQLite", row).goal == "≤ 2×: not met"
    # The journal's timing rows carry no ratio: no goal on them.
    line = "SQLite journal, first page: p50 4.2 ms, p95 5.4 ms, CPU p50 4.2 ms, SQL queries [11]"
    row = bench.with_goal("patient_journal", "SQLite", bench.parse_line(line))
    assert (row.ratio, row.goal) == ("", "")


def test_the_import_rate_floor_and_memory(bench: ModuleType) -> None:
    line = (
        "SQLite: import of 50,000 rows  1.8 s = 28,491 rows/s (command wall time; CPU 1.7 s; its start "
        "alone, an empty file: 0.4 s, 59 MiB); peak RSS 116 MiB; rejected 50 (expected 50)"
    )
    row = bench.with_goal("import_patients", "SQLite", bench.parse_line(line))
    assert row.operation == "import of 50,000 rows"
    assert row.goal == "≥ 30,000 rows/s: 28,491, not met"
    line = (
        "SQLite: bare bulk load (floor)  83,339 rows/s; the import at 0.34x the floor (0.45x without the "
        "command's start); in CPU time 0.34x (floor 0.6 s, import 1.7 s)"
    )
    row = bench.with_goal("import_patients", "SQLite", bench.parse_line(line))
    assert (row.operation, row.floor, row.ratio) == ("bare bulk load (floor)", "the floor", "0.34×")
    line = "PostgreSQL: memory  peak RSS 103 MiB at 50,000 rows, 107 MiB at 200,000 rows (28,282 rows/s)"
    row = bench.with_goal("import_patients", "PostgreSQL", bench.parse_line(line))
    assert row.goal == "constant in the file size (larger file's peak / smaller's): 1.04"


def test_the_audit_and_dispensation_goals_hold_on_postgresql_only(bench: ModuleType) -> None:
    line = (
        "PostgreSQL: batched chaining, 4 writers + sequencer  1,569 audited actions/s (2.46 x the single "
        "chain); in a signed checkpoint 0.0 s after the last write: 1,554 events/s end to end"
    )
    row = bench.with_goal("audit_throughput", "PostgreSQL", bench.parse_line(line))
    assert (row.floor, row.ratio) == ("the single chain", "2.46×")
    assert row.goal == "≥ 2,000 audited actions/s: 1,569, not met"
    assert bench.with_goal("audit_throughput", "SQLite", bench.parse_line(line)).goal == ""
    line = "PostgreSQL dispensations/s, copy queued (redis) (after), 4 clients    147.3"
    row = bench.with_goal("dispensation", "PostgreSQL", bench.parse_line(line))
    assert row.goal == "≥ 200 dispensations/s: 147.3, not met"
    line = "SQLite ratio after / before                                          16x"
    assert bench.parse_line(line).ratio == "16×"
    line = "SQLite copy ready after the commit, 6.3/s (p50 / p95; goal p95 <= 2 s)  0.15 s / 0.37 s"
    assert bench.with_goal("dispensation", "SQLite", bench.parse_line(line)).goal == "p95 ≤ 2 s: 0.37, met"


def test_record_parts_search_floor_and_verify(bench: ModuleType) -> None:
    line = "PostgreSQL tree, 1000 documents: p50 3.93 ms (CPU 2.36 ms), p95 5.76 ms"
    assert (
        bench.with_goal("record_page", "PostgreSQL", bench.parse_line(line)).goal
        == "p50 ≤ 1 ms: 3.93, not met"
    )
    line = (
        "SQLite matricule: p50 2.87 ms, p95 3.38 ms, SQL queries per search [3]; bare SQL p50 0.04 ms, "
        "p95 0.08 ms"
    )
    row = bench.parse_line(line)
    assert (row.operation, row.floor, row.ratio) == ("matricule", "bare SQL p50 0.04 ms", "71.8×")
    # verify_audit is judged at the goal's size only: a reduced run is mostly the command's start.
    line = "SQLite: verify_audit over 20,000 events: 2.2 s (exit 0)"
    row = bench.with_goal("verify_audit", "SQLite", bench.parse_line(line))
    assert (row.operation, row.figure, row.goal) == (
        "verify_audit over 20,000 events",
        "2.2 s (exit 0)",
        "1,000,000 events ≤ 5 s",
    )
    line = "PostgreSQL: verify_audit over 1,000,000 events (--processes 2): 4.1 s (exit 0)"
    assert (
        bench.with_goal("verify_audit", "PostgreSQL", bench.parse_line(line)).goal
        == "1,000,000 events ≤ 5 s: 4.10, met"
    )
    # A line with nothing to read stays as it was.
    row = bench.with_goal(
        "tlog_sequencer", "SQLite", bench.parse_line("SQLite nothing to sequence: tree size 200000")
    )
    assert (row.operation, row.figure, row.floor, row.ratio, row.goal) == (
        "nothing to sequence",
        "tree size 200000",
        "",
        "",
        "",
    )
