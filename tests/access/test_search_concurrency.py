"""The patient-search rate limit under real concurrency (PostgreSQL): searches sent at once.

The search reads outside any transaction (a lag-tolerant read, on the standby when one is in
use); then the limit's check, the count and the trace run in one transaction holding the
professional's row, so concurrent searches by one professional queue and each one sees those
committed before it: with the limit at 1, exactly one search is answered and every other one is
refused (429) and traced as refused.
"""

import threading
import time
from typing import Any

import pytest
from django.db import connection, connections
from django.test import Client
from django.urls import reverse

from esante.access import selectors
from esante.audit.models import AuditEvent

from .factories import make_patient, make_professional

SEARCHES = 8


@pytest.mark.parametrize("limit", [1, 3])
def test_concurrent_searches_stay_within_the_rate_limit(
    committed_db: None, settings: Any, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("row locks under real concurrency: PostgreSQL only (SQLite serialises writers)")
    settings.ESANTE_SEARCH_RATE_LIMIT = limit
    pharmacist = make_professional("pharmacist")
    patient = make_patient("Zyxwaldor", "Quentinella")
    # A slow search keeps the race window open between the limit's check and the search's count.
    search_page = selectors.patient_search_page

    def slow_search_page(**kwargs: Any) -> Any:
        time.sleep(0.2)
        return search_page(**kwargs)

    monkeypatch.setattr(selectors, "patient_search_page", slow_search_page)
    clients = []
    for _ in range(SEARCHES):
        client = Client()
        client.force_login(pharmacist.user)
        clients.append(client)
    barrier = threading.Barrier(SEARCHES)
    outcomes: list[Any] = []
    lock = threading.Lock()

    def search(client: Client) -> None:
        try:
            barrier.wait(timeout=30)
            response = client.post(reverse("access:search"), {"matricule": patient.matricule})
            result: Any = (response.status_code, "ZYXWALDOR" in response.content.decode())
        except Exception as error:  # reported by the assertions below
            result = error
        finally:
            connections.close_all()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=search, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sorted(outcomes) == [(200, True)] * limit + [(429, False)] * (SEARCHES - limit), outcomes
    events = AuditEvent.objects.filter(action="patient.search", actor=pharmacist.user)
    assert events.filter(outcome="success").count() == limit
    assert events.filter(outcome="refused", details__reason="rate_limited").count() == SEARCHES - limit


@pytest.mark.django_db
def test_search_over_the_limit_runs_nothing_and_counts_nothing(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from esante.access import services
    from esante.patients.selectors import patient_search_criteria

    settings.ESANTE_SEARCH_RATE_LIMIT = 1
    pharmacist = make_professional("pharmacist")
    patient = make_patient()
    criteria = patient_search_criteria(matricule=patient.matricule, name="", first_name="", birth_date=None)
    page = services.patient_search(professional=pharmacist, criteria=criteria, page=1, page_size=25)
    assert [p.pk for p in page.rows] == [patient.pk]
    ran: list[str] = []
    monkeypatch.setattr(selectors, "patient_search_page", lambda **kwargs: ran.append("searched"))
    with pytest.raises(services.SearchRateLimited):
        services.patient_search(professional=pharmacist, criteria=criteria, page=1, page_size=25)
    assert ran == []
    assert list(AuditEvent.objects.order_by("sequence").values_list("action", "outcome")) == [
        ("patient.search", "success"),
        ("patient.search", "refused"),
    ]
    # Also makes this module runnable alone: pytest-django sets up the test database only when a
    # collected test is marked ``django_db``, and ``committed_db`` relies on that set-up.


@pytest.mark.django_db
def test_a_process_that_did_not_see_the_limit_still_refuses(settings: Any) -> None:
    """The shortcut is this process's memory; another worker's search over the limit is refused
    under the professional's row lock, after its search ran, and counts nothing."""
    from esante.access import services
    from esante.patients.selectors import patient_search_criteria

    settings.ESANTE_SEARCH_RATE_LIMIT = 2
    pharmacist = make_professional("pharmacist")
    patient = make_patient()
    criteria = patient_search_criteria(matricule=patient.matricule)
    for _ in range(2):
        services.patient_search(professional=pharmacist, criteria=criteria, page=1, page_size=25)
    for _ in range(2):
        services.forget_search_limits()  # as another worker process, which never saw the limit
        with pytest.raises(services.SearchRateLimited):
            services.patient_search(professional=pharmacist, criteria=criteria, page=1, page_size=25)
    outcomes = AuditEvent.objects.order_by("sequence").values_list("outcome", flat=True)
    assert list(outcomes) == ["success", "success", "refused", "refused"]


@pytest.mark.django_db
def test_the_limit_ends_with_the_window(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused before anything is searched while the window holds the limit's searches; allowed
    again once the oldest of them left it (as the count says)."""
    import datetime

    from freezegun import freeze_time

    from esante.access import services
    from esante.patients.selectors import patient_search_criteria

    settings.ESANTE_SEARCH_RATE_LIMIT = 2
    window = settings.ESANTE_SEARCH_RATE_WINDOW_SECONDS
    pharmacist = make_professional("pharmacist")
    criteria = patient_search_criteria(matricule=make_patient().matricule)
    start = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=datetime.UTC)

    def search() -> str:
        try:
            services.patient_search(professional=pharmacist, criteria=criteria, page=1, page_size=25)
        except services.SearchRateLimited:
            return "refused"
        return "answered"

    with freeze_time(start) as clock:
        assert search() == "answered"
        clock.tick(100)
        assert search() == "answered"
        ran: list[str] = []
        search_page = selectors.patient_search_page
        monkeypatch.setattr(
            selectors, "patient_search_page", lambda **kw: ran.append("x") or search_page(**kw)
        )
        clock.tick(window - 101)  # the first search is still in the window
        assert search() == "refused" and ran == []
        clock.tick(2)  # the first search left the window: one more search, then the limit again
        assert search() == "answered" and ran == ["x"]
        assert search() == "refused" and ran == ["x"]
        clock.tick(100)  # the second left the window
        assert search() == "answered"
