import json
import threading
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from esante.audit import triggers
from esante.audit.anchoring import audit_anchor, read_heads
from esante.audit.catalogue import AuditAction, AuditOutcome
from esante.audit.keys import event_mac
from esante.audit.models import AuditEvent
from esante.audit.services import GENESIS_HASH, audit_record
from esante.audit.verification import verify_chain
from tests.audit.settle import settle


@pytest.fixture(autouse=True)
def fresh_heads_file() -> None:
    heads: Path = settings.AUDIT_HEADS_FILE
    heads.unlink(missing_ok=True)
    state: Path = settings.AUDIT_SIGNER_STATE_FILE
    state.unlink(missing_ok=True)


def record(n: int) -> list[AuditEvent]:
    return settle(
        [audit_record(action=AuditAction.LOGOUT, actor_label="tester", details={"n": i}) for i in range(n)]
    )


@pytest.mark.django_db
def test_events_are_chained() -> None:
    first, second = record(2)
    assert (first.sequence, first.prev_hash) == (1, GENESIS_HASH)
    assert (second.sequence, second.prev_hash) == (2, first.hash)
    assert json.loads(second.canonical)["prev"] == first.hash
    result = verify_chain()
    assert result.ok and result.checked == 2


@pytest.mark.django_db
def test_triggers_refuse_update_and_delete() -> None:
    (event,) = record(1)
    for statement in (
        "UPDATE audit_auditevent SET action = 'x'",
        "DELETE FROM audit_auditevent",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cur,
        ):
            cur.execute(statement)
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="x")
    assert AuditEvent.objects.get().action == "accounts.logout"


def test_truncate_refused_on_postgresql(committed_db: None) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no TRUNCATE; DELETE is refused instead")
    record(1)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cur:
        cur.execute("TRUNCATE audit_auditevent CASCADE")
    assert AuditEvent.objects.count() == 1


def tamper(sql: str, params: list[object]) -> None:
    """Changes the table behind the triggers' back, as someone with database access could."""
    triggers.remove(connection)
    try:
        with connection.cursor() as cur:
            cur.execute(sql, params)
    finally:
        triggers.install(connection)


@pytest.mark.django_db
def test_verify_audit_finds_a_tampered_column() -> None:
    record(5)
    audit_anchor()
    call_command("verify_audit", verbosity=0)
    tamper("UPDATE audit_auditevent SET motif = %s, action = %s WHERE sequence = 3", ["", "x"])
    with pytest.raises(CommandError, match=r"BROKEN at event #3: .*columns differ"):
        call_command("verify_audit", verbosity=0)


@pytest.mark.django_db
def test_verify_audit_finds_altered_content() -> None:
    record(4)
    event = AuditEvent.objects.get(sequence=2)
    tamper(
        "UPDATE audit_auditevent SET canonical = %s WHERE sequence = 2",
        [event.canonical.replace('"n":1', '"n":9')],
    )
    with pytest.raises(CommandError, match=r"BROKEN at event #2: its hash does not match"):
        call_command("verify_audit", verbosity=0)


@pytest.mark.django_db
def test_rehashed_chain_is_found_by_the_signed_head() -> None:
    import hashlib

    record(3)
    audit_anchor()
    record(2)
    # Rewrite event 2 and re-hash everything after it: the chain is consistent again...
    rows = list(AuditEvent.objects.order_by("sequence").values_list("sequence", "canonical", "prev_hash"))
    prev = rows[0][2]
    triggers.remove(connection)
    try:
        with connection.cursor() as cur:
            for sequence, canonical, _ in rows:
                content = json.loads(canonical)
                if sequence == 2:
                    content["details"] = {"n": 99}
                content["prev"] = prev
                text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                digest = hashlib.sha256(text.encode()).hexdigest()
                cur.execute(  # with valid MACs: as one who also holds the MAC key could
                    "UPDATE audit_auditevent SET canonical=%s, prev_hash=%s, hash=%s, details=%s, mac=%s "
                    "WHERE sequence=%s",
                    [text, prev, digest, json.dumps(content["details"]), event_mac(digest), sequence],
                )
                prev = digest
    finally:
        triggers.install(connection)
    result = verify_chain()
    # ...but not with the signature made before the rewrite.
    assert not result.ok
    assert result.broken_sequence == 3
    assert "signed" in result.problem


@pytest.mark.django_db
def test_truncated_tail_is_found() -> None:
    record(4)
    audit_anchor()
    tamper("DELETE FROM audit_auditevent WHERE sequence >= %s", [3])
    result = verify_chain()
    assert not result.ok and result.broken_sequence == 3 and "removed" in result.problem


@pytest.mark.django_db
def test_forged_heads_file_is_refused() -> None:
    record(2)
    audit_anchor()
    heads: Path = settings.AUDIT_HEADS_FILE
    line = json.loads(heads.read_text())
    line["hash"] = "f" * 64
    heads.write_text(json.dumps(line) + "\n")
    with pytest.raises(CommandError, match="signature does not verify"):
        call_command("verify_audit", verbosity=0)


@pytest.mark.django_db
def test_anchor_is_signed_and_skips_unchanged_head() -> None:
    record(2)
    first = audit_anchor()
    again = audit_anchor()
    assert first is not None and again == first
    assert [h.sequence for h in read_heads()] == [2]


@pytest.mark.django_db
def test_refusal_survives_the_rollback_of_its_action() -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_record(action=AuditAction.LOGOUT, actor_label="t")
        raise RuntimeError("the action failed")
    audit_record(action=AuditAction.LOGOUT, outcome=AuditOutcome.REFUSED, actor_label="t")
    assert list(AuditEvent.objects.values_list("action", "outcome")) == [("accounts.logout", "refused")]
    assert verify_chain().ok


def test_concurrent_writers_keep_the_chain_linear(committed_db: None) -> None:
    from django.db import connections

    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for i in range(15):
                audit_record(action=AuditAction.LOGOUT, actor_label=f"w{worker}", details={"i": i})
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    settle()
    sequences = list(AuditEvent.objects.order_by("sequence").values_list("sequence", flat=True))
    assert sequences == list(range(1, 91))
    assert len(set(AuditEvent.objects.values_list("prev_hash", flat=True))) == 90  # no two share a parent
    assert verify_chain().ok


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("motif", "autre motif"),
        ("actor_label", "quelqu'un"),
        ("client_address", "10.0.0.9"),
        ("details", '{"n": 42}'),
        ("object_type", "document"),
    ],
)
@pytest.mark.django_db
def test_verify_audit_checks_every_column(column: str, value: str) -> None:
    record(3)
    tamper(f"UPDATE audit_auditevent SET {column} = %s WHERE sequence = 2", [value])  # noqa: S608
    result = verify_chain()
    assert not result.ok and result.broken_sequence == 2 and "columns differ" in result.problem


@pytest.mark.django_db
def test_stored_rows_are_vouched_for_without_the_model() -> None:
    """The hot loop's comparison agrees with the model's on events of every shape (so it does not
    fall back to the model for each), and refuses a row whose column differs."""
    from esante.audit.chain import row_agrees, stored_rows
    from tests.access.factories import make_patient, make_professional

    professional = make_professional("doctor")
    audit_record(
        action=AuditAction.RECORD_OPEN,
        actor=professional.user,
        patient=make_patient(),
        object_type="AccessGrant",
        object_id=7,
        motif='Soins « urgents » \u00e9\u4e2d"\\',
        client_address="2001:db8::1",
        details={"z": [1, 2.5, None, True], "a": {"é": "ü", "n": -3}, "shown": ["x"]},
    )
    audit_record(action=AuditAction.LOGOUT, actor_label="tester", client_address="10.0.0.9")
    settle()
    [rows] = list(stored_rows(0, 10))
    assert row_agrees(rows[0], expected_sequence=1, previous=GENESIS_HASH)
    assert row_agrees(rows[1], expected_sequence=2, previous=rows[0][2])
    assert not row_agrees(rows[1], expected_sequence=3, previous=rows[0][2])
    for column, value in [("motif", "autre motif"), ("actor_label", "x"), ("client_address", "10.0.0.8")]:
        original = AuditEvent.objects.values_list(column, flat=True).get(sequence=2)
        tamper(f"UPDATE audit_auditevent SET {column} = %s WHERE sequence = 2", [value])  # noqa: S608
        [changed] = list(stored_rows(1, 2))
        assert not row_agrees(changed[0], expected_sequence=2, previous=rows[0][2])
        tamper(f"UPDATE audit_auditevent SET {column} = %s WHERE sequence = 2", [original])  # noqa: S608
        [restored] = list(stored_rows(1, 2))
        assert row_agrees(restored[0], expected_sequence=2, previous=rows[0][2])


def test_ranges_checked_in_processes_give_the_same_verdict(committed_db: None, monkeypatch: Any) -> None:
    """With ``processes``, ranges are checked in forked workers; a tampered event in any range
    sends the walk back to the sequential check, which names it as it would alone."""
    from esante.audit import verification

    monkeypatch.setattr(verification, "RANGE_SIZE", 4)
    record(13)
    audit_anchor()

    def sequential(**kwargs: Any) -> str:
        raise AssertionError("the workers vouched for every range: no sequential walk")

    with monkeypatch.context() as patched:
        patched.setattr(verification, "raw_row_problem", sequential)
        intact = verify_chain(processes=2)
    assert intact.ok and intact.checked == 13 and intact.fully_signed and intact.heads_checked == 1
    assert (intact.problem, intact.legacy) == ("", 0)
    tamper("UPDATE audit_auditevent SET motif = %s WHERE sequence = 10", ["changé"])
    broken = verify_chain(processes=2)
    alone = verify_chain()
    assert (broken.broken_sequence, broken.problem, broken.checked) == (10, alone.problem, alone.checked)
    assert "columns differ" in broken.problem


def _die(task: Any) -> None:
    """A range check that ends its process at once (module-level: workers receive it pickled)."""
    import os

    os._exit(9)


def test_a_worker_that_dies_leaves_the_walk_to_this_process(committed_db: None, monkeypatch: Any) -> None:
    """A worker process killed mid-walk (here: it exits at once, as the OOM killer would end it)
    breaks the pool; the walk does not wait for it, it checks the trail itself, same verdict."""
    from esante.audit import verification

    monkeypatch.setattr(verification, "RANGE_SIZE", 4)
    record(13)
    audit_anchor()
    monkeypatch.setattr(verification, "_check_range", _die)
    result = verify_chain(processes=2)
    assert result.ok and result.checked == 13 and result.heads_checked == 1


@pytest.mark.django_db
def test_a_row_slipped_in_before_the_first_event_is_found() -> None:
    record(3)
    tamper(
        "INSERT INTO audit_auditevent (sequence, created_at, actor_label, action, outcome, object_type, "
        "object_id, motif, details, canonical, prev_hash, hash) "
        "SELECT 0, created_at, actor_label, action, outcome, object_type, object_id, motif, details, "
        "canonical, prev_hash, hash FROM audit_auditevent WHERE sequence = 1",
        [],
    )
    assert AuditEvent.objects.filter(sequence=0).exists()
    result = verify_chain(processes=2)
    assert not result.ok and result.broken_sequence == 0 and result.checked == 0


@pytest.mark.django_db
def test_a_column_stored_as_another_type_is_found() -> None:
    """SQLite keeps any type in any column: a text column turned into bytes behind the triggers'
    back cannot be rendered as the canonical text renders it; the row is judged by the model's
    comparison (and the walk does not fail on it)."""
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL's columns keep their types")
    record(3)
    tamper("UPDATE audit_auditevent SET action = CAST(action AS BLOB) WHERE sequence = 2", [])
    result = verify_chain()
    assert not result.ok and result.broken_sequence == 2 and "columns differ" in result.problem


@pytest.mark.django_db
def test_columns_rendered_in_python_are_the_sql_projection() -> None:
    """``stored_rows`` renders the head and tail from the raw columns in Python; on events of
    every shape (whole seconds and fractions with trailing zeros included, on PostgreSQL whose
    timestamp text drops them), the rendering is exactly ``_projection``'s SQL one, and the hot
    loop vouches for each event; a column of another type behind the model's back renders as
    nothing on SQLite, as the SQL does."""
    import datetime

    from esante.audit.chain import HEAD, TAIL, _projection, row_agrees, stored_rows
    from tests.access.factories import make_patient, make_professional

    professional = make_professional("doctor")
    base = datetime.datetime(2026, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)
    audit_record(
        action=AuditAction.RECORD_OPEN,
        actor=professional.user,
        patient=make_patient(),
        object_type="AccessGrant",
        object_id=7,
        motif='Soins « urgents » \u00e9\u4e2d"\\\n\t\x01',
        client_address="2001:db8::1",
        details={"z": [1, 2.5, None, True], "a": {"é": "ü", "n": -3}, "shown": ["x"]},
        at=base,
    )
    for microsecond in (500_000, 120_000, 1, 999_999):
        audit_record(
            action=AuditAction.LOGOUT,
            actor_label="tester",
            client_address="10.0.0.9",
            at=base.replace(microsecond=microsecond),
        )
    audit_record(action=AuditAction.LOGOUT, outcome=AuditOutcome.REFUSED, details={"n": 1})

    def projected() -> list[tuple[Any, ...]]:
        head, tail, _ = _projection(connection.vendor)
        with connection.cursor() as cur:
            cur.execute(f"SELECT {head}, {tail} FROM audit_auditevent e ORDER BY e.sequence")  # noqa: S608
            return cur.fetchall()

    [rows] = list(stored_rows(0, 10))
    assert len(rows) == 6
    assert [(row[HEAD], row[TAIL]) for row in rows] == projected()
    previous = GENESIS_HASH
    for row in rows:
        assert row_agrees(row, expected_sequence=row[0], previous=previous)
        previous = row[2]
    if connection.vendor == "sqlite":  # values of another type than the column's, as SQLite allows
        tamper("UPDATE audit_auditevent SET actor_label = X'35', created_at = 7 WHERE sequence = 2", [])
        [rows] = list(stored_rows(0, 10))
        assert rows[1][HEAD] is None and rows[1][TAIL] is None
        assert [(row[HEAD], row[TAIL]) for row in rows] == projected()
