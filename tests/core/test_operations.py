"""/metrics, /healthz and /readyz: what the load balancer and the monitoring network are told."""

import ipaddress
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from esante.audit.anchoring import audit_anchor
from esante.audit.catalogue import AuditAction
from esante.audit.chaining import chain_pending
from esante.audit.services import audit_record
from esante.core import jobs
from esante.core.health import forget_migrations_check
from esante.core.metrics import metrics_dir_clean
from tests.access.factories import make_patient


@jobs.job()
def metrics_test_job() -> None:
    """A job for the queue-depth gauge; no consumer runs it in these tests."""


@pytest.fixture
def local() -> Client:
    """A client on loopback, as Prometheus on the app server itself."""
    return Client(HTTP_HOST="127.0.0.1", REMOTE_ADDR="127.0.0.1")


@pytest.fixture(autouse=True)
def own_audit_files(settings: Any, tmp_path: Path) -> None:
    settings.AUDIT_HEADS_FILE = tmp_path / "audit" / "heads.jsonl"
    settings.AUDIT_SIGNER_STATE_FILE = tmp_path / "audit" / "signer-state.json"
    settings.AUDIT_SIGNING_KEY_FILE = tmp_path / "audit" / "signing-key.pem"
    settings.AUDIT_PUBLIC_KEY_FILE = tmp_path / "audit" / "signing-key.pub.pem"
    settings.AUDIT_HEADS_COPY_FILES = []
    settings.AUDIT_WITNESS_URL = ""


@pytest.fixture(autouse=True)
def _fresh_migrations_check() -> Iterator[None]:
    forget_migrations_check()
    yield
    forget_migrations_check()


def scrape(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def requests_counted(samples: dict[Any, float], view: str, status: str) -> float:
    key = ("esante_http_request_duration_seconds_count", (("status", status), ("view", view)))
    return samples.get(key, 0.0)


# --- /readyz ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_readyz_is_ready_when_database_migrations_and_audit_files_are(local: Client) -> None:
    response = local.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "migrations": "ok", "audit": "ok"},
    }
    assert response["Cache-Control"].startswith("max-age=0")


def test_readyz_without_database_is_503(local: Client) -> None:
    # No database access is allowed in this test: the connection fails like a dead server.
    response = local.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["reason"] == "the database does not answer"
    assert body["checks"]["database"] == "the database does not answer"
    assert body["checks"]["migrations"] == "skipped"


@pytest.mark.django_db
def test_readyz_with_a_migration_not_applied_is_503(local: Client) -> None:
    last = MigrationRecorder.Migration.objects.filter(app="audit").order_by("-id").first()
    assert last is not None
    last.delete()  # the test's transaction rolls it back
    response = local.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reason"] == "1 migration(s) not applied (esante migrate)"
    assert response.json()["checks"]["database"] == "ok"


@pytest.mark.django_db
def test_readyz_with_an_unloadable_signing_key_is_503(local: Client, settings: Any, tmp_path: Path) -> None:
    settings.AUDIT_SIGNING_KEY_FILE.parent.mkdir(parents=True)
    settings.AUDIT_SIGNING_KEY_FILE.write_text(
        "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n"
    )
    response = local.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reason"] == "the audit signing key does not load"
    assert str(tmp_path) not in response.content.decode()  # no path to the public


@pytest.mark.django_db
def test_readyz_with_a_signing_key_that_cannot_be_created_is_503(
    local: Client, settings: Any, tmp_path: Path
) -> None:
    (tmp_path / "not-a-directory").write_text("")
    settings.AUDIT_SIGNING_KEY_FILE = tmp_path / "not-a-directory" / "signing-key.pem"
    response = local.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reason"] == "the audit signing key is missing and cannot be created"


@pytest.mark.django_db
def test_readyz_with_an_unreadable_heads_file_is_503(local: Client, settings: Any) -> None:
    settings.AUDIT_HEADS_FILE.parent.mkdir(parents=True)
    settings.AUDIT_HEADS_FILE.write_text("not json\n")
    response = local.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reason"] == "the audit heads file is unreadable"
    assert response.json()["checks"]["audit"] == "the audit heads file is unreadable"


@pytest.mark.django_db
def test_readyz_after_a_signature_is_ready(local: Client) -> None:
    audit_record(action=AuditAction.LOGOUT, actor_label="tester")
    assert audit_anchor() is not None  # creates the key and the heads file
    assert local.get("/readyz").status_code == 200


def test_readyz_and_metrics_refuse_other_methods(local: Client) -> None:
    assert local.post("/readyz").status_code == 405
    assert local.post("/metrics").status_code == 405


# --- /metrics: who may read it ---------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "meta",
    [
        {"REMOTE_ADDR": "203.0.113.7"},  # the Internet
        {"REMOTE_ADDR": "10.20.0.5"},  # the private network, not the monitoring one by default
        # Loopback, but carrying a forwarded address: a proxy the platform does not trust (its
        # clients would all look like loopback).
        {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.7"},
        # A trusted proxy forwarding an outside client.
        {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": "203.0.113.7"},
    ],
)
def test_metrics_is_a_404_outside_the_monitoring_network(settings: Any, meta: dict[str, str]) -> None:
    settings.ESANTE_TRUSTED_PROXIES = ["10.0.0.2"]
    client = Client(HTTP_HOST="127.0.0.1", **meta)
    client.get("/")
    response = client.get("/metrics")
    assert response.status_code == 404
    body = response.content.decode()
    assert "esante_" not in body and "# HELP" not in body
    assert response["Content-Type"].startswith("text/html")  # the ordinary 404 page


@pytest.mark.django_db
def test_metrics_follows_the_allowed_networks(settings: Any) -> None:
    settings.ESANTE_TRUSTED_PROXIES = ["10.0.0.2"]
    settings.METRICS_ALLOWED_NETWORKS = [ipaddress.ip_network("10.20.0.0/16")]
    assert Client(HTTP_HOST="127.0.0.1", REMOTE_ADDR="10.20.0.5").get("/metrics").status_code == 200
    # Through the trusted proxy, the forwarded monitoring host is the client.
    proxied = Client(HTTP_HOST="127.0.0.1", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="10.20.3.4")
    assert proxied.get("/metrics").status_code == 200
    # Loopback is no longer in the list.
    assert Client(HTTP_HOST="127.0.0.1", REMOTE_ADDR="127.0.0.1").get("/metrics").status_code == 404


def test_a_malformed_allowed_network_stops_start_up(tmp_path: Path) -> None:
    from tests.core.test_core import esante_start

    result = esante_start(tmp_path, "check", ESANTE_DEMO="1", ESANTE_METRICS_ALLOWED="10.0.0.0/33")
    assert result.returncode != 0
    assert "ESANTE_METRICS_ALLOWED holds a value that is not a network" in result.stderr


# --- /metrics: what it says ------------------------------------------------------------------


@pytest.mark.django_db
def test_request_counter_grows_by_view_and_status_class(local: Client) -> None:
    before = scrape(local)
    for _ in range(3):
        assert local.get("/").status_code == 200
    assert local.get("/no-such-page/").status_code == 404
    after = scrape(local)
    assert (
        requests_counted(after, "core:landing", "2xx") == requests_counted(before, "core:landing", "2xx") + 3
    )
    assert requests_counted(after, "unmatched", "4xx") == requests_counted(before, "unmatched", "4xx") + 1
    # The first scrape itself was counted too.
    assert requests_counted(after, "core:metrics", "2xx") >= 1
    buckets = [
        value
        for (name, labels), value in after.items()
        if name == "esante_http_request_duration_seconds_bucket" and ("view", "core:landing") in labels
    ]
    assert buckets and max(buckets) >= 3


@pytest.mark.django_db
def test_metrics_never_carry_patient_data(local: Client) -> None:
    patient = make_patient("Pig", "Peppa")
    local.get(f"/edocuments/patient/{patient.public_id}/")
    local.get(f"/nope/{patient.matricule}/")
    page = local.get("/metrics").content.decode()
    assert 'view="documents:record"' in page
    for datum in (patient.matricule, str(patient.public_id), patient.birth_name):
        assert datum not in page
    assert "/nope/" not in page and "/edocuments/" not in page


@pytest.mark.django_db
def test_audit_lag_counts_the_events_not_yet_signed(local: Client) -> None:
    audit_record(action=AuditAction.LOGOUT, actor_label="tester")
    assert audit_anchor() is not None
    signed = scrape(local)
    assert signed[("esante_audit_unsigned_events", ())] == 0
    assert signed[("esante_audit_unsigned_oldest_seconds", ())] == 0
    for _ in range(4):
        audit_record(action=AuditAction.LOGOUT, actor_label="tester")
    lagging = scrape(local)
    assert lagging[("esante_audit_unsigned_events", ())] == 4
    assert lagging[("esante_audit_chain_sequence", ())] == signed[("esante_audit_chain_sequence", ())] + 4
    assert lagging[("esante_audit_signed_sequence", ())] == signed[("esante_audit_chain_sequence", ())]
    assert 0 <= lagging[("esante_audit_unsigned_oldest_seconds", ())] < 60
    assert lagging[("esante_metrics_source_up", (("source", "audit"),))] == 1
    audit_anchor()
    assert scrape(local)[("esante_audit_unsigned_events", ())] == 0


@pytest.mark.django_db
def test_audit_lag_counts_the_events_waiting_for_the_chainer(local: Client, settings: Any) -> None:
    audit_record(action=AuditAction.LOGOUT, actor_label="tester")
    chained = scrape(local)
    assert chained[("esante_audit_unchained_events", ())] == 0
    assert chained[("esante_audit_unchained_oldest_seconds", ())] == 0
    settings.AUDIT_CHAINING = "batched"
    for _ in range(3):
        audit_record(action=AuditAction.LOGOUT, actor_label="tester")
    waiting = scrape(local)
    assert waiting[("esante_audit_unchained_events", ())] == 3
    assert 0 <= waiting[("esante_audit_unchained_oldest_seconds", ())] < 60
    # Waiting events are not in the chain yet: its head did not move.
    assert waiting[("esante_audit_chain_sequence", ())] == chained[("esante_audit_chain_sequence", ())]
    assert chain_pending() == 3
    after = scrape(local)
    assert after[("esante_audit_unchained_events", ())] == 0
    assert after[("esante_audit_unchained_oldest_seconds", ())] == 0
    assert after[("esante_audit_chain_sequence", ())] == chained[("esante_audit_chain_sequence", ())] + 3


@pytest.mark.django_db
def test_an_unreadable_heads_file_says_the_audit_source_is_down(local: Client, settings: Any) -> None:
    settings.AUDIT_HEADS_FILE.parent.mkdir(parents=True)
    settings.AUDIT_HEADS_FILE.write_text("not json\n")
    samples = scrape(local)
    assert samples[("esante_metrics_source_up", (("source", "audit"),))] == 0
    assert ("esante_audit_unsigned_events", ()) not in samples


@pytest.mark.django_db
def test_job_queue_depth_counts_the_waiting_jobs(local: Client, tmp_path: Path) -> None:
    jobs.queue.use("sqlite", path=tmp_path / "jobs.sqlite3", name=f"esante-test-{uuid.uuid4().hex[:8]}")
    try:
        assert scrape(local)[("esante_job_queue_pending", ())] == 0
        for _ in range(3):
            assert jobs.enqueue(metrics_test_job)
        samples = scrape(local)
        assert samples[("esante_job_queue_pending", ())] == 3
        assert samples[("esante_metrics_source_up", (("source", "job_queue"),))] == 1
        jobs.queue.flush()
        assert scrape(local)[("esante_job_queue_pending", ())] == 0
    finally:
        jobs.queue.use_settings()


def test_metric_files_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead = 2**22 + 12345  # above the kernel's pid_max default of 2**22
    (tmp_path / f"histogram_{dead}.db").write_bytes(b"")
    (tmp_path / f"histogram_{os.getpid()}.db").write_bytes(b"")
    assert metrics_dir_clean(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"histogram_{os.getpid()}.db"]


def test_the_metrics_directory_is_prometheus_multiprocess_mode(settings: Any) -> None:
    from prometheus_client import values

    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == str(settings.ESANTE_METRICS_DIR)
    assert values.ValueClass is not values.MutexValue


@pytest.mark.django_db
def test_operations_endpoints_answer_plain_http_in_production(local: Client, settings: Any) -> None:
    # The load balancer and Prometheus ask the app server directly, without TLS.
    settings.SECURE_SSL_REDIRECT = True
    assert local.get("/").status_code == 301
    assert local.get("/readyz").status_code == 200
    assert local.get("/healthz").status_code == 200
    assert local.get("/metrics").status_code == 200
