"""Shared fixtures.

The audit table refuses UPDATE, DELETE and TRUNCATE (database triggers). Ordinary tests run in a
transaction that is rolled back, which the triggers allow. Tests that need real commits (several
connections, threads) use ``committed_db``: it empties the database afterwards by removing the
triggers, flushing, and installing them again.
"""

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models.sql.compiler import SQLCompiler
from django.db.transaction import TransactionManagementError

from esante.audit import triggers
from esante.audit.models import AuditChainHead, AuditEvent


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
