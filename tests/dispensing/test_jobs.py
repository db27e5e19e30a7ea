"""The job queue behind dispensations: real consumers (threads of this process) on the SQLite and
Redis storages produce the certified copy after the pharmacist's answer; a lost job is completed
by the sweep."""

import datetime
import io
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.test import TestCase

from esante.core import jobs
from esante.dispensing import certification
from esante.dispensing.jobs import dispensations_sweep
from esante.dispensing.models import CertifiedCopy, Dispensation
from esante.dispensing.services import prescription_mark_dispensed
from esante.dispensing.withdrawal import dispensation_withdraw
from esante.documents.models import Prescription
from tests.access.factories import make_patient

from .conftest import logged_in, partial_post, pharmacist_with_access, submit_prescription, urls

REDIS_URL = os.environ.get("ESANTE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _redis_or_skip() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Redis at {REDIS_URL}")


@pytest.fixture(params=["sqlite", "redis"])
def storage(request: Any, tmp_path: Path) -> Iterator[str]:
    """The queue on a real storage, under a name of its own; put back afterwards."""
    if request.param == "redis":
        _redis_or_skip()
    name = f"esante-test-{uuid.uuid4().hex[:8]}"
    jobs.queue.use(request.param, path=tmp_path / "jobs.sqlite3", url=REDIS_URL, name=name)
    try:
        yield request.param
    finally:
        jobs.queue.flush()
        jobs.queue.use_settings()


class Consumer:
    """Huey's consumer with worker threads, started from the test's own (main) thread."""

    def __init__(self) -> None:
        self.handlers = {number: signal.getsignal(number) for number in SIGNALS}
        self.consumer = jobs.queue.create_consumer(workers=2, worker_type="thread", periodic=False)

    def __enter__(self) -> "Consumer":
        self.consumer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.consumer.stop(graceful=True)
        for number, handler in self.handlers.items():
            signal.signal(number, handler)


def _wait_for(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the job did not finish in time"
        time.sleep(0.05)


def test_a_real_consumer_issues_the_copy_after_the_answer(committed_db: None, storage: str) -> None:
    patient = make_patient()
    prescription = submit_prescription(patient)
    pharmacist = pharmacist_with_access(patient)
    client = logged_in(pharmacist)

    # No consumer yet: the pharmacist's answer does not wait for the copy, whose job waits in the queue.
    response = client.post(urls(prescription)["dispense"], partial_post(prescription, [1, 0]))
    assert response.status_code == 303
    dispensation = Dispensation.objects.get()
    assert not CertifiedCopy.objects.exists() and dispensation.document_id is None
    assert jobs.queue.pending_count() == 1
    viewer = client.get(urls(prescription)["viewer"]).content.decode()
    assert "Copie certifiée en préparation…" in viewer and "Copie certifiée conforme (PDF)" not in viewer

    with Consumer():
        _wait_for(lambda: CertifiedCopy.objects.filter(dispensation=dispensation).exists())
        _wait_for(lambda: Dispensation.objects.get(pk=dispensation.pk).document_id is not None)
    assert jobs.queue.pending_count() == 0
    copy = CertifiedCopy.objects.get()
    assert copy.is_current and copy.pdf_sha256
    viewer = client.get(urls(prescription)["viewer"]).content.decode()
    assert "Copie certifiée conforme (PDF)" in viewer and "Copie certifiée en préparation…" not in viewer
    state = client.get(urls(prescription)["dispense"] + f"{dispensation.public_id}/copie-certifiee/etat/")
    assert "copie-certifiee.pdf" in state.content.decode()


@pytest.mark.django_db
def test_a_lost_job_is_completed_by_the_sweep(
    peppa: Any, prescription: Prescription, pharmacist: Any
) -> None:
    # The process stops between the commit and the queue: the job is lost (the callback is not run).
    with TestCase.captureOnCommitCallbacks() as lost:
        dispensation = prescription_mark_dispensed(
            prescription=prescription,
            pharmacist=pharmacist,
            kind="partial",
            lines=_first(prescription, 1),
            based_on_version=0,
        )
    assert len(lost) == 1 and not CertifiedCopy.objects.exists()
    assert list(certification.dispensations_unfinished()) == [dispensation]
    # A recent dispensation is left to its job by the consumer's periodic sweep...
    dispensations_sweep.call_local()
    assert not CertifiedCopy.objects.exists()
    # ... and completed once it is older than the grace period, or by the operator's command.
    assert _call("dispensation_follow_up", "--older-than", "3600") == "dispensations completed: 0\n"
    assert not CertifiedCopy.objects.exists()
    out = _call("dispensation_follow_up")
    assert out == "dispensations completed: 1\n"
    dispensation.refresh_from_db()
    assert dispensation.document_id is not None
    assert CertifiedCopy.objects.get().dispensation == dispensation
    assert list(certification.dispensations_unfinished()) == []
    assert _call("dispensation_follow_up") == "dispensations completed: 0\n"


@pytest.mark.django_db
def test_a_lost_job_after_a_withdrawal_is_completed_by_the_sweep(
    peppa: Any, prescription: Prescription, pharmacist: Any
) -> None:
    with TestCase.captureOnCommitCallbacks(execute=True):
        first = prescription_mark_dispensed(
            prescription=prescription,
            pharmacist=pharmacist,
            kind="partial",
            lines=_first(prescription, 1),
            based_on_version=0,
        )
    with TestCase.captureOnCommitCallbacks(execute=True):
        second = prescription_mark_dispensed(
            prescription=prescription,
            pharmacist=pharmacist,
            kind="partial",
            lines=_first(prescription, 1),
            based_on_version=1,
        )
    assert CertifiedCopy.objects.filter(superseded_at__isnull=True).get().dispensation == second
    with TestCase.captureOnCommitCallbacks() as lost:
        dispensation_withdraw(dispensation=second, pharmacist=pharmacist, reason="Erreur de saisie")
    assert len(lost) == 1 and not CertifiedCopy.objects.filter(superseded_at__isnull=True).exists()
    assert list(certification.dispensations_unfinished()) == [first]
    assert _call("dispensation_follow_up") == "dispensations completed: 1\n"
    assert CertifiedCopy.objects.get(superseded_at__isnull=True).dispensation == first


@pytest.mark.django_db
def test_the_periodic_sweep_completes_what_is_older_than_its_grace(
    peppa: Any, prescription: Prescription, pharmacist: Any
) -> None:
    with TestCase.captureOnCommitCallbacks():
        dispensation = prescription_mark_dispensed(
            prescription=prescription, pharmacist=pharmacist, kind="full", based_on_version=0
        )
    grace = datetime.timedelta(seconds=settings.ESANTE_FOLLOW_UP_GRACE_SECONDS + 1)
    Dispensation.objects.filter(pk=dispensation.pk).update(dispensed_at=dispensation.dispensed_at - grace)
    dispensations_sweep.call_local()
    assert CertifiedCopy.objects.get().dispensation == dispensation


def _first(prescription: Prescription, quantity: int) -> dict[int, int]:
    line = prescription.lines.order_by("position").first()
    assert line is not None
    return {line.pk: quantity}


def _call(command: str, *args: str) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_an_unreachable_queue_never_fails_the_dispensation(
    peppa: Any, prescription: Prescription, pharmacist: Any, caplog: Any
) -> None:
    jobs.queue.use("redis", url="redis://127.0.0.1:1/0", name=f"esante-test-{uuid.uuid4().hex[:8]}")
    try:
        with TestCase.captureOnCommitCallbacks(execute=True):
            dispensation = prescription_mark_dispensed(
                prescription=prescription, pharmacist=pharmacist, kind="full", based_on_version=0
            )
    finally:
        jobs.queue.use_settings()
    assert "not queued; the sweep will do its work" in caplog.text
    prescription.refresh_from_db()
    assert prescription.dispensation_state == "dispensed" and not CertifiedCopy.objects.exists()
    assert _call("dispensation_follow_up") == "dispensations completed: 1\n"
    assert CertifiedCopy.objects.get().dispensation == dispensation


def test_run_jobs_refuses_the_immediate_mode() -> None:
    from django.core.management.base import CommandError

    assert jobs.queue.immediate
    with pytest.raises(CommandError, match="immediate"):
        call_command("run_jobs")
