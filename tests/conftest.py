"""Shared fixtures.

The audit table refuses UPDATE, DELETE and TRUNCATE (database triggers). Ordinary tests run in a
transaction that is rolled back, which the triggers allow. Tests that need real commits (several
connections, threads) use ``committed_db``: it empties the database afterwards by removing the
triggers, flushing, and installing them again.
"""

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models.sql.compiler import SQLCompiler
from django.db.transaction import TransactionManagementError
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from esante.audit import triggers
from esante.audit.models import AuditChainHead, AuditEvent

# Property tests judge results, not speed: on a loaded machine Hypothesis's deadline and its
# too-slow health check fail tests whose every example was right (speed is for benchmarks/).
hypothesis_settings.register_profile("esante", deadline=None, suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile("esante")


@pytest.fixture(scope="session")
def django_db_setup(
    django_test_environment: Any, django_db_blocker: Any, django_db_keepdb: bool
) -> Iterator[None]:
    """The test database, always created: pytest-django creates it only when a collected test
    carries the ``django_db`` marker, and ``committed_db`` tests deliberately do not."""
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        config = setup_databases(verbosity=0, interactive=False, keepdb=django_db_keepdb, aliases={"default"})
    yield
    with django_db_blocker.unblock():
        teardown_databases(config, verbosity=0, keepdb=django_db_keepdb)


@pytest.fixture(autouse=True)
def _search_limits_forgotten() -> Iterator[None]:
    """Each test starts with no professional known at the search rate limit: the process
    remembers who reached it (``access.services``), and rolled-back tests reuse ids."""
    from esante.access.services import forget_search_limits

    forget_search_limits()
    yield
    forget_search_limits()


def _own_atomic_blocks(compiler: SQLCompiler) -> int:
    """The atomic blocks the code under test opened itself: not the test case's own."""
    return sum(
        1 for block in compiler.connection.atomic_blocks if not getattr(block, "_from_testcase", False)
    )


@pytest.fixture(scope="session", autouse=True)
def _row_locks_need_the_codes_own_transaction() -> Iterator[None]:
    """``select_for_update`` outside a transaction opened by the code itself fails, on every
    database, in every test.

    In production a view runs in autocommit and PostgreSQL refuses a row lock there
    (``TransactionManagementError``); but SQLite ignores row locks, and a test inside pytest-django's
    test transaction is never in autocommit, so neither run would see the bug. Here a lock taken
    while only the test case's transaction is open fails as it would on PostgreSQL in production.
    """
    original = SQLCompiler.as_sql

    def as_sql(self: SQLCompiler, *args: Any, **kwargs: Any) -> Any:
        if self.query.select_for_update and _own_atomic_blocks(self) == 0:
            raise TransactionManagementError(
                "select_for_update cannot be used outside of a transaction (the code's own: "
                "in production this query runs in autocommit)."
            )
        return original(self, *args, **kwargs)

    SQLCompiler.as_sql = as_sql  # type: ignore[method-assign]
    try:
        yield
    finally:
        SQLCompiler.as_sql = original  # type: ignore[method-assign]


@pytest.fixture
def committed_db(django_db_setup: Any, django_db_blocker: Any) -> Iterator[None]:
    with django_db_blocker.unblock():
        try:
            yield
        finally:
            triggers.remove(connection)
            try:
                call_command("flush", interactive=False, verbosity=0)
                AuditChainHead.objects.update_or_create(pk=1, defaults={"sequence": 0, "hash": "0" * 64})
            finally:
                triggers.install(connection)


@pytest.fixture
def audit_events() -> Any:
    """The audit events written so far, oldest first, as (action, outcome) pairs."""

    def read(**filters: Any) -> list[tuple[str, str]]:
        return list(
            AuditEvent.objects.filter(**filters).order_by("sequence").values_list("action", "outcome")
        )

    return read


def otp_verified_login(client: Any, user: Any) -> None:
    """Logs ``user`` in with a session verified by a one-time code device, as the operators'
    admin requires (the full password + code flow is tested in tests/accounts)."""
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_email.models import EmailDevice

    device = EmailDevice.objects.create(user=user, name="test", email="operateur@example.lu", confirmed=True)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


# --- an S3-protocol object store: moto's standalone server --------------------------------------
KEY_ID, SECRET = "AKIAESANTETEST000000", "esante-test-secret-key-never-logged"
REGION = "eu-west-1"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's standalone S3 server on 127.0.0.1, on a port the OS chose; stopped after the tests."""
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r"Running on http://127\.0\.0\.1:(\d+)", log.read_text())):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"moto's server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{found.group(1)}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client of the test server (as an operator, or someone behind the platform's back)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
    )
