"""``esante verify_log``: the stored log checked against the events and its checkpoints; each
tampering with the log's own tables is found and named."""

import pytest
from django.core.management import CommandError, call_command

from esante.audit.catalogue import AuditAction
from esante.audit.services import audit_record
from esante.tlog.models import LogCheckpoint, LogLeaf, LogTile
from esante.tlog.sequencer import sequence_pending
from esante.tlog.verification import verify_log


@pytest.fixture
def log(db: None) -> None:
    for i in range(600):
        audit_record(action=AuditAction.LOGOUT, actor_label="tester", details={"n": i})
    sequence_pending(limit=250)
    audit_record(action=AuditAction.LOGOUT, actor_label="tester")  # one waiting


def test_an_intact_log(log: None, capsys: pytest.CaptureFixture[str]) -> None:
    result = verify_log()
    assert result.ok and (result.leaves, result.checkpoints, result.waiting) == (600, 3, 1)
    call_command("verify_log")
    assert (
        "public log intact: 600 leaves, 3 signed checkpoints (0 cosigned by the witness); "
        "1 audit events not yet in the log"
    ) in (capsys.readouterr().out)


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
