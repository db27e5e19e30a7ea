"""Requests without a valid token and token requests are limited per client network, counted in
the database (the same count on every application server). Beyond the limit: 429 with
``Retry-After``, one audit event for the first refused request of the window and, at the next
window, one event saying how many more there were — a flood cannot flood the audit trail."""

import datetime
from typing import Any

import pytest
from django.test import Client, override_settings
from freezegun import freeze_time

from esante.fhir.models import ApiThrottle

from .conftest import TOKEN, events, outcome_code

SEARCH = "/fhir/R4/Patient"
START = datetime.datetime(2026, 12, 1, 8, 0, tzinfo=datetime.UTC)


def _bad(address: str = "192.0.2.10") -> Any:
    return Client().get(
        SEARCH,
        {"family": "Pig", "given": "Peppa"},
        HTTP_AUTHORIZATION="Bearer not-a-token",
        REMOTE_ADDR=address,
    )


@pytest.mark.django_db
@override_settings(ESANTE_FHIR_REFUSAL_RATE_LIMIT=3, ESANTE_FHIR_REFUSAL_RATE_WINDOW_SECONDS=60)
def test_refused_requests_beyond_the_limit_are_429_and_traced_once_a_window(
    token: dict[str, Any], db: Any
) -> None:
    with freeze_time(START) as clock:
        assert [_bad().status_code for _ in range(3)] == [401, 401, 401]
        assert [e.details["reason"] for e in events("api.request")] == ["invalid_token"] * 3
        clock.tick(10)
        flood = [_bad() for _ in range(5)]
        assert {r.status_code for r in flood} == {429}
        assert {r["Retry-After"] for r in flood} == {"50"}
        assert {outcome_code(r) for r in flood} == {"rate-limited"}
        assert all(b"Pig" not in r.content for r in flood)
        traced = events("api.request")
        assert [e.details["reason"] for e in traced] == ["invalid_token"] * 3 + ["rate_limited"]
        # Software with a valid token behind the same address is not slowed down.
        valid = Client().get(
            SEARCH,
            {"family": "Pig", "given": "Peppa"},
            HTTP_AUTHORIZATION=f"Bearer {token['access_token']}",
            REMOTE_ADDR="192.0.2.10",
        )
        assert valid.status_code == 200
        # Another network is not either.
        assert _bad("198.51.100.7").status_code == 401
        clock.tick(60)
        assert _bad().status_code == 401
    summary, refusal = events("api.request")[-2:]
    assert summary.details["reason"] == "rate_limited_summary"
    assert summary.details["suppressed"] == 4
    assert summary.details["network"] == "192.0.2.10"
    assert summary.outcome == "refused" and summary.client_address == "192.0.2.10"
    assert refusal.details["reason"] == "invalid_token"


@pytest.mark.django_db
@override_settings(ESANTE_FHIR_REFUSAL_RATE_LIMIT=2)
def test_an_ipv6_subscriber_is_one_network_and_missing_tokens_count_too(db: Any) -> None:
    first = Client().get(SEARCH, REMOTE_ADDR="2001:db8:1:2::1")
    second = _bad("2001:db8:1:2::ffff")
    third = _bad("2001:db8:1:2:aaaa::1")
    assert [first.status_code, second.status_code, third.status_code] == [401, 401, 429]
    assert first["WWW-Authenticate"].startswith("Bearer")
    [row] = ApiThrottle.objects.filter(scope="refusal")
    assert (row.key, row.count) == ("2001:db8:1:2::/64", 3)


@pytest.mark.django_db
@override_settings(ESANTE_FHIR_TOKEN_RATE_LIMIT=2, ESANTE_FHIR_TOKEN_RATE_WINDOW_SECONDS=60)
def test_token_requests_are_counted_in_the_database(db: Any) -> None:
    with freeze_time(START) as clock:
        answers = [
            Client().post(TOKEN, {"grant_type": "client_credentials"}, REMOTE_ADDR="192.0.2.20").status_code
            for _ in range(5)
        ]
        assert answers == [401, 401, 429, 429, 429]
        [row] = ApiThrottle.objects.filter(scope="token")
        assert (row.key, row.count, row.suppressed) == ("192.0.2.20", 5, 2)
        assert [e.details["reason"] for e in events("api.token")][-1] == "rate_limited"
        assert len(events("api.token")) == 3
        clock.tick(61)
        assert (
            Client().post(TOKEN, {"grant_type": "client_credentials"}, REMOTE_ADDR="192.0.2.20").status_code
            == 401
        )
    summary = next(e for e in events("api.token") if e.details["reason"] == "rate_limited_summary")
    assert summary.details["suppressed"] == 2


@pytest.mark.django_db
def test_purge_command_deletes_only_old_windows(db: Any, capsys: Any) -> None:
    from django.core.management import CommandError, call_command

    with freeze_time(START):
        assert _bad("192.0.2.30").status_code == 401
    assert _bad("192.0.2.31").status_code == 401
    call_command("purge_api_throttles", "--hours", "1")
    assert capsys.readouterr().out == "compteurs supprimés : 1\n"
    assert list(ApiThrottle.objects.values_list("key", flat=True)) == ["192.0.2.31"]
    with pytest.raises(CommandError, match="--hours doit être au moins 1"):
        call_command("purge_api_throttles", "--hours", "0")
