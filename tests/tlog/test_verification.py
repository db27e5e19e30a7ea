"""``esante verify_log``: the stored log checked against the events and its checkpoints; each
tampering with the log's own tables is found and named."""

from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from esante.audit.catalogue import AuditAction
from esante.audit.services import audit_record
from esante.tlog.models import LogCheckpoint, LogLeaf, LogState, LogTile
from esante.tlog.sequencer import sequence_pending
from esante.tlog.verification import verify_log
from tests.audit.settle import settle


@pytest.fixture(autouse=True)
def own_heads_files(settings: Any, tmp_path: Path) -> None:
    """``verify_audit`` reads the signed heads: each test signs its own."""
    settings.AUDIT_HEADS_FILE = tmp_path / "heads.jsonl"
    settings.AUDIT_SIGNER_STATE_FILE = tmp_path / "signer-state.json"
    settings.AUDIT_HEADS_COPY_FILES = []
    settings.AUDIT_WITNESS_URL = ""


@pytest.fixture
def log(db: None) -> None:
    for i in range(600):
        audit_record(action=AuditAction.LOGOUT, actor_label="tester", details={"n": i})
    sequence_pending(limit=250)
    audit_record(action=AuditAction.LOGOUT, actor_label="tester")  # one waiting
    settle()  # chained (batched: by the chainer's pass), not yet in the log


def test_an_intact_log(log: None, capsys: pytest.CaptureFixture[str]) -> None:
    result = verify_log()
    assert result.ok and (result.leaves, result.checkpoints, result.waiting) == (600, 3, 1)
    call_command("verify_log")
    assert (
        "public log intact: 600 leaves, 3 signed checkpoints (0 cosigned by the witness); "
        "1 audit events not yet in the log"
    ) in (capsys.readouterr().out)


def test_an_event_waiting_for_the_chainer_is_not_yet_in_the_log(log: None, settings: Any) -> None:
    settings.AUDIT_CHAINING = "batched"
    audit_record(action=AuditAction.LOGOUT, actor_label="tester")  # committed, no sequence yet
    result = verify_log()
    assert result.ok and (result.leaves, result.waiting) == (600, 2)


@pytest.mark.parametrize(
    ("tamper", "found"),
    [
        (
            lambda: LogLeaf.objects.filter(index=7).update(salt=b"\x01" * 32),
            "leaf 7: its commitment does not open",
        ),
        (lambda: LogLeaf.objects.filter(index=7).update(commitment=b"\x01" * 32), "leaf 7: its commitment"),
        (lambda: LogLeaf.objects.filter(index=300).delete(), "leaf 300 is missing"),
        (
            lambda: LogTile.objects.filter(level=0, index=1).update(hashes=b"\x00" * 32 * 256),
            "tile 0/1 differs from the one its leaves give",
        ),
        (lambda: LogTile.objects.filter(level=1, index=0).delete(), "tile 1/0 is missing"),
        (
            lambda: LogCheckpoint.objects.filter(size=500).update(note="esante.lu/edocuments\n500\nAAAA\n\n"),
            "checkpoint 500",
        ),
        (
            lambda: LogCheckpoint.objects.filter(size=500).update(root=b"\x02" * 32),
            "differs from its stored size or root",
        ),
        (
            lambda: LogLeaf.objects.filter(index__gte=550).delete(),
            "checkpoint 600 covers more leaves than the log holds",
        ),
    ],
)
def test_tampering_with_the_log_is_found(log: None, tamper: object, found: str) -> None:
    tamper()  # type: ignore[operator]
    result = verify_log()
    assert not result.ok and found in result.problem
    with pytest.raises(CommandError, match="public log BROKEN") as raised:
        call_command("verify_log")
    assert raised.value.returncode == 1


def test_a_checkpoint_whose_root_is_not_its_leaves_is_found(log: None) -> None:
    """Signed with the platform's own key (whoever holds it), the forged root is still found."""
    from esante.tlog.sequencer import sign_checkpoint

    forged_root = b"\x03" * 32
    LogCheckpoint.objects.filter(size=250).update(root=forged_root, note=sign_checkpoint(250, forged_root))
    result = verify_log()
    assert "checkpoint 250: its root is not the root of the first 250 leaves" in result.problem


# ``esante verify_audit`` checks the tree against the checkpoints in its own pass over the events.


def test_verify_audit_opens_every_leaf_and_recomputes_the_checkpoints_roots(
    log: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from esante.audit.anchoring import audit_anchor
    from esante.audit.verification import verify_chain

    audit_anchor(initial=True)
    result = verify_chain()
    assert result.ok and (result.checked, result.leaves, result.checkpoints) == (601, 600, 3)
    call_command("verify_audit")
    assert "public log: 600 leaves opened, the roots of its 3 signed checkpoints recomputed" in (
        capsys.readouterr().out
    )


_TREE_TAMPERS = [
    (lambda: LogLeaf.objects.filter(index=7).update(salt=b"\x01" * 32), 8, "leaf's commitment does not open"),
    (lambda: LogLeaf.objects.filter(index=7).update(commitment=b"\x01" * 32), 8, "leaf's commitment"),
    (lambda: LogLeaf.objects.filter(index=300).delete(), 301, "its public log leaf (300) is missing"),
    (lambda: LogLeaf.objects.filter(index__gte=550).delete(), 551, "its public log leaf (550) is missing"),
    (
        lambda: LogCheckpoint.objects.filter(size=500).update(note="esante.lu/edocuments\n500\nAAAA\n\n"),
        None,
        "public log checkpoint 500",
    ),
    (
        lambda: LogCheckpoint.objects.filter(size=500).update(root=b"\x02" * 32),
        None,
        "public log checkpoint 500: its signed body differs from its stored root",
    ),
    (
        lambda: LogState.objects.filter(pk=1).update(root=b"\x02" * 32),
        None,
        "the public log's state (size 600) differs from its 600 leaves",
    ),
    (
        lambda: LogState.objects.filter(pk=1).update(size=200),
        None,
        "public log checkpoint 250 covers more leaves than the log's state (200): leaves were removed",
    ),
]


@pytest.mark.parametrize(("tamper", "sequence", "found"), _TREE_TAMPERS)
def test_verify_audit_finds_a_tampered_tree(
    log: None, tamper: object, sequence: int | None, found: str
) -> None:
    from esante.audit.verification import verify_chain

    tamper()  # type: ignore[operator]
    result = verify_chain()
    assert not result.ok and found in result.problem and result.broken_sequence == sequence
    with pytest.raises(CommandError, match="audit trail BROKEN") as raised:
        call_command("verify_audit")
    assert raised.value.returncode == 1


def test_verify_audit_finds_a_checkpoint_whose_root_is_not_its_leaves(log: None) -> None:
    """Signed with the platform's own key (whoever holds it), the forged root is still found."""
    from esante.audit.verification import verify_chain
    from esante.tlog.sequencer import sign_checkpoint

    forged_root = b"\x03" * 32
    LogCheckpoint.objects.filter(size=250).update(root=forged_root, note=sign_checkpoint(250, forged_root))
    result = verify_chain()
    assert result.problem == "public log checkpoint 250: its root is not the root of the first 250 leaves"


def test_ranges_in_processes_check_the_tree_with_the_same_verdict(
    committed_db: None, monkeypatch: Any
) -> None:
    """The workers open the leaves of their ranges and hand back their subtrees; the parent
    joins them and compares the roots with the checkpoints (without any sequential walk when
    all is intact); a tampered tree sends the walk back to the sequential check, same verdict."""
    from esante.audit import verification
    from esante.audit.anchoring import audit_anchor
    from esante.tlog.sequencer import sign_checkpoint

    for i in range(600):
        audit_record(action=AuditAction.LOGOUT, actor_label="tester", details={"n": i})
    sequence_pending(limit=250)
    audit_record(action=AuditAction.LOGOUT, actor_label="tester")  # one waiting
    settle()  # chained (batched: by the chainer's pass), not yet in the log
    audit_anchor(initial=True)
    monkeypatch.setattr(verification, "RANGE_SIZE", 64)

    def sequential(**kwargs: Any) -> str:
        raise AssertionError("the workers vouched for every range: no sequential walk")

    with monkeypatch.context() as patched:
        patched.setattr(verification, "raw_row_problem", sequential)
        intact = verification.verify_chain(processes=2)
    assert intact.ok and (intact.checked, intact.leaves, intact.checkpoints) == (601, 600, 3)
    forged_root = b"\x03" * 32
    LogCheckpoint.objects.filter(size=500).update(root=forged_root, note=sign_checkpoint(500, forged_root))
    broken = verification.verify_chain(processes=2)
    assert broken.problem == "public log checkpoint 500: its root is not the root of the first 500 leaves"
    LogLeaf.objects.filter(index=130).update(salt=b"\x01" * 32)
    broken = verification.verify_chain(processes=2)
    assert (broken.broken_sequence, broken.checked) == (131, 130)
    assert "leaf's commitment does not open" in broken.problem
