"""The idle timeout of portal sessions, and sessions written only when they change."""

import datetime
from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from freezegun import freeze_time

from esante.audit.models import AuditEvent
from tests.access.factories import make_professional

pytestmark = pytest.mark.django_db

PAGE = reverse("access:my_patients")
START = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.UTC)


def session_writes(queries: CaptureQueriesContext) -> list[str]:
    return [
        query["sql"]
        for query in queries.captured_queries
        if "django_session" in query["sql"] and not query["sql"].lstrip().upper().startswith("SELECT")
    ]


@pytest.fixture
def logged_in(client: Client) -> Client:
    with freeze_time(START):
        client.force_login(make_professional().user)
        assert client.get(PAGE).status_code == 200
    return client


def test_a_session_idle_beyond_the_limit_goes_to_the_login_page(logged_in: Client) -> None:
    idle = settings.ESANTE_SESSION_IDLE_SECONDS
    events = AuditEvent.objects.count()
    with freeze_time(START + datetime.timedelta(seconds=idle + 1)):
        response = logged_in.get(PAGE)
        assert response.status_code == 302
        assert response.url.startswith(settings.LOGIN_URL)
        # The session is gone, not merely refused once.
        assert logged_in.get(PAGE).status_code == 302
    assert not Session.objects.exists()
    assert AuditEvent.objects.count() == events  # as an expired session: nothing is traced


def test_a_session_at_the_limit_still_works(logged_in: Client) -> None:
    with freeze_time(START + datetime.timedelta(seconds=settings.ESANTE_SESSION_IDLE_SECONDS)):
        assert logged_in.get(PAGE).status_code == 200


def test_activity_keeps_the_session_open_past_the_limit(logged_in: Client) -> None:
    idle = settings.ESANTE_SESSION_IDLE_SECONDS
    for step in range(1, 6):
        with freeze_time(START + datetime.timedelta(seconds=step * (idle - 60))):
            assert logged_in.get(PAGE).status_code == 200
    # Idle from the last request on: the limit counts from there.
    with freeze_time(START + datetime.timedelta(seconds=5 * (idle - 60) + idle + 1)):
        assert logged_in.get(PAGE).status_code == 302


def test_a_page_read_within_the_touch_interval_writes_no_session(logged_in: Client) -> None:
    touch = settings.ESANTE_SESSION_TOUCH_SECONDS
    with freeze_time(START + datetime.timedelta(seconds=touch - 1)):
        with CaptureQueriesContext(connection) as queries:
            assert logged_in.get(PAGE).status_code == 200
    assert session_writes(queries) == []
    with freeze_time(START + datetime.timedelta(seconds=touch)):
        with CaptureQueriesContext(connection) as queries:
            assert logged_in.get(PAGE).status_code == 200
    [write] = session_writes(queries)
    assert write.lstrip().upper().startswith("UPDATE")
    # The stored row now lives from this request on.
    expires = Session.objects.get().expire_date
    assert expires == START + datetime.timedelta(seconds=touch + settings.SESSION_COOKIE_AGE)


def test_an_anonymous_page_creates_no_session(client: Client, db: Any) -> None:
    with CaptureQueriesContext(connection) as queries:
        client.get(settings.LOGIN_URL)
    assert session_writes(queries) == []
    assert not Session.objects.exists()
